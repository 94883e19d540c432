package openapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseJSONFirst(t *testing.T) {
	// In a JSON document "yes" is a string whatever YAML would make of it.
	d, err := Parse([]byte(`{"info":{"title":"yes","version":"on"},"paths":{}}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Title() != "yes" || d.Version() != "on" {
		t.Errorf("title %q version %q", d.Title(), d.Version())
	}
	// yaml.v3 follows YAML 1.2: yes, no, on and off are strings; true is a boolean,
	// so a title written true is not a string and Title is "".
	for _, tc := range []struct{ src, title string }{
		{"info:\n  title: yes\npaths: {}\n", "yes"},
		{"info:\n  title: off\npaths: {}\n", "off"},
		{"info:\n  title: true\npaths: {}\n", ""},
		{"info:\n  title: 'true'\npaths: {}\n", "true"},
	} {
		for name, parse := range map[string]func([]byte, Limits) (*Document, error){"Parse": Parse, "ParseYAML": ParseYAML} {
			d, err := parse([]byte(tc.src), Limits{})
			if err != nil {
				t.Fatalf("%s %q: %v", name, tc.src, err)
			}
			if d.Title() != tc.title {
				t.Errorf("%s %q: title %q, want %q", name, tc.src, d.Title(), tc.title)
			}
		}
	}
	// ParseJSON takes exactly one JSON value.
	_, err = ParseJSON([]byte(`{"info":{},"paths":{}} {}`), Limits{})
	wantParseErr(t, err, "JSON", "data after")
	// ParseJSON does not fall back to YAML.
	_, err = ParseJSON([]byte("info: {}\npaths: {}\n"), Limits{})
	wantParseErr(t, err, "JSON")
}

func TestParseVersion(t *testing.T) {
	for src, want := range map[string]string{
		`{"info":{},"paths":{}}`:                "1.0.0",
		`{"info":{"version":""},"paths":{}}`:    "1.0.0",
		`{"info":{"version":"2.1"},"paths":{}}`: "2.1",
		`{"info":{"version":2.10},"paths":{}}`:  "2.10",
		"info:\n  version: 1.0\npaths: {}":      "1.0",
	} {
		if got := mustParse(t, src).Version(); got != want {
			t.Errorf("%s: version %q, want %q", src, got, want)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	for _, src := range []string{"{\"info\": [", "a: [\n", ":\n- : -\n  x: {"} {
		_, err := Parse([]byte(src), Limits{})
		wantParseErr(t, err, "JSON", "YAML")
	}
	_, err := ParseYAML([]byte("a: [\n"), Limits{})
	wantParseErr(t, err, "YAML")
}

func TestParseStructure(t *testing.T) {
	for src, want := range map[string]string{
		``:                               "not an object",
		`[]`:                             "not an object",
		`"x"`:                            "not an object",
		`{"paths":{}}`:                   "/info",
		`{"info":"x","paths":{}}`:        "/info",
		`{"info":{}}`:                    "/paths",
		`{"info":{},"paths":[]}`:         "/paths",
		"info: {}\npaths:\n  - a\n":      "/paths",
		`{"info":{},"paths":{"/a":"x"}}`: "not an object",
		`{"info":{},"paths":{"/a":{"$ref":"#/nope"}}}`: "does not resolve",
	} {
		_, err := Parse([]byte(src), Limits{})
		if err == nil {
			t.Fatalf("%q parsed", src)
		}
		wantParseErr(t, err, want)
	}
}

func TestYAMLConversions(t *testing.T) {
	src := `
info: {title: t}
paths: {}
x-values:
  date: 2024-01-01
  one: 1.0
  hex: 0x1F
  big: 123456789012345678901234567890
  bin: !!binary aGk=
  nul: ~
  yes: yes
  list: [1, "2", true]
x-keys:
  200: int
  true: bool
  1.5: float
x-merge:
  base: &base {a: 1, b: 2}
  merged:
    <<: *base
    b: 3
  multi:
    <<: [{c: 1}, {c: 2, d: 4}]
`
	d, err := ParseYAML([]byte(src), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(d.root["x-values"])
	want := `{"big":123456789012345678901234567890,"bin":"aGk=","date":"2024-01-01","hex":31,"list":[1,"2",true],"nul":null,"one":1.0,"yes":"yes"}`
	if string(got) != want {
		t.Errorf("values %s\nwant   %s", got, want)
	}
	got, _ = json.Marshal(d.root["x-keys"])
	if string(got) != `{"1.5":"float","200":"int","true":"bool"}` {
		t.Errorf("keys %s", got)
	}
	got, _ = json.Marshal(d.root["x-merge"])
	if string(got) != `{"base":{"a":1,"b":2},"merged":{"a":1,"b":3},"multi":{"c":1,"d":4}}` {
		t.Errorf("merge %s", got)
	}

	for src, want := range map[string]string{
		"info: {}\npaths: {}\nx: .inf\n":               "no JSON form",
		"info: {}\npaths: {}\nx: {~: 1}\n":             "key is null",
		"info: {}\npaths: {}\nx: {200: a, '200': b}\n": "repeated",
		"info: {}\npaths: {}\nx: {[a]: 1}\n":           "YAML",
		"info: {}\npaths: {}\nx: {a: 1, a: 2}\n":       "YAML",
		"info: {}\npaths: {}\nx: {<<: 1}\n":            "not a mapping",
	} {
		_, err := ParseYAML([]byte(src), Limits{})
		wantParseErr(t, err, want)
	}
}

// TestYAMLAliasBomb: aliases are expanded within the document size limit.
func TestYAMLAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("info: {}\npaths: {}\nx0: &x0 [aaaaaaaaaa, aaaaaaaaaa]\n")
	for i := 1; i < 30; i++ {
		fmt.Fprintf(&b, "x%d: &x%d [*x%d, *x%d, *x%d]\n", i, i, i-1, i-1, i-1)
	}
	_, err := ParseYAML([]byte(b.String()), Limits{})
	wantParseErr(t, err, "aliases expanded")
}

func TestDocumentSizeLimit(t *testing.T) {
	base := `{"info":{},"paths":{}}`
	pad := func(n int) []byte { return []byte(base + strings.Repeat(" ", n-len(base))) }
	for name, parse := range map[string]func([]byte, Limits) (*Document, error){"Parse": Parse, "ParseJSON": ParseJSON, "ParseYAML": ParseYAML} {
		if _, err := parse(pad(100), Limits{MaxDocumentSize: 100}); err != nil {
			t.Errorf("%s at the limit: %v", name, err)
		}
		_, err := parse(pad(101), Limits{MaxDocumentSize: 100})
		wantParseErr(t, err, "101 bytes exceeds the 100-byte limit")
	}
	// The default.
	if _, err := Parse(pad(DefaultMaxDocumentSize), Limits{}); err != nil {
		t.Errorf("default limit: %v", err)
	}
	_, err := Parse(pad(DefaultMaxDocumentSize+1), Limits{})
	wantParseErr(t, err, "exceeds")
}

func TestMaxOperations(t *testing.T) {
	doc := func(n int) string {
		var paths []string
		for i := 0; i < n; i++ {
			paths = append(paths, fmt.Sprintf(`"/p%d":{"get":{},"post":{}}`, i))
		}
		return `{"info":{},"paths":{` + strings.Join(paths, ",") + `}}`
	}
	if _, err := Parse([]byte(doc(5)), Limits{MaxOperations: 10}); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	_, err := Parse([]byte(doc(5)+" "), Limits{MaxOperations: 9})
	wantParseErr(t, err, "10 operations exceed the limit of 9")
	// The default: 1024 operations.
	if _, err := Parse([]byte(doc(512)), Limits{}); err != nil {
		t.Errorf("default limit: %v", err)
	}
	_, err = Parse([]byte(doc(513)), Limits{})
	wantParseErr(t, err, "1026 operations exceed the limit of 1024")
}

func TestParseErrorType(t *testing.T) {
	_, err := Parse([]byte(`{"info":{},"paths":{"/a":{"$ref":"other.yaml#/x"}}}`), Limits{})
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Location != "/paths/~1a" {
		t.Fatalf("error %v (%#v)", err, pe)
	}
	if !errors.Is(err, ErrSchemaParse) || errors.Is(err, ErrConfig) {
		t.Errorf("error %v wraps the wrong sentinels", err)
	}
	if !reflect.DeepEqual(pe.Unwrap(), []error{ErrSchemaParse}) {
		t.Errorf("Unwrap %v", pe.Unwrap())
	}
}
