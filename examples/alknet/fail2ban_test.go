package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	alkssh "github.com/alknet/alknet/ssh"
)

// fail2banFilter is the filter of examples/deploy, relative to this package.
const fail2banFilter = "../deploy/fail2ban/filter.d/alknet.conf"

// The loopback addresses the attempts come from, one per way of failing, so that the
// test checks the filter takes each line's own address. call and ssh dial through core's
// dialer, which binds no local address.
var f2bSource = map[string]string{
	"alknet/call": "127.0.0.1", // a bad auth_token
	"alknet/ssh":  "127.0.0.1", // an unknown SSH key
	"http/1.1":    "127.0.0.2", // a bad Bearer token
	"alknet/sftp": "127.0.0.3", // no known client certificate (the endpoint's line)
	"h2":          "127.0.0.4", // a bad Bearer token
}

// TestFail2banOnNodeLines captures the auth failure lines a running node writes for each
// way of failing (call, the HTTP gateway over HTTP/1.1 and h2, SSH, an ALPN that needs a
// known client certificate), in both log formats, and runs fail2ban-regex with the
// filter of examples/deploy over the node's whole log, as read from a file and as the
// journal backend presents it: every auth failure line matches with its own remote
// address, and no other line matches.
func TestFail2banOnNodeLines(t *testing.T) {
	tool, err := exec.LookPath("fail2ban-regex")
	if err != nil {
		t.Skip("fail2ban-regex is not installed (Debian: package fail2ban)")
	}
	filter, err := filepath.Abs(fail2banFilter) // a relative name is looked up in /etc/fail2ban
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			config := filepath.Join(dir, "alknet.toml")
			writeFile(t, config, fmt.Sprintf("[[sftp.exports]]\nname = \"data\"\nroot = %q\n", dir))
			n := startServe(t, "--config", config, "--log-format", format)

			r := runCall(t, n.callArgs(nil, "--token", "alk_f2bf2bf2bf2bf2bf2bf2b", "demo/echo", `"x"`)...)
			wantOutput(t, r, "\"x\"\n")
			f2bSSHUnknownKey(t, n)
			f2bHTTPBadBearer(t, n, "http/1.1")
			f2bHTTPBadBearer(t, n, "h2")
			f2bNoClientCert(t, n, "alknet/sftp")
			waitFor(t, func() bool {
				seen := map[string]bool{}
				for _, l := range authFailureLines(t, format, n.stderr.String()) {
					seen[l.alpn] = true
				}
				return len(seen) == len(f2bSource)
			})
			n.stop(t)

			log := strings.Split(strings.TrimSuffix(n.stderr.String(), "\n"), "\n")
			var want []string
			for _, l := range authFailureLines(t, format, n.stderr.String()) {
				ip, ok := f2bSource[l.alpn]
				if !ok || l.ip != ip {
					t.Errorf("auth failure line from %s on %s, want one of %v: %s", l.ip, l.alpn, f2bSource, l.raw)
				}
				want = append(want, ip)
			}
			t.Logf("%d auth failure lines from %q among %d lines", len(want), want, len(log))
			if len(want) >= len(log) {
				t.Fatalf("the log has no line other than %d auth failures", len(want))
			}
			journal := make([]string, len(log))
			for i, l := range log {
				journal[i] = "node1 alknet[4242]: " + l
			}
			for name, lines := range map[string][]string{"file": log, "journal": journal} {
				if got := runFail2banRegex(t, tool, filter, lines); !slices.Equal(got, want) {
					t.Errorf("%s: fail2ban-regex found %q, want %q in:\n%s", name, got, want, strings.Join(lines, "\n"))
				}
			}
		})
	}
}

// authLine is an auth failure line as Go reads it.
type authLine struct{ ip, alpn, raw string }

var textAuthFailure = regexp.MustCompile(`^time=\S+ level=WARN msg="auth failure" remote_ip=(\S+) alpn=(\S+) `)

// authFailureLines returns the auth failure lines of log, in order.
func authFailureLines(t *testing.T, format, log string) []authLine {
	t.Helper()
	var out []authLine
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		line := sc.Text()
		if format == "text" {
			if m := textAuthFailure.FindStringSubmatch(line); m != nil {
				out = append(out, authLine{ip: m[1], alpn: m[2], raw: line})
			}
			continue
		}
		var rec struct {
			Msg      string `json:"msg"`
			RemoteIP string `json:"remote_ip"`
			ALPN     string `json:"alpn"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			continue // a partial last line while the node still writes
		}
		if rec.Msg == core.AuthFailureMessage {
			out = append(out, authLine{ip: rec.RemoteIP, alpn: rec.ALPN, raw: line})
		}
	}
	return out
}

// runFail2banRegex runs fail2ban-regex with filter over lines and returns the address it
// took from each line it matched, in order.
func runFail2banRegex(t *testing.T, tool, filter string, lines []string) []string {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), "alknet.log")
	writeFile(t, logFile, strings.Join(lines, "\n")+"\n")
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, "--out", "ip", logFile, filter)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("fail2ban-regex: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	return strings.Fields(stdout.String())
}

// f2bSSHUnknownKey logs in over alknet/ssh with a key the node does not know.
func f2bSSHUnknownKey(t *testing.T, n *node) {
	t.Helper()
	stranger, _ := newClientState(t)
	c, err := alkssh.Dial(t.Context(), n.quic, alkssh.ClientConfig{
		Transport: endpoint.DialOptions{TLS: tlsconf.ClientOptions{Pin: n.fp}},
		Signer:    sshSigner(t, stranger),
		HostKey:   n.hostKey,
	})
	if err == nil {
		c.Close()
		t.Fatal("ssh login with an unknown key succeeded")
	}
}

// f2bDial opens a TCP+TLS connection with alpn from f2bSource[alpn], without a client
// certificate.
func f2bDial(ctx context.Context, t *testing.T, n *node, alpn string) *tls.Conn {
	t.Helper()
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: n.fp, NextProtos: []string{alpn}})
	if err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(f2bSource[alpn])}, Timeout: waitTimeout}
	c, err := (&tls.Dialer{NetDialer: &d, Config: cfg}).DialContext(ctx, "tcp", n.tcp)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", alpn, f2bSource[alpn], err)
	}
	tc := c.(*tls.Conn)
	if got := tc.ConnectionState().NegotiatedProtocol; got != alpn {
		tc.Close()
		t.Fatalf("negotiated %q, want %q", got, alpn)
	}
	return tc
}

// f2bHTTPBadBearer posts a call to the gateway with a Bearer token that is no key, over
// proto (http/1.1 or h2).
func f2bHTTPBadBearer(t *testing.T, n *node, proto string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return f2bDial(ctx, t, n, proto), nil
		},
		ForceAttemptHTTP2: proto == "h2",
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+n.tcp+"/call", strings.NewReader(`{"operation":"demo/echo","input":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer alk_f2bf2bf2bf2bf2bf2bf2b")
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s: %v", proto, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// demo/echo is open to anonymous callers, which the request is then served as.
	if resp.Proto != map[string]string{"http/1.1": "HTTP/1.1", "h2": "HTTP/2.0"}[proto] {
		t.Fatalf("%s with a bad Bearer token: answered over %s", proto, resp.Proto)
	}
}

// f2bNoClientCert opens alpn, which needs a known client certificate, without one, and
// waits for the node to close the connection.
func f2bNoClientCert(t *testing.T, n *node, alpn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	c := f2bDial(ctx, t, n, alpn)
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s without a client certificate: the node kept the connection open", alpn)
	}
}
