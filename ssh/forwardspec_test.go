package ssh_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/alknet/alknet/ssh"
)

func TestParseForwardSpecValid(t *testing.T) {
	tests := []struct {
		text string
		want ssh.ForwardSpec
		str  string
	}{
		{"localhost:8080:example.com:80", ssh.ForwardSpec{BindHost: "localhost", BindPort: 8080, Host: "example.com", Port: 80}, "localhost:8080:example.com:80"},
		{"127.0.0.1:0:10.0.0.1:65535", ssh.ForwardSpec{BindHost: "127.0.0.1", BindPort: 0, Host: "10.0.0.1", Port: 65535}, "127.0.0.1:0:10.0.0.1:65535"},
		{"[::1]:8080:[::1]:80", ssh.ForwardSpec{BindHost: "::1", BindPort: 8080, Host: "::1", Port: 80}, "[::1]:8080:[::1]:80"},
		{"localhost:2222:[2001:db8::1]:22", ssh.ForwardSpec{BindHost: "localhost", BindPort: 2222, Host: "2001:db8::1", Port: 22}, "localhost:2222:[2001:db8::1]:22"},
		{"[127.0.0.1]:1:h:2", ssh.ForwardSpec{BindHost: "127.0.0.1", BindPort: 1, Host: "h", Port: 2}, "127.0.0.1:1:h:2"},
		{"[fe80::1%eth0]:9000:db:5432", ssh.ForwardSpec{BindHost: "fe80::1%eth0", BindPort: 9000, Host: "db", Port: 5432}, "[fe80::1%eth0]:9000:db:5432"},
		{"*:8080:alknet-vault:443", ssh.ForwardSpec{BindHost: "*", BindPort: 8080, Host: "alknet-vault", Port: 443}, "*:8080:alknet-vault:443"},
		{"localhost:080:h:00022", ssh.ForwardSpec{BindHost: "localhost", BindPort: 80, Host: "h", Port: 22}, "localhost:80:h:22"},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			got, err := ssh.ParseForwardSpec(tc.text)
			if err != nil {
				t.Fatalf("ParseForwardSpec(%q): %v", tc.text, err)
			}
			if got != tc.want {
				t.Fatalf("ParseForwardSpec(%q) = %+v, want %+v", tc.text, got, tc.want)
			}
			if s := got.String(); s != tc.str {
				t.Fatalf("String() = %q, want %q", s, tc.str)
			}
			again, err := ssh.ParseForwardSpec(got.String())
			if err != nil || again != got {
				t.Fatalf("round trip of %q = %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestForwardSpecAddresses(t *testing.T) {
	f := ssh.ForwardSpec{BindHost: "::1", BindPort: 8080, Host: "example.com", Port: 80}
	if got := f.BindAddress(); got != "[::1]:8080" {
		t.Fatalf("BindAddress() = %q", got)
	}
	if got := f.TargetAddress(); got != "example.com:80" {
		t.Fatalf("TargetAddress() = %q", got)
	}
}

func TestParseForwardSpecInvalid(t *testing.T) {
	tests := []string{
		"",
		"a:b:c",
		"8080:example.com:80",
		"localhost:8080:example.com:80:1",
		"localhost:http:example.com:80",
		"localhost:8080:example.com:http",
		"localhost:65536:example.com:80",
		"localhost:8080:example.com:65536",
		"localhost:8080:example.com:0",
		"localhost:-1:example.com:80",
		"localhost:+80:example.com:80",
		"localhost: 80:example.com:80",
		"localhost:80 :example.com:80",
		":8080:example.com:80",
		"localhost::example.com:80",
		"localhost:8080::80",
		"localhost:8080:example.com:",
		":::",
		"::1:8080:example.com:80",
		"[::1:8080:example.com:80",
		"[::1]x:8080:example.com:80",
		"[localhost]:8080:example.com:80",
		"[]:8080:example.com:80",
		"localhost:[80]:example.com:80",
		"local host:8080:example.com:80",
		"localhost:8080:exa\nmple.com:80",
		"localhost:8080:" + strings.Repeat("a", 254) + ":80",
		"localhost:8080:" + strings.Repeat("a", 2000) + ":80",
	}
	for _, text := range tests {
		t.Run(text, func(t *testing.T) {
			f, err := ssh.ParseForwardSpec(text)
			if err == nil {
				t.Fatalf("ParseForwardSpec(%q) = %+v, want error", text, f)
			}
			if !errors.Is(err, ssh.ErrInvalidSpec) {
				t.Fatalf("error %v does not wrap ErrInvalidSpec", err)
			}
			msg := err.Error()
			clipped := text
			if len(clipped) > 200 {
				clipped = clipped[:200]
			}
			if !strings.HasPrefix(msg, "invalid spec "+clipped) {
				t.Fatalf("error %q does not start with %q", msg, "invalid spec "+clipped)
			}
			if rest := msg[len("invalid spec "+clipped):]; rest != "" && !strings.HasPrefix(rest, ": ") {
				t.Fatalf("error %q: spec followed by %q", msg, rest)
			}
		})
	}
}

func TestParseForwardSpecLengthLimit(t *testing.T) {
	// A spec of exactly MaxForwardSpecLength bytes is judged on its content (its
	// host is too long here); one byte more is refused for its length.
	pad := strings.Repeat("a", ssh.MaxForwardSpecLength-len("h:1::2")) // fills the target host
	at := "h:1:" + pad + ":2"
	if len(at) != ssh.MaxForwardSpecLength {
		t.Fatalf("test spec of %d bytes", len(at))
	}
	_, err := ssh.ParseForwardSpec(at)
	if err == nil || strings.Contains(err.Error(), "longer than 1024") {
		t.Fatalf("spec of %d bytes: %v", len(at), err)
	}
	_, err = ssh.ParseForwardSpec(at + "0")
	if !errors.Is(err, ssh.ErrInvalidSpec) || !strings.HasSuffix(err.Error(), ": longer than 1024 bytes") {
		t.Fatalf("spec of %d bytes: %v", len(at)+1, err)
	}
	if len(err.Error()) != len("invalid spec ")+200+len(": longer than 1024 bytes") {
		t.Fatalf("spec text not clipped to 200 bytes: %d", len(err.Error()))
	}
	if got := ssh.ErrInvalidSpec.Error(); got != "invalid spec" {
		t.Fatalf("ErrInvalidSpec = %q", got)
	}
}
