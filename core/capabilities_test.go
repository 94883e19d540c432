package core_test

import (
	"bytes"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/alknet/alknet/core"
)

const capSecret = "ghp_TopSecretCapabilityValue"

func testCaps() core.Capabilities {
	return core.NewCapabilities(map[string][]byte{
		"api_key:github":    []byte(capSecret),
		"http_token:github": []byte("token-should-lose"),
		"http_token:gitea":  []byte("gitea-token"),
		"api_key:empty":     {},
	})
}

func TestCapabilitiesRedactedFmt(t *testing.T) {
	caps := testCaps()
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10v"}
	args := map[string]any{"value": caps, "pointer": &caps}
	for _, verb := range verbs {
		for name, arg := range args {
			if got := fmt.Sprintf(verb, arg); got != "[REDACTED]" {
				t.Errorf("Sprintf(%q, %s) = %q, want [REDACTED]", verb, name, got)
			}
		}
	}
	for name, got := range map[string]string{
		"Sprint":   fmt.Sprint(caps),
		"Sprintln": strings.TrimSuffix(fmt.Sprintln(caps), "\n"),
		"String":   caps.String(),
		"GoString": caps.GoString(),
	} {
		if got != "[REDACTED]" {
			t.Errorf("%s = %q, want [REDACTED]", name, got)
		}
	}
	// Inside containers, as an exported field.
	type holder struct {
		Name string
		Caps core.Capabilities
	}
	for _, verb := range []string{"%v", "%+v", "%#v"} {
		for name, arg := range map[string]any{
			"struct": holder{"h", caps},
			"slice":  []core.Capabilities{caps},
			"map":    map[string]core.Capabilities{"k": caps},
		} {
			got := fmt.Sprintf(verb, arg)
			if leaks(got) || !strings.Contains(got, "[REDACTED]") {
				t.Errorf("Sprintf(%q, %s) = %q", verb, name, got)
			}
		}
	}
}

// leaks reports whether s shows any secret of testCaps, raw or hex-encoded.
func leaks(s string) bool {
	for _, secret := range []string{capSecret, "gitea-token", "token-should-lose"} {
		decimal := strings.Trim(fmt.Sprint([]byte(secret)), "[]") // how %v prints a []byte
		if strings.Contains(s, secret) || strings.Contains(strings.ToLower(s), hex.EncodeToString([]byte(secret))) || strings.Contains(s, decimal) {
			return true
		}
	}
	return strings.Contains(s, "TopSecret")
}

// TestCapabilitiesUnexportedField checks the case fmt cannot call Format for: a handler
// keeping its capabilities in an unexported field and being printed whole.
func TestCapabilitiesUnexportedField(t *testing.T) {
	type handler struct {
		name string
		caps core.Capabilities
	}
	h := handler{"h", testCaps()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		for name, arg := range map[string]any{"value": h, "pointer": &h} {
			if got := fmt.Sprintf(verb, arg); leaks(got) {
				t.Errorf("Sprintf(%q, %s) leaked: %q", verb, name, got)
			}
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "h", h)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "h", h)
	if leaks(buf.String()) {
		t.Errorf("slog leaked: %s", buf.String())
	}
	if b, err := json.Marshal(h); err != nil || leaks(string(b)) {
		t.Errorf("json.Marshal = %s, %v", b, err)
	}
}

func TestCapabilitiesRedactedSlog(t *testing.T) {
	assertRedactedLogs(t, "caps", testCaps(), capSecret)
}

