package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/examples/echo"
)

// callNetworks are the transports call can use, with the flags selecting them.
var callNetworks = pipeNetworks

type callResult struct {
	stdout string
	stderr string // what the command itself printed
	err    error
}

// report returns what main would print on stderr for the command's error, and the exit
// code.
func (r callResult) report() (string, int) {
	var out bytes.Buffer
	code := report(&out, r.err)
	return out.String(), code
}

// runCallCtx runs `alknet call` in-process with ctx, stdout and a fresh state directory
// (args may name another: the later --state wins).
func runCallCtx(ctx context.Context, t *testing.T, stdout io.Writer, args ...string) callResult {
	t.Helper()
	var out, stderr syncBuffer
	if stdout == nil {
		stdout = &out
	}
	c := &cli{stdin: strings.NewReader(""), stdout: stdout, stderr: &stderr}
	argv := append([]string{"call", "--state", t.TempDir()}, args...)
	err := c.run(ctx, argv)
	return callResult{stdout: out.String(), stderr: stderr.String(), err: err}
}

func runCall(t *testing.T, args ...string) callResult {
	t.Helper()
	return runCallCtx(t.Context(), t, nil, args...)
}

// callArgs returns the flags that pin n over network (plus extra), then n's address.
func (n *node) callArgs(network []string, rest ...string) []string {
	args := append([]string{"--pin", n.fp}, network...)
	return append(append(args, n.quic), rest...)
}

// wantOutput checks a successful call's stdout.
func wantOutput(t *testing.T, r callResult, want string) {
	t.Helper()
	if r.err != nil {
		msg, code := r.report()
		t.Fatalf("call failed: exit %d, %q (stderr %q)", code, msg, r.stderr)
	}
	if r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	if r.stderr != "" {
		t.Errorf("stderr = %q, want nothing", r.stderr)
	}
}

// wantCallError checks that the call failed with exit 1 and the CallError JSON of code
// (with msg in its message) as the one line on stderr, and returns the error.
func wantCallError(t *testing.T, r callResult, code, msg string) call.CallError {
	t.Helper()
	if r.err == nil {
		t.Fatalf("call succeeded with %q, want %s", r.stdout, code)
	}
	line, exit := r.report()
	if exit != exitFailure {
		t.Errorf("exit code %d, want %d (%q)", exit, exitFailure, line)
	}
	body, ok := strings.CutSuffix(line, "\n")
	if !ok || strings.Contains(body, "\n") {
		t.Fatalf("stderr %q is not one line", line)
	}
	var ce call.CallError
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ce); err != nil {
		t.Fatalf("stderr %q is not a CallError JSON: %v", line, err)
	}
	if ce.Code != code || !strings.Contains(ce.Message, msg) {
		t.Errorf("CallError %s, want code %s with %q in the message", body, code, msg)
	}
	var again bytes.Buffer
	if err := json.Compact(&again, []byte(body)); err != nil || again.String() != body {
		t.Errorf("CallError JSON %q is not compact", body)
	}
	if r.stdout != "" {
		t.Errorf("stdout = %q, want nothing", r.stdout)
	}
	return ce
}

// apiKey makes an API key with scopes and returns the token and its [[api_keys]] entry.
func apiKey(t *testing.T, scopes ...string) (token, toml string, entry core.APIKeyEntry) {
	t.Helper()
	tok, entry, err := core.NewAPIKey(scopes, "test")
	if err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(scopes))
	for i, s := range scopes {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	toml = fmt.Sprintf("[[api_keys]]\nprefix = %q\nhash = %q\nscopes = [%s]\n", entry.Prefix, entry.Hash, strings.Join(quoted, ", "))
	return string(tok.Raw), toml, entry
}

func TestCallEcho(t *testing.T) {
	n := startServe(t)
	for _, network := range callNetworks {
		t.Run(network.name, func(t *testing.T) {
			wantOutput(t, runCall(t, n.callArgs(network.extra, "demo/echo", `{"a":[1,2]}`)...), `{"a":[1,2]}`+"\n")
			// Input is compacted; no input is null; a leading slash is accepted.
			wantOutput(t, runCall(t, n.callArgs(network.extra, "/demo/echo", " {\n \"a\" : [ 1, \"<&>\" ] } ")...), `{"a":[1,"<&>"]}`+"\n")
			wantOutput(t, runCall(t, n.callArgs(network.extra, "demo/echo")...), "null\n")
			// Flags after the arguments, "--" before an input that looks like a flag.
			wantOutput(t, runCall(t, append(network.extra, n.quic, "demo/echo", "--pin", n.fp, "--", "-5")...), "-5\n")
		})
	}
}

