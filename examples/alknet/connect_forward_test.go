package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/alknet/alknet/core/coretest"
)

// TestConnectViaForward: `alknet connect --via forward` carries a stock curl
// (--socks5-hostname, the name resolved by the node), a hand-written SOCKS5 CONNECT,
// a -L and a -R forward over alknet/forward.
func TestConnectViaForward(t *testing.T) {
	state, fp := newClientState(t)
	echo := echoServer(t, "127.0.0.1:0")
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Host)
	}))
	defer web.Close()
	n, _ := startServeConfig(t, connectConfig(fp))
	r, err := startConnect(t, "--state", state, "--pin", n.fp, "--via", "forward", "--socks", "127.0.0.1:0",
		"-L", "127.0.0.1:0:"+echo, "-R", "127.0.0.1:0:"+echo, n.quic)
	if err != nil {
		t.Fatalf("connect --via forward: %v", err)
	}
	if len(r.lines) != 4 || !strings.HasPrefix(r.lines[0], "socks 127.0.0.1:") || !strings.HasPrefix(r.lines[1], "local 127.0.0.1:0:"+echo+" 127.0.0.1:") ||
		!strings.HasPrefix(r.lines[2], "remote 127.0.0.1:0:"+echo+" 127.0.0.1:") {
		t.Fatalf("stdout %q, want socks, local, remote and ready lines", r.lines)
	}
	echoVia(t, strings.Fields(r.lines[2])[2], "through -R over alknet/forward") // on the node's loopback, back through the client
	if !strings.Contains(r.stderr.String(), "via=forward") {
		t.Errorf("stderr does not say via=forward:\n%s", r.stderr)
	}
	echoVia(t, strings.Fields(r.lines[1])[2], "through -L over alknet/forward")
	socks5Echo(t, r.addr(t, "socks"), echo, "through SOCKS5 over alknet/forward")

	t.Run("curl", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			t.Skip("curl not installed")
		}
		host := strings.TrimPrefix(web.URL, "http://")
		out, err := exec.CommandContext(t.Context(), curl, "-sS", "--max-time", "30", "--noproxy", "",
			"--socks5-hostname", r.addr(t, "socks"), web.URL+"/").CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v: %s", err, out)
		}
		if want := "hello " + host; string(out) != want {
			t.Fatalf("curl got %q, want %q", out, want)
		}
	})
	r.stop(t)
	if strings.Contains(r.stderr.String(), "level=WARN") || strings.Contains(r.stderr.String(), "level=ERROR") {
		t.Errorf("connect warned:\n%s", r.stderr)
	}
}

// TestConnectViaAuto: auto picks alknet/forward on QUIC, SSH on --tcp, SSH with -R,
// and SSH when the node does not serve alknet/forward.
func TestConnectViaAuto(t *testing.T) {
	state, fp := newClientState(t)
	echo := echoServer(t, "127.0.0.1:0")
	n, _ := startServeConfig(t, connectConfig(fp))
	off, _ := startServeConfig(t, "[ssh]\ndisable_forward = true\n"+connectConfig(fp))
	cases := []struct {
		name     string
		args     []string
		via      string
		fellBack bool
	}{
		{"quic", []string{"--pin", n.fp, n.quic}, "forward", false},
		{"tcp", []string{"--pin", n.fp, "--tcp", n.tcp}, "ssh", false},
		{"remote forward", []string{"--pin", n.fp, "-R", "127.0.0.1:0:" + echo, n.quic}, "ssh", false},
		{"node without alknet/forward", []string{"--pin", off.fp, off.quic}, "ssh", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--state", state, "--socks", "", "-L", "127.0.0.1:0:" + echo}, tc.args...)
			r, err := startConnect(t, args...)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			echoVia(t, strings.Fields(r.lines[0])[2], "auto")
			r.stop(t)
			stderr := r.stderr.String()
			if !strings.Contains(stderr, "via="+tc.via) {
				t.Errorf("stderr does not say via=%s:\n%s", tc.via, stderr)
			}
			if got := strings.Contains(stderr, "alknet/forward unavailable"); got != tc.fellBack {
				t.Errorf("fell back to SSH: %v, want %v:\n%s", got, tc.fellBack, stderr)
			}
		})
	}
}

// TestConnectViaUsage: --via takes ssh, forward or auto; forward is not for --tcp.
func TestConnectViaUsage(t *testing.T) {
	state, _ := newClientState(t)
	fp := coretest.NewIdentity(t).Fingerprint
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--via", "tls"}, "--via"},
		{[]string{"--via", "forward", "--tcp"}, "--tcp"},
	} {
		_, err := startConnect(t, append(append([]string{"--state", state, "--pin", fp}, tc.args...), "127.0.0.1:1")...)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Fatalf("%v: error %v (%T), want a usage error", tc.args, err, err)
		}
		if line := checkOneLine(t, err, exitUsage); !strings.Contains(line, tc.want) {
			t.Errorf("%v: message %q lacks %q", tc.args, line, tc.want)
		}
	}
}
