package main

import (
	"slices"
	"strings"
	"testing"
)

func TestAllSuites(t *testing.T) {
	known := benchmarks()
	for _, s := range allOrder {
		if _, ok := known[s]; !ok {
			t.Errorf("allOrder names %q, which is not a benchmark", s)
		}
	}
	for name := range known {
		if name != "all" && !slices.Contains(allOrder, name) {
			t.Errorf("benchmark %q is missing from allOrder: bench all would never run it", name)
		}
	}
	got, err := allSuites("", "")
	if err != nil || !slices.Equal(got, allOrder) {
		t.Errorf("allSuites(\"\", \"\") = %v, %v; want every suite in order", got, err)
	}
	got, err = allSuites("msg, vault ,call", "call")
	if err != nil || !slices.Equal(got, []string{"vault", "msg"}) {
		t.Errorf("allSuites(only msg,vault,call; skip call) = %v, %v; want [vault msg]", got, err)
	}
	for _, tc := range []struct{ only, skip, want string }{
		{"nope", "", `unknown suite "nope"`},
		{"", "all", `unknown suite "all"`},
		{"vault", "vault", "no suite left"},
	} {
		if _, err := allSuites(tc.only, tc.skip); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("allSuites(%q, %q) error = %v, want %q", tc.only, tc.skip, err, tc.want)
		}
	}
}