func TestCallTicks(t *testing.T) {
	n := startServe(t)
	for _, network := range callNetworks {
		t.Run(network.name, func(t *testing.T) {
			wantOutput(t, runCall(t, n.callArgs(network.extra, "demo/ticks", `{"count":3}`)...), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n")
			wantOutput(t, runCall(t, n.callArgs(network.extra, "demo/ticks", `{"count":2,"interval_ms":10}`)...), "{\"n\":1}\n{\"n\":2}\n")
			wantOutput(t, runCall(t, n.callArgs(network.extra, "demo/ticks", `{"count":0}`)...), "")
			wantCallError(t, runCall(t, n.callArgs(network.extra, "demo/ticks", `{"count":10001}`)...), call.CodeInvalidInput, "/count")
			wantCallError(t, runCall(t, n.callArgs(network.extra, "demo/ticks")...), call.CodeInvalidInput, "invalid input")
		})
	}
}

func TestCallWhoami(t *testing.T) {
	demoToken, demoKey, demoEntry := apiKey(t, "demo")
	otherToken, otherKey, _ := apiKey(t, "read")
	client := t.TempDir()
	var idOut bytes.Buffer
	if err := (&cli{stdout: &idOut, stderr: io.Discard}).run(t.Context(), []string{"id", "--state", client}); err != nil {
		t.Fatal(err)
	}
	peerFP := strings.TrimSpace(idOut.String())
	config := filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, config, demoKey+otherKey+"[[peers]]\nid = \"carol\"\nfingerprints = [\""+peerFP+"\"]\nscopes = [\"demo\"]\n")
	n := startServe(t, "--config", config)

	for _, network := range callNetworks {
		t.Run(network.name, func(t *testing.T) {
			whoami := n.callArgs(network.extra, "demo/whoami")
			r := runCall(t, whoami...)
			ce := wantCallError(t, r, call.CodeForbidden, "authentication required")
			if ce.Retryable {
				t.Error("FORBIDDEN marked retryable")
			}
			wantCallError(t, runCall(t, append([]string{"--token", otherToken}, whoami...)...), call.CodeForbidden, "missing required scope: demo")
			// A token that resolves to nothing falls back to the (anonymous) connection.
			wantCallError(t, runCall(t, append([]string{"--token", "alk_nothing-here"}, whoami...)...), call.CodeForbidden, "authentication required")

			r = runCall(t, append([]string{"--token", demoToken}, whoami...)...)
			wantOutput(t, r, `{"id":"`+demoEntry.Prefix+`"}`+"\n")
			// A known peer's certificate is its identity, without a token.
			wantOutput(t, runCall(t, append([]string{"--state", client}, whoami...)...), `{"id":"carol"}`+"\n")
		})
	}
	if logs := n.stderr.String(); strings.Contains(logs, demoToken) || strings.Contains(logs, otherToken) {
		t.Error("serve logged a token")
	}
}

// TestCallReload checks that the call handler resolves tokens from the live
// configuration: a key added or removed by a reload works or stops working at once.
func TestCallReload(t *testing.T) {
	token, key, entry := apiKey(t, "demo")
	config := filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, config, "")
	n := startServe(t, "--config", config)
	whoami := n.callArgs(nil, "--token", token, "demo/whoami")

	wantCallError(t, runCall(t, whoami...), call.CodeForbidden, "authentication required")
	writeFile(t, config, key)
	if err := n.triggerReload(); err != nil {
		t.Fatal(err)
	}
	wantOutput(t, runCall(t, whoami...), `{"id":"`+entry.Prefix+`"}`+"\n")
	writeFile(t, config, "")
	if err := n.triggerReload(); err != nil {
		t.Fatal(err)
	}
	wantCallError(t, runCall(t, whoami...), call.CodeForbidden, "authentication required")
}

