package core_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/alknet/alknet/core"
)

// namedHandler is a comparable ProtocolHandler.
type namedHandler struct{ alpn string }

func (h *namedHandler) ALPN() string { return h.alpn }
func (h *namedHandler) Handle(context.Context, *core.Connection, core.AuthContext) error {
	return nil
}

func TestRegistryRegisterAs(t *testing.T) {
	ok := core.HandlerFunc(func(context.Context, *core.Connection, core.AuthContext) error { return nil })
	tests := []struct {
		name    string
		alpn    string
		h       core.Handler
		wantErr error
	}{
		{"plain", "alknet/call", ok, nil},
		{"max length 255 bytes", strings.Repeat("a", core.MaxALPNLength), ok, nil},
		{"non-ASCII bytes are allowed", "alknet/\xff\x00", ok, nil},
		{"empty", "", ok, core.ErrInvalidALPN},
		{"256 bytes", strings.Repeat("a", core.MaxALPNLength+1), ok, core.ErrInvalidALPN},
		{"acme reserved", "acme-tls/1", ok, core.ErrInvalidALPN},
		{"nil handler", "alknet/nil", nil, core.ErrInvalidALPN},
		{"duplicate", "alknet/dup", ok, core.ErrDuplicateALPN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := core.NewRegistry()
			if err := r.RegisterAs("alknet/dup", ok); err != nil {
				t.Fatal(err)
			}
			err := r.RegisterAs(tt.alpn, tt.h)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("RegisterAs(%q) error = %v, want %v", tt.alpn, err, tt.wantErr)
			}
			_, got := r.Get(tt.alpn)
			wantPresent := tt.wantErr == nil || errors.Is(tt.wantErr, core.ErrDuplicateALPN)
			if got != wantPresent {
				t.Errorf("Get(%q) present = %v, want %v", tt.alpn, got, wantPresent)
			}
			wantALPNs := []string{"alknet/dup"}
			if tt.wantErr == nil {
				wantALPNs = append(wantALPNs, tt.alpn)
			}
			if got := r.ALPNs(); !slices.Equal(got, wantALPNs) {
				t.Errorf("ALPNs() = %q, want %q (a failed registration must not change the registry)", got, wantALPNs)
			}
		})
	}
}

func TestRegistryRegister(t *testing.T) {
	r := core.NewRegistry()
	call := &namedHandler{"alknet/call"}
	if err := r.Register(call); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := r.Register(&namedHandler{"alknet/call"}); !errors.Is(err, core.ErrDuplicateALPN) {
		t.Errorf("second Register of alknet/call = %v, want ErrDuplicateALPN", err)
	}
	if err := r.Register(&namedHandler{""}); !errors.Is(err, core.ErrInvalidALPN) {
		t.Errorf("Register with empty ALPN = %v, want ErrInvalidALPN", err)
	}
	if err := r.Register(&namedHandler{core.ALPNACME}); !errors.Is(err, core.ErrInvalidALPN) {
		t.Errorf("Register of %q = %v, want ErrInvalidALPN", core.ALPNACME, err)
	}
	if err := r.Register(nil); !errors.Is(err, core.ErrInvalidALPN) {
		t.Errorf("Register(nil) = %v, want ErrInvalidALPN", err)
	}
	h, ok := r.Get("alknet/call")
	if !ok || h != core.Handler(call) {
		t.Errorf("Get(alknet/call) = %v, %v; want the registered handler", h, ok)
	}
	if h, ok := r.Get("alknet/unknown"); ok || h != nil {
		t.Errorf("Get(unknown) = %v, %v; want nil, false", h, ok)
	}
}

func TestRegistryALPNsOrderAndCopy(t *testing.T) {
	r := core.NewRegistry()
	shared := &namedHandler{"h2"}
	order := []string{"h2", "http/1.1", "alknet/call", "alknet/ssh", "alknet/channels"}
	for _, alpn := range order {
		var h core.Handler = &namedHandler{alpn}
		if alpn == "h2" || alpn == "http/1.1" {
			h = shared // one handler serving two ALPNs
		}
		if err := r.RegisterAs(alpn, h); err != nil {
			t.Fatalf("RegisterAs(%q): %v", alpn, err)
		}
	}
	got := r.ALPNs()
	if !slices.Equal(got, order) {
		t.Fatalf("ALPNs() = %q, want registration order %q", got, order)
	}
	got[0] = "mutated"
	if again := r.ALPNs(); !slices.Equal(again, order) {
		t.Errorf("ALPNs() after mutating a returned slice = %q, want %q", again, order)
	}
	for _, alpn := range []string{"h2", "http/1.1"} {
		if h, _ := r.Get(alpn); h != core.Handler(shared) {
			t.Errorf("Get(%q) = %v, want the shared handler", alpn, h)
		}
	}
}

func TestRegistryZeroValue(t *testing.T) {
	var r core.Registry
	if h, ok := r.Get("x"); ok || h != nil {
		t.Errorf("zero Registry Get = %v, %v", h, ok)
	}
	if got := r.ALPNs(); len(got) != 0 {
		t.Errorf("zero Registry ALPNs = %q", got)
	}
	if err := r.Register(&namedHandler{"alknet/echo"}); err != nil {
		t.Fatalf("zero Registry Register: %v", err)
	}
	if _, ok := r.Get("alknet/echo"); !ok {
		t.Error("zero Registry lost the registration")
	}
}

func TestHandlerFunc(t *testing.T) {
	sentinel := errors.New("from handler")
	var gotALPN string
	var gotConn *core.Connection
	h := core.HandlerFunc(func(_ context.Context, conn *core.Connection, auth core.AuthContext) error {
		gotALPN, gotConn = auth.ALPN, conn
		return sentinel
	})
	stream, _ := newDuplex()
	conn := core.FromBidi(stream, "alknet/test", nil)
	if err := h.Handle(t.Context(), conn, core.AnonymousAuthContext("alknet/test")); err != sentinel {
		t.Errorf("Handle returned %v, want the function's error", err)
	}
	if gotALPN != "alknet/test" || gotConn != conn {
		t.Errorf("function saw alpn %q conn %p, want alknet/test %p", gotALPN, gotConn, conn)
	}
}
