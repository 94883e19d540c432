package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/examples/node"
	alkssh "github.com/alknet/alknet/ssh"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// served is a running in-process "minimal serve".
type served struct {
	ready    node.Ready
	config   string
	stderr   bytes.Buffer
	reload   chan os.Signal
	reloaded chan error
}

// serve runs minimal serve with config (TOML) until the test ends.
func serve(t *testing.T, config string) *served {
	t.Helper()
	path := filepath.Join(t.TempDir(), "node.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &served{config: path, reload: make(chan os.Signal, 1), reloaded: make(chan error, 1)}
	pr, pw := io.Pipe()
	readyCh := make(chan node.Ready, 1)
	c := minimal().NewCLI(strings.NewReader(""), pw, &s.stderr)
	c.OnReady = func(r node.Ready) { readyCh <- r }
	c.OnReload = func(err error) { s.reloaded <- err }
	c.NotifyReload = func() (<-chan os.Signal, func()) { return s.reload, func() {} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := c.Run(ctx, []string{"serve", "--state", t.TempDir(), "--listen", "127.0.0.1:0", "--config", path})
		pw.Close()
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	sc := bufio.NewScanner(pr)
	var lines []string
	for sc.Scan() && sc.Text() != "ready" {
		lines = append(lines, sc.Text())
	}
	go io.Copy(io.Discard, pr)
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "fingerprint ed25519:") || !strings.HasPrefix(lines[3], "ssh-host-key ") {
		t.Fatalf("serve stdout %q, want the four lines before ready", lines)
	}
	s.ready = <-readyCh
	return s
}

func (s *served) dialOptions() endpoint.DialOptions {
	return endpoint.DialOptions{TLS: tlsconf.ClientOptions{Pin: s.ready.Fingerprint}}
}

func TestMinimalServes(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	clientFP := tlsconf.Fingerprint(key)
	s := serve(t, fmt.Sprintf("[[peers]]\nid = \"alice\"\nfingerprints = [%q]\nscopes = [\"ssh:exec\"]\n[ssh]\nexec_allow = [\"echo\"]\n", clientFP))

	// alknet/echo echoes.
	conn, err := endpoint.Dial(t.Context(), s.ready.QUIC.String(), "alknet/echo", s.dialOptions())
	if err != nil {
		t.Fatalf("dial alknet/echo: %v", err)
	}
	st, err := conn.OpenBi(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(st, "hello"); err != nil {
		t.Fatal(err)
	}
	_ = st.CloseWrite()
	got, err := io.ReadAll(st)
	if err != nil || string(got) != "hello" {
		t.Errorf("alknet/echo answered %q, %v", got, err)
	}
	conn.Close(0, "")

	// alknet/ssh runs an allowed command for the peer of the config file.
	signer, err := alkssh.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := alkssh.Dial(t.Context(), s.ready.QUIC.String(), alkssh.ClientConfig{
		Transport: s.dialOptions(),
		Signer:    signer,
		HostKey:   s.ready.SSHHostKey,
	})
	if err != nil {
		t.Fatalf("ssh: %v", err)
	}
	defer cl.Close()
	sess, err := cl.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("echo composed")
	sess.Close()
	if err != nil || string(out) != "composed\n" {
		t.Errorf("ssh exec: %q, %v", out, err)
	}

	// alknet/call is not part of this binary.
	_, err = endpoint.Dial(t.Context(), s.ready.QUIC.String(), "alknet/call", s.dialOptions())
	if !errors.Is(err, endpoint.ErrALPNRefused) {
		t.Errorf("dial alknet/call: %v, want endpoint.ErrALPNRefused", err)
	}
}

func TestMinimalReloadsSSH(t *testing.T) {
	s := serve(t, "[ssh]\nexec_allow = [\"echo\"]\n")
	reload := func(config string) error {
		if err := os.WriteFile(s.config, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		s.reload <- syscall.SIGHUP
		return <-s.reloaded
	}
	if err := reload("[ssh]\nexec_allow = [\"echo\", \"uptime\"]\n"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if err := reload("[ssh]\nexec_allow = [\"/bin/sh\"]\n"); err == nil || !strings.Contains(err.Error(), "ssh.exec_allow[0]") {
		t.Fatalf("reload of an invalid [ssh] table: %v", err)
	}
}

func TestMinimalConfigErrors(t *testing.T) {
	cases := map[string]string{
		"[openapi]\nnamespace = \"x\"\n":                                                `unknown key "openapi"`,
		"[[ssh.forwarding.rules]]\ntarget = \"cidr:10.0.0.0/33\"\naction = \"allow\"\n": "ssh.forwarding.rules[0].target",
	}
	for in, want := range cases {
		path := filepath.Join(t.TempDir(), "node.toml")
		if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		c := minimal().NewCLI(strings.NewReader(""), io.Discard, &stderr)
		err := c.Run(t.Context(), []string{"serve", "--state", t.TempDir(), "--listen", "127.0.0.1:0", "--config", path})
		if code := c.Report(err); code != node.ExitUsage || !strings.Contains(stderr.String(), want) || !strings.HasPrefix(stderr.String(), "minimal: ") {
			t.Errorf("config %q: exit %d, stderr %q; want 2 and %q", in, code, stderr.String(), want)
		}
	}
}

// TestMinimalLinksNoCallOrHTTP checks the point of the composition: the binary does
// not link the call protocol, the HTTP surface, MCP or gRPC.
func TestMinimalLinksNoCallOrHTTP(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "alknet/call") || strings.Contains(pkg, "alknet/http") || strings.Contains(pkg, "grpc") || strings.Contains(pkg, "mcp") {
			t.Errorf("minimal links %s", pkg)
		}
	}
}