func TestCallUnknownOperation(t *testing.T) {
	n := startServe(t)
	for _, network := range callNetworks {
		t.Run(network.name, func(t *testing.T) {
			ce := wantCallError(t, runCall(t, n.callArgs(network.extra, "demo/nope", `{}`)...), call.CodeNotFound, "operation not found: demo/nope")
			if ce.Retryable || ce.Details != nil {
				t.Errorf("NOT_FOUND %+v: want not retryable, no details", ce)
			}
		})
	}
}

func TestCallUsageErrors(t *testing.T) {
	fp := coretest.NewIdentity(t).Fingerprint
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"invalid input", []string{"--insecure", "127.0.0.1:1", "demo/echo", "{nope"}, "JSON-INPUT is not valid JSON"},
		{"empty input", []string{"--insecure", "127.0.0.1:1", "demo/echo", ""}, "JSON-INPUT is not valid JSON"},
		{"two values", []string{"--insecure", "127.0.0.1:1", "demo/echo", "1 2"}, "JSON-INPUT is not valid JSON"},
		{"no arguments", []string{"--insecure"}, "missing HOST:PORT and OPERATION"},
		{"no operation", []string{"--insecure", "127.0.0.1:1"}, "missing OPERATION"},
		{"empty operation", []string{"--insecure", "127.0.0.1:1", ""}, "OPERATION is empty"},
		{"too many arguments", []string{"--insecure", "127.0.0.1:1", "demo/echo", "1", "2"}, "got 4 arguments"},
		{"no pin", []string{"127.0.0.1:1", "demo/echo"}, "--pin"},
		{"pin and insecure", []string{"--pin", fp, "--insecure", "127.0.0.1:1", "demo/echo"}, "--pin and --insecure exclude each other"},
		{"bad pin", []string{"--pin", "ed25519:beef", "127.0.0.1:1", "demo/echo"}, "--pin"},
		{"bad address", []string{"--insecure", "localhost", "demo/echo"}, `"localhost" is not HOST:PORT`},
		{"negative timeout", []string{"--insecure", "--timeout", "-1s", "127.0.0.1:1", "demo/echo"}, "--timeout"},
		{"bad timeout", []string{"--insecure", "--timeout", "soon", "127.0.0.1:1", "demo/echo"}, "-timeout"},
		{"unknown flag", []string{"--alpn", "x", "127.0.0.1:1", "demo/echo"}, "flag provided but not defined: -alpn"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			c := &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
			err := c.run(t.Context(), append([]string{"call"}, tc.args...))
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v (%T), want a usage error", err, err)
			}
			line := checkOneLine(t, err, exitUsage)
			if !strings.HasPrefix(line, "alknet: call: ") || !strings.Contains(line, tc.want) {
				t.Errorf("message %q, want \"alknet: call: ...\" with %q", line, tc.want)
			}
			if stdout.Len() != 0 || stderr.Len() != 0 {
				t.Errorf("the command itself printed stdout %q, stderr %q", stdout.String(), stderr.String())
			}
		})
	}
}

func TestCallHelp(t *testing.T) {
	var stdout bytes.Buffer
	err := (&cli{stdout: &stdout, stderr: io.Discard}).run(t.Context(), []string{"call", "-h"})
	if code := report(io.Discard, err); code != exitOK {
		t.Fatalf("call -h: exit %d (%v)", code, err)
	}
	out := stdout.String()
	for _, want := range []string{"Usage: " + callSynopsis + "\n", "-pin FINGERPRINT", "-insecure", "-tcp", "-token TOKEN", "-timeout DUR", "-state DIR", "-passphrase-file FILE"} {
		if !strings.Contains(out, want) {
			t.Errorf("call -h lacks %q:\n%s", want, out)
		}
	}
}

