package core_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/alknet/alknet/core"
)

// textLogger returns a logger with slog's text handler and no time attribute.
func textLogger(buf *bytes.Buffer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

func TestLogAuthFailureLine(t *testing.T) {
	tests := []struct {
		name string
		f    core.AuthFailure
		want string
	}{
		{
			name: "full",
			f: core.AuthFailure{
				ALPN:   "alknet/ssh",
				Remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000},
				Peer:   "ed25519:abcd",
				Reason: "unknown key",
			},
			want: `level=WARN msg="auth failure" remote_ip=127.0.0.1 alpn=alknet/ssh peer=ed25519:abcd reason="unknown key"` + "\n",
		},
		{
			name: "empty peer prints a dash",
			f:    core.AuthFailure{ALPN: "alknet/call", Remote: &net.UDPAddr{IP: net.ParseIP("203.0.113.9"), Port: 443}, Reason: "bad token"},
			want: `level=WARN msg="auth failure" remote_ip=203.0.113.9 alpn=alknet/call peer=- reason="bad token"` + "\n",
		},
		{
			name: "IPv4-mapped address unmapped",
			f:    core.AuthFailure{ALPN: "alknet/call", Remote: &net.UDPAddr{IP: net.ParseIP("::ffff:198.51.100.2"), Port: 1}, Peer: "alk_abcd", Reason: "expired"},
			want: `level=WARN msg="auth failure" remote_ip=198.51.100.2 alpn=alknet/call peer=alk_abcd reason=expired` + "\n",
		},
		{
			name: "IPv6 zone dropped",
			f:    core.AuthFailure{ALPN: "h2", Remote: &net.TCPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0", Port: 1}, Peer: "p", Reason: "r"},
			want: `level=WARN msg="auth failure" remote_ip=fe80::1 alpn=h2 peer=p reason=r` + "\n",
		},
		{
			name: "no remote address",
			f:    core.AuthFailure{ALPN: "alknet/ssh", Reason: "too many attempts"},
			want: `level=WARN msg="auth failure" remote_ip=- alpn=alknet/ssh peer=- reason="too many attempts"` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			core.LogAuthFailure(t.Context(), textLogger(&buf, slog.LevelInfo), tt.f)
			if got := buf.String(); got != tt.want {
				t.Errorf("line =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestLogAuthFailureLevelAndNil(t *testing.T) {
	f := core.AuthFailure{ALPN: "alknet/ssh", Reason: "r"}
	// A nil logger is a no-op (must not panic).
	core.LogAuthFailure(context.Background(), nil, f)

	// The line is at warning level: an error-level logger drops it.
	var buf bytes.Buffer
	core.LogAuthFailure(t.Context(), textLogger(&buf, slog.LevelError), f)
	if buf.Len() != 0 {
		t.Errorf("error-level logger wrote %q; the line must be WARN", buf.String())
	}
	core.LogAuthFailure(t.Context(), textLogger(&buf, slog.LevelWarn), f)
	if buf.Len() == 0 {
		t.Error("warn-level logger wrote nothing")
	}
}

// otherAddr is a net.Addr of a type AddrIP does not know.
type otherAddr string

func (a otherAddr) Network() string { return "other" }
func (a otherAddr) String() string  { return string(a) }

func TestRemoteIPAndAddrIP(t *testing.T) {
	tests := []struct {
		name string
		addr net.Addr
		want string // "" means no IP ("-" from RemoteIP)
	}{
		{"UDP IPv4", &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 443}, "192.0.2.1"},
		{"TCP IPv4", &net.TCPAddr{IP: net.ParseIP("192.0.2.2"), Port: 443}, "192.0.2.2"},
		{"TCP IPv4 4-byte slice", &net.TCPAddr{IP: net.IP{192, 0, 2, 3}, Port: 443}, "192.0.2.3"},
		{"UDP IPv4-mapped", &net.UDPAddr{IP: net.ParseIP("::ffff:192.0.2.4"), Port: 1}, "192.0.2.4"},
		{"TCP IPv6", &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}, "2001:db8::1"},
		{"UDP IPv6 with zone", &net.UDPAddr{IP: net.ParseIP("fe80::2"), Zone: "eth0", Port: 1}, "fe80::2"},
		{"IPAddr", &net.IPAddr{IP: net.ParseIP("192.0.2.5")}, "192.0.2.5"},
		{"IPAddr with zone", &net.IPAddr{IP: net.ParseIP("fe80::3"), Zone: "lo"}, "fe80::3"},
		{"nil interface", nil, ""},
		{"typed nil UDPAddr", (*net.UDPAddr)(nil), ""},
		{"typed nil TCPAddr", (*net.TCPAddr)(nil), ""},
		{"typed nil IPAddr", (*net.IPAddr)(nil), ""},
		{"UDP without IP", &net.UDPAddr{Port: 1}, ""},
		{"IPAddr without IP", &net.IPAddr{}, ""},
		{"other type with host:port", otherAddr("192.0.2.6:99"), "192.0.2.6"},
		{"other type with mapped host:port", otherAddr("[::ffff:192.0.2.7]:99"), "192.0.2.7"},
		{"other type without an address", otherAddr("pipe"), ""},
		{"unix socket", &net.UnixAddr{Name: "/tmp/x.sock", Net: "unix"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip, ok := core.AddrIP(tt.addr)
			if tt.want == "" {
				if ok {
					t.Errorf("AddrIP = %v, true; want none", ip)
				}
				if got := core.RemoteIP(tt.addr); got != "-" {
					t.Errorf("RemoteIP = %q, want -", got)
				}
				return
			}
			if !ok || ip != netip.MustParseAddr(tt.want) || ip.Zone() != "" || ip.Is4In6() {
				t.Errorf("AddrIP = %v, %v; want %s", ip, ok, tt.want)
			}
			if got := core.RemoteIP(tt.addr); got != tt.want {
				t.Errorf("RemoteIP = %q, want %q", got, tt.want)
			}
		})
	}
}