func TestCapabilitiesNotSerializable(t *testing.T) {
	caps := testCaps()
	for name, v := range map[string]any{
		"value":   caps,
		"pointer": &caps,
		"field": struct {
			C core.Capabilities `json:"c"`
		}{caps},
		"map": map[string]core.Capabilities{"c": caps},
	} {
		b, err := json.Marshal(v)
		if !errors.Is(err, core.ErrNotSerializable) {
			t.Errorf("json.Marshal(%s) = %s, %v; want ErrNotSerializable", name, b, err)
		}
		if leaks(string(b)) {
			t.Errorf("json.Marshal(%s) leaked: %s", name, b)
		}
	}
	if b, err := caps.MarshalText(); !errors.Is(err, core.ErrNotSerializable) || b != nil {
		t.Errorf("MarshalText = %q, %v; want nil, ErrNotSerializable", b, err)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(caps); err == nil {
		t.Error("gob Encode succeeded, want an error")
	}
	if leaks(buf.String()) {
		t.Error("gob output leaked a secret")
	}
	if b, err := caps.GobEncode(); !errors.Is(err, core.ErrNotSerializable) || b != nil {
		t.Errorf("GobEncode = %q, %v; want nil, ErrNotSerializable", b, err)
	}
}

func TestCapabilitiesGet(t *testing.T) {
	caps := testCaps()
	tests := []struct {
		svc    string
		want   string
		wantOK bool
	}{
		{"github", capSecret, true},    // api_key wins over http_token
		{"gitea", "gitea-token", true}, // only http_token
		{"empty", "", true},            // present but empty
		{"unknown", "", false},         // neither
		{"", "", false},                // no "api_key:" key
		{"api_key:github", "", false},  // Get takes the service name, not the key
	}
	for _, tt := range tests {
		got, ok := caps.Get(tt.svc)
		if ok != tt.wantOK || string(got) != tt.want {
			t.Errorf("Get(%q) = %q, %v; want %q, %v", tt.svc, got, ok, tt.want, tt.wantOK)
		}
	}
	if v, ok := caps.Lookup("http_token:github"); !ok || string(v) != "token-should-lose" {
		t.Errorf("Lookup(http_token:github) = %q, %v", v, ok)
	}
	if _, ok := caps.Lookup("github"); ok {
		t.Error("Lookup takes exact keys; bare service name found something")
	}
	if got, want := caps.Keys(), []string{"api_key:empty", "api_key:github", "http_token:gitea", "http_token:github"}; !slices.Equal(got, want) {
		t.Errorf("Keys() = %q, want %q", got, want)
	}
	if caps.Len() != 4 {
		t.Errorf("Len() = %d, want 4", caps.Len())
	}
}

func TestCapabilitiesCopies(t *testing.T) {
	in := map[string][]byte{"api_key:svc": []byte("original")}
	caps := core.NewCapabilities(in)

	// Changing the input afterwards does not reach the capabilities.
	in["api_key:svc"][0] = 'X'
	in["api_key:other"] = []byte("added")
	if v, _ := caps.Get("svc"); string(v) != "original" {
		t.Errorf("after mutating the input map, Get = %q, want original", v)
	}
	if _, ok := caps.Get("other"); ok || caps.Len() != 1 {
		t.Error("a key added to the input map appeared")
	}

	// Changing a result does not reach the store.
	for name, get := range map[string]func() ([]byte, bool){
		"Get":    func() ([]byte, bool) { return caps.Get("svc") },
		"Lookup": func() ([]byte, bool) { return caps.Lookup("api_key:svc") },
	} {
		v, _ := get()
		clear(v)
		if again, _ := get(); string(again) != "original" {
			t.Errorf("after wiping a %s result, %s = %q, want original", name, name, again)
		}
	}

	keys := caps.Keys()
	keys[0] = "changed"
	if caps.Keys()[0] != "api_key:svc" {
		t.Error("Keys() result shares memory")
	}
}

func TestCapabilitiesWipe(t *testing.T) {
	caps := testCaps()
	handedOut, _ := caps.Get("github")
	caps.Wipe()
	for _, k := range caps.Keys() {
		v, ok := caps.Lookup(k)
		if !ok {
			t.Errorf("Wipe removed %q; it should zero in place", k)
		}
		if !bytes.Equal(v, make([]byte, len(v))) {
			t.Errorf("after Wipe, %q = %q, want zeros", k, v)
		}
	}
	if v, _ := caps.Get("github"); len(v) != len(capSecret) {
		t.Errorf("Wipe changed the length to %d", len(v))
	}
	if string(handedOut) != capSecret {
		t.Error("Wipe reached a copy handed out earlier (it is the holder's to wipe)")
	}
}

func TestCapabilitiesZeroValue(t *testing.T) {
	var caps core.Capabilities
	if caps.Len() != 0 || len(caps.Keys()) != 0 {
		t.Error("zero Capabilities not empty")
	}
	if v, ok := caps.Get("x"); ok || v != nil {
		t.Errorf("zero Get = %q, %v", v, ok)
	}
	if v, ok := caps.Lookup("api_key:x"); ok || v != nil {
		t.Errorf("zero Lookup = %q, %v", v, ok)
	}
	caps.Wipe()
	if fmt.Sprint(caps) != "[REDACTED]" {
		t.Errorf("zero Capabilities prints %q", fmt.Sprint(caps))
	}
	if _, err := json.Marshal(caps); !errors.Is(err, core.ErrNotSerializable) {
		t.Errorf("zero Capabilities marshals: %v", err)
	}
	empty := core.NewCapabilities(nil)
	if empty.Len() != 0 {
		t.Error("NewCapabilities(nil) not empty")
	}
}