// TestCallReport checks that a CallError is reported as its JSON alone, one line,
// exit 1, while other call failures keep the "alknet: " line.
func TestCallReport(t *testing.T) {
	ce := call.NewCallError(call.CodeForbidden, "missing required scope: demo\nsecond line")
	ce.Details = json.RawMessage(`{ "k" : 1 }`)
	err := fmt.Errorf("wrapped: %w", newCallFailure(ce))
	var out bytes.Buffer
	if code := report(&out, err); code != exitFailure {
		t.Errorf("exit code %d, want 1", code)
	}
	want := `{"code":"FORBIDDEN","message":"missing required scope: demo\nsecond line","retryable":false,"details":{"k":1}}` + "\n"
	if out.String() != want {
		t.Errorf("report printed %q, want %q", out.String(), want)
	}
	if exitCode(newCallFailure(call.ErrTimedOut())) != exitFailure {
		t.Error("a TIMEOUT call failure does not exit 1")
	}
	checkOneLine(t, errors.New("call: interrupted"), exitFailure)
}

func TestCallInsecure(t *testing.T) {
	n := startServe(t)
	r := runCall(t, "--insecure", "--tcp", n.tcp, "demo/echo", `"hi"`)
	if r.err != nil || r.stdout != "\"hi\"\n" {
		t.Fatalf("call --insecure: %q, %v", r.stdout, r.err)
	}
	want := "alknet: warning: --insecure: server identity not verified (fingerprint " + n.fp + ")\n"
	if r.stderr != want {
		t.Errorf("stderr = %q, want %q", r.stderr, want)
	}
}

func TestCallTransportErrors(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		r := runCall(t, "--pin", coretest.NewIdentity(t).Fingerprint, "--tcp", addr, "demo/echo")
		line := checkOneLine(t, r.err, exitFailure)
		if !strings.HasPrefix(line, "alknet: call: cannot reach "+addr) {
			t.Errorf("message %q, want it to say it cannot reach %s", line, addr)
		}
	})
	t.Run("no call handler", func(t *testing.T) {
		reg := core.NewRegistry()
		if err := reg.Register(echo.Handler{}); err != nil {
			t.Fatal(err)
		}
		srv := coretest.NewServer(t, reg)
		r := runCall(t, "--pin", srv.Identity.Fingerprint, srv.Addr, "demo/echo")
		line := checkOneLine(t, r.err, exitFailure)
		if want := "alknet: call: " + srv.Addr + " does not serve ALPN alknet/call\n"; line != want {
			t.Errorf("message %q, want %q", line, want)
		}
	})
	t.Run("wrong pin", func(t *testing.T) {
		n := startServe(t)
		other := coretest.NewIdentity(t).Fingerprint
		r := runCall(t, "--pin", other, n.quic, "demo/echo")
		line := checkOneLine(t, r.err, exitFailure)
		if !strings.Contains(line, "fingerprint mismatch: pinned "+other) {
			t.Errorf("message %q, want a fingerprint mismatch", line)
		}
	})
}

// holdOps are test operations that run until their call is aborted, reporting how
// their context ended.
type holdOps struct {
	started chan struct{} // one value per test/block handler that runs
	ended   chan error    // context.Cause of each handler's context, once done
}

func newHoldOps() *holdOps {
	return &holdOps{started: make(chan struct{}, 8), ended: make(chan error, 8)}
}

// register adds test/hold (a subscription that emits {"n":1} and then waits) and
// test/block (a query that waits).
func (h *holdOps) register(r *call.Registry) error {
	hold := call.Registration{Spec: call.NewSpec("test/hold", call.Subscription),
		Stream: func(ctx context.Context, _ *call.OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
			if err := emit(json.RawMessage(`{"n":1}`)); err != nil {
				h.ended <- err
				return err
			}
			<-ctx.Done()
			h.ended <- context.Cause(ctx)
			return ctx.Err()
		}}
	block := call.Registration{Spec: call.NewSpec("test/block", call.Query),
		Once: func(ctx context.Context, _ *call.OpContext, _ json.RawMessage) (json.RawMessage, error) {
			h.started <- struct{}{}
			<-ctx.Done()
			h.ended <- context.Cause(ctx)
			return nil, ctx.Err()
		}}
	if err := r.Register(hold); err != nil {
		return err
	}
	return r.Register(block)
}

// firstLine is a stdout that reports its first complete line.
type firstLine struct {
	syncBuffer
	once sync.Once
	line chan struct{}
}

func newFirstLine() *firstLine { return &firstLine{line: make(chan struct{})} }

func (w *firstLine) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	if bytes.Contains(p, []byte("\n")) {
		w.once.Do(func() { close(w.line) })
	}
	return n, err
}

// await waits for ch with a generous bound, failing the test when it passes.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// TestCallInterrupt cancels the command's context (Ctrl-C) while a subscription or a
// query runs: the command returns at once with "call: interrupted", exit 1, and the
// handler on the node is cancelled. On TCP+TLS, where the abort and the close share one
// ordered stream, the handler must have been cancelled by call.aborted (its context's
// cause is context.Canceled), not by the connection closing.
func TestCallInterrupt(t *testing.T) {
	ops := newHoldOps()
	n := startServeWith(t, func(c *cli) { c.callOps = ops.register })
	for _, network := range callNetworks {
		for _, op := range []string{"demo/ticks", "test/hold", "test/block"} {
			t.Run(network.name+"/"+op, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				stdout := newFirstLine()
				done := make(chan callResult, 1)
				go func() {
					done <- runCallCtx(ctx, t, stdout, n.callArgs(network.extra, op, `{"count":5,"interval_ms":60000}`)...)
				}()
				if op == "test/block" {
					await(t, ops.started, "the query's handler to start")
				} else {
					await(t, stdout.line, "the first event")
				}
				cancel()
				r := await(t, done, "the command to return after the interrupt")
				if line := checkOneLine(t, r.err, exitFailure); line != "alknet: call: interrupted\n" {
					t.Errorf("message %q, want \"alknet: call: interrupted\"", line)
				}
				if op != "test/block" && stdout.String() != "{\"n\":1}\n" {
					t.Errorf("stdout = %q, want the first event only", stdout.String())
				}
				if op == "demo/ticks" {
					return
				}
				cause := await(t, ops.ended, "the handler on the node to be cancelled")
				switch {
				case network.name == "tcp" && cause != context.Canceled:
					t.Errorf("handler cancelled with cause %v, want context.Canceled (call.aborted)", cause)
				case cause == nil:
					t.Error("handler ended without cause")
				default:
					t.Logf("handler cancelled: %v", cause)
				}
			})
		}
	}
}

// TestCallTimeout checks --timeout for a subscription (which otherwise has no
// deadline) and a query: TIMEOUT, retryable, exit 1.
func TestCallTimeout(t *testing.T) {
	ops := newHoldOps()
	n := startServeWith(t, func(c *cli) { c.callOps = ops.register })
	stdout := newFirstLine()
	r := runCallCtx(t.Context(), t, stdout, n.callArgs(nil, "--timeout", "300ms", "demo/ticks", `{"count":2,"interval_ms":60000}`)...)
	r.stdout = ""
	ce := wantCallError(t, r, call.CodeTimeout, "request timed out")
	if !ce.Retryable {
		t.Error("TIMEOUT not retryable")
	}
	if stdout.String() != "{\"n\":1}\n" {
		t.Errorf("stdout = %q, want the first event", stdout.String())
	}

	r = runCall(t, n.callArgs([]string{"--tcp"}, "--timeout", "300ms", "test/block")...)
	wantCallError(t, r, call.CodeTimeout, "request timed out")
	await(t, ops.ended, "the query's handler to be cancelled")
}

// failingWriter is a stdout that cannot be written.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestCallStdoutFails checks that a subscription whose output cannot be printed is
// aborted on the node, and the command fails with one line.
func TestCallStdoutFails(t *testing.T) {
	ops := newHoldOps()
	n := startServeWith(t, func(c *cli) { c.callOps = ops.register })
	for _, network := range callNetworks {
		t.Run(network.name, func(t *testing.T) {
			r := runCallCtx(t.Context(), t, failingWriter{}, n.callArgs(network.extra, "test/hold")...)
			if line := checkOneLine(t, r.err, exitFailure); line != "alknet: call: write stdout: disk full\n" {
				t.Errorf("message %q", line)
			}
			cause := await(t, ops.ended, "the handler on the node to be cancelled")
			if network.name == "tcp" && cause != context.Canceled {
				t.Errorf("handler cancelled with cause %v, want context.Canceled (call.aborted)", cause)
			}
			t.Logf("handler cancelled: %v", cause)
		})
	}
}
