package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	msgplugin "github.com/alknet/alknet/examples/node/plugins/msg"
	"github.com/alknet/alknet/msg"
	"github.com/alknet/alknet/vault"
)

// pgDSNEnv names the test-only variable that points the tests at a PostgreSQL server
// (.ci/run starts a throwaway one).
const pgDSNEnv = "ALKNET_TEST_POSTGRES_DSN"

// msgPeers are the [[peers]] of a msg node: fingerprint -> scopes.
type msgPeers map[string][]string

// msgConfig returns a --config with the [msg] table body and the peers.
func msgConfig(table string, peers msgPeers) string {
	var b strings.Builder
	b.WriteString("[msg]\n" + table + "\n")
	i := 0
	for fp, scopes := range peers {
		i++
		b.WriteString(peerTOML(fmt.Sprintf("p%d", i), fp, scopes...))
	}
	return b.String()
}

// msgArgs are the dial flags of a msg command against n (QUIC, pinned).
func (n *node) msgArgs(sub, state string, rest ...string) []string {
	return append([]string{"msg", sub, "--state", state, "--pin", n.fp}, rest...)
}

// inboxLine is one line of msg inbox.
type inboxLine struct {
	ID          string `json:"id"`
	From        string `json:"from"`
	TS          string `json:"ts"`
	ContentType string `json:"content_type"`
	Body        string `json:"body"`
	Encoding    string `json:"encoding"`
}

// parseInbox parses msg inbox's stdout.
func parseInbox(t *testing.T, out string) []inboxLine {
	t.Helper()
	var lines []inboxLine
	for l := range strings.Lines(out) {
		var il inboxLine
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&il); err != nil {
			t.Fatalf("inbox line %q: %v", l, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, il.TS); err != nil {
			t.Errorf("inbox ts %q: %v", il.TS, err)
		}
		lines = append(lines, il)
	}
	return lines
}

// sendID runs msg send and returns the id it printed.
func sendID(t *testing.T, n *node, state, recipient, body string, extra ...string) string {
	t.Helper()
	r := mustRun(t, body, append(n.msgArgs("send", state, extra...), n.quic, recipient)...)
	id := strings.TrimSuffix(r.stdout, "\n")
	if raw, err := base64.RawURLEncoding.DecodeString(id); err != nil || len(raw) != msg.IDSize {
		t.Fatalf("msg send printed %q, want a base64url message id", r.stdout)
	}
	return id
}

// Three identities through `alknet serve`: alice and bob have their mailboxes on the
// node, carol may only send. Register, send, inbox and ack; the refusals.
func TestMsgEndToEnd(t *testing.T) {
	alice, aliceFP := newClientState(t)
	bob, bobFP := newClientState(t)
	carol, carolFP := newClientState(t)
	dave, _ := newClientState(t) // unknown to the node
	both := []string{msg.ScopeMailbox, msg.ScopeSend}
	n, _ := startServeConfig(t, msgConfig(`max_mailbox_messages = 100`, msgPeers{aliceFP: both, bobFP: both, carolFP: {msg.ScopeSend}}))

	for _, st := range []string{alice, bob} {
		r := mustRun(t, "", append(n.msgArgs("register", st), n.quic)...)
		if !strings.HasPrefix(r.stdout, "registered ed25519:") {
			t.Errorf("register printed %q", r.stdout)
		}
		info, err := os.Stat(filepath.Join(st, msgplugin.KeyFileName))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("client key file: %v, %v; want mode 0600", info, err)
		}
	}
	// carol's mailbox is not hosted here.
	checkFailure(t, runCmd(t, nil, "", append(n.msgArgs("register", carol), n.quic)...), exitFailure, "does not host the mailbox", "NOT_HOSTED")

	// alice and carol (binary, over TCP) write to bob; alice writes to the node itself,
	// whose bundle the node published at start.
	text := "hello bob ✓\n"
	id1 := sendID(t, n, alice, bobFP, text)
	binary := string([]byte{0xff, 0x00, 0xfe, 'x'})
	r := mustRun(t, binary, append(n.msgArgs("send", carol, "--tcp", "--content-type", "application/x-test"), n.tcp, bobFP)...)
	id2 := strings.TrimSpace(r.stdout)
	sendID(t, n, alice, n.fp, "to the node")

	// Refusals: dave is no peer and anonymous delivery is off; carol's mailbox is not
	// hosted here, so nobody finds her bundle; a SHA256 fingerprint names no key.
	checkFailure(t, runCmd(t, nil, "x", append(n.msgArgs("send", dave), n.quic, bobFP)...), exitFailure, "UNAUTHORIZED", "msg:send")
	checkFailure(t, runCmd(t, nil, "x", append(n.msgArgs("send", bob), n.quic, carolFP)...), exitFailure, "NOT_HOSTED")
	checkFailure(t, runCmd(t, nil, "x", append(n.msgArgs("send", bob), n.quic, "SHA256:"+strings.Repeat("ab", 32))...), exitUsage, "RECIPIENT")

	want := []inboxLine{
		{ID: id1, From: aliceFP, ContentType: msgplugin.TextContentType, Body: text, Encoding: msgplugin.EncodingText},
		{ID: id2, From: carolFP, ContentType: "application/x-test", Body: base64.StdEncoding.EncodeToString([]byte(binary)), Encoding: msgplugin.EncodingBase64},
	}
	checkInbox := func(out string) {
		t.Helper()
		got := parseInbox(t, out)
		if len(got) != len(want) {
			t.Fatalf("inbox = %+v, want %d messages", got, len(want))
		}
		for i := range got {
			got[i].TS = ""
			if got[i] != want[i] {
				t.Errorf("inbox line %d = %+v, want %+v", i, got[i], want[i])
			}
		}
	}
	// Without --ack the messages stay; with it they go; over TCP as well.
	checkInbox(mustRun(t, "", append(n.msgArgs("inbox", bob), n.quic)...).stdout)
	checkInbox(mustRun(t, "", append(n.msgArgs("inbox", bob, "--tcp", "--ack"), n.tcp)...).stdout)
	if out := mustRun(t, "", append(n.msgArgs("inbox", bob), n.quic)...).stdout; out != "" {
		t.Errorf("inbox after --ack printed %q", out)
	}
	if out := mustRun(t, "", append(n.msgArgs("inbox", alice), n.quic)...).stdout; out != "" {
		t.Errorf("alice's empty inbox printed %q", out)
	}

	// Nobody but the owner reads a mailbox: carol's inbox is not hosted, and carol's key
	// asking for bob's mailbox is refused before hosting is revealed.
	checkFailure(t, runCmd(t, nil, "", append(n.msgArgs("inbox", carol), n.quic)...), exitFailure, "NOT_HOSTED")
	c := dialMsg(t, n.fp, n.quic, loadNodeKey(t, carol), false)
	_, err := c.Fetch(t.Context(), msg.FetchOptions{Mailbox: msg.Mailbox(loadNodeKey(t, bob).Public().(ed25519.PublicKey))})
	if msg.CodeOf(err) != msg.CodeUnauthorized {
		t.Errorf("carol fetching bob's mailbox: %v, want UNAUTHORIZED", err)
	}

	// A long-poll inbox returns the message that lands while it waits.
	got := make(chan cmdResult, 1)
	go func() { got <- runCmd(t, nil, "", append(n.msgArgs("inbox", bob, "--wait", "1m", "--ack"), n.quic)...) }()
	id3 := sendID(t, n, alice, bobFP, "are you there?")
	res := awaitResult(t, got, "msg inbox --wait")
	if res.err != nil {
		t.Fatalf("inbox --wait: %v (%s)", res.err, res.stderr)
	}
	if l := parseInbox(t, res.stdout); len(l) != 1 || l[0].ID != id3 || l[0].Body != "are you there?" {
		t.Errorf("inbox --wait = %+v, want message %s", l, id3)
	}

	// A message that no longer opens (bob changed his X25519 key after it was sent) is
	// reported on stderr and kept; the others are printed and acknowledged.
	id4 := sendID(t, n, alice, bobFP, "for the old key")
	if err := os.Remove(filepath.Join(bob, msgplugin.KeyFileName)); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "", append(n.msgArgs("register", bob), n.quic)...)
	id5 := sendID(t, n, alice, bobFP, "for the new key")
	// The first round prints and acknowledges the new message, the second nothing; both
	// report the old one and keep it.
	for round, wantIDs := range [][]string{{id5}, nil} {
		res := runCmd(t, nil, "", append(n.msgArgs("inbox", bob, "--ack"), n.quic)...)
		if res.err == nil || exitCode(res.err) != exitFailure {
			t.Fatalf("round %d: inbox with an unopenable message: %v, want exit 1", round, res.err)
		}
		if !strings.Contains(res.stderr, id4) || !strings.Contains(res.stderr, "kept in the mailbox") {
			t.Errorf("round %d: stderr %q does not report message %s", round, res.stderr, id4)
		}
		var ids []string
		for _, l := range parseInbox(t, res.stdout) {
			ids = append(ids, l.ID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(wantIDs) {
			t.Errorf("round %d: inbox printed %v, want %v", round, ids, wantIDs)
		}
	}
}

// allow_anonymous lets identities that are no peers deliver (but not read or register).
func TestMsgAnonymous(t *testing.T) {
	bob, bobFP := newClientState(t)
	dave, _ := newClientState(t)
	n, _ := startServeConfig(t, msgConfig("allow_anonymous = true", msgPeers{bobFP: {msg.ScopeMailbox}}))
	mustRun(t, "", append(n.msgArgs("register", bob), n.quic)...)
	id := sendID(t, n, dave, bobFP, "hi from nobody")
	checkFailure(t, runCmd(t, nil, "", append(n.msgArgs("register", dave), n.quic)...), exitFailure, "NOT_HOSTED")
	l := parseInbox(t, mustRun(t, "", append(n.msgArgs("inbox", bob), n.quic)...).stdout)
	if len(l) != 1 || l[0].ID != id {
		t.Errorf("inbox = %+v, want %s", l, id)
	}
}

// The limits of msg send: stdin over 1 MiB, and a body over the node's frame cap.
func TestMsgSendLimits(t *testing.T) {
	alice, aliceFP := newClientState(t)
	n, _ := startServeConfig(t, msgConfig("", msgPeers{aliceFP: {msg.ScopeMailbox, msg.ScopeSend}}))
	mustRun(t, "", append(n.msgArgs("register", alice), n.quic)...)
	over := strings.Repeat("a", msg.MaxBodySize+1)
	checkFailure(t, runCmd(t, nil, over, append(n.msgArgs("send", alice), n.quic, aliceFP)...), exitFailure, "longer than 1048576 bytes")
	// The default 256 KiB frame cap carries about 127 KiB.
	limit := msg.MaxBodyForFrame(msg.DefaultMaxFrameBytes, len(msgplugin.TextContentType))
	sendID(t, n, alice, aliceFP, strings.Repeat("b", limit))
	checkFailure(t, runCmd(t, nil, strings.Repeat("c", limit+1), append(n.msgArgs("send", alice), n.quic, aliceFP)...), exitFailure, "TOO_LARGE", "max_frame_bytes")
	// 1 MiB, the most a message carries, passes a node that allows such frames.
	m, _ := startServeConfig(t, msgConfig(`max_frame_bytes = "1536KiB"`, msgPeers{aliceFP: {msg.ScopeMailbox, msg.ScopeSend}}))
	mustRun(t, "", append(m.msgArgs("register", alice), m.quic)...)
	sendID(t, m, alice, aliceFP, strings.Repeat("d", msg.MaxBodySize))
}

// The X25519 key file: created 0600, refused when group or others may read it.
func TestMsgKeyFile(t *testing.T) {
	alice, aliceFP := newClientState(t)
	n, _ := startServeConfig(t, msgConfig("", msgPeers{aliceFP: {msg.ScopeMailbox}}))
	path := filepath.Join(alice, msgplugin.KeyFileName)
	mustRun(t, "", append(n.msgArgs("register", alice), n.quic)...)
	first := readBytes(t, path)
	mustRun(t, "", append(n.msgArgs("register", alice), n.quic)...)
	if string(readBytes(t, path)) != string(first) {
		t.Error("register replaced an existing key file")
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	checkFailure(t, runCmd(t, nil, "", append(n.msgArgs("register", alice), n.quic)...), exitUsage, path, "0640", "chmod 600")
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkFailure(t, runCmd(t, nil, "", append(n.msgArgs("register", alice), n.quic)...), exitUsage, path, "PEM")
}

// With a keystore, node and client take the X25519 key from the vault
// (vault.PathMsgX25519) and write no key file.
func TestMsgVaultKey(t *testing.T) {
	pass := secretFile(t, "correct horse battery staple\n")
	server := recoverAbandon(t, pass)
	client := recoverAbandon(t, pass)
	cfg := filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, cfg, msgConfig("store = \"memory\"", msgPeers{abandonFP: {msg.ScopeMailbox, msg.ScopeSend}}))
	n := startServe(t, "--state", server, "--passphrase-file", pass, "--config", cfg)
	if n.fp != abandonFP {
		t.Fatalf("node fingerprint %s, want the vault's %s", n.fp, abandonFP)
	}
	// The node's own bundle, published at start, names the vault's key.
	v := vault.New()
	if err := v.Unlock([]byte(abandonPhrase), nil); err != nil {
		t.Fatal(err)
	}
	dk, err := v.DeriveEncryptionKey(vault.PathMsgX25519)
	if err != nil {
		t.Fatal(err)
	}
	xk, err := msg.NewX25519Key(dk.PrivateKey())
	dk.Destroy()
	v.Lock()
	if err != nil {
		t.Fatal(err)
	}
	owner := pubKeyOf(t, abandonFP)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	c := dialMsg(t, n.fp, n.quic, otherKey, false)
	b, err := c.GetKeys(t.Context(), owner)
	if err != nil || string(b.X25519) != string(xk.PublicKey().Bytes()) {
		t.Fatalf("node bundle %x, %v; want the vault's X25519 key %x", b.X25519, err, xk.PublicKey().Bytes())
	}
	// A client from the same keystore registers (the same mailbox), sends to itself and
	// reads it with the vault's key.
	r := mustRun(t, "", append(n.msgArgs("register", client, "--passphrase-file", pass), n.quic)...)
	if !strings.Contains(r.stdout, abandonFP) {
		t.Errorf("register printed %q", r.stdout)
	}
	id := sendID(t, n, client, abandonFP, "note to self", "--passphrase-file", pass)
	l := parseInbox(t, mustRun(t, "", append(n.msgArgs("inbox", client, "--passphrase-file", pass), n.quic)...).stdout)
	if len(l) != 1 || l[0].ID != id || l[0].From != abandonFP {
		t.Errorf("inbox = %+v, want %s from %s", l, id, abandonFP)
	}
	for _, dir := range []string{server, client} {
		if _, err := os.Stat(filepath.Join(dir, msgplugin.KeyFileName)); err == nil {
			t.Errorf("%s: a key file was written though the vault holds the key", dir)
		}
	}
}

// Two nodes on one PostgreSQL: a delivery through one lands in a long-poll inbox on
// the other.
func TestMsgPostgresTwoNodes(t *testing.T) {
	dsnFile := pgDSNFile(t)
	alice, aliceFP := newClientState(t)
	bob, bobFP := newClientState(t)
	peers := msgPeers{aliceFP: {msg.ScopeSend}, bobFP: {msg.ScopeMailbox}}
	table := fmt.Sprintf("store = \"postgres\"\npostgres_dsn_file = %q", dsnFile)
	a, _ := startServeConfig(t, msgConfig(table, peers))
	b, _ := startServeConfig(t, msgConfig(table, peers))
	mustRun(t, "", append(a.msgArgs("register", bob), a.quic)...)

	got := make(chan cmdResult, 1)
	go func() { got <- runCmd(t, nil, "", append(a.msgArgs("inbox", bob, "--wait", "1m", "--ack"), a.quic)...) }()
	id := sendID(t, b, alice, bobFP, "through the fleet") // bob's bundle, registered on a, read on b
	res := awaitResult(t, got, "msg inbox --wait on the other node")
	if res.err != nil {
		t.Fatalf("inbox: %v (%s)", res.err, res.stderr)
	}
	if l := parseInbox(t, res.stdout); len(l) != 1 || l[0].ID != id {
		t.Errorf("inbox on node a = %+v, want %s delivered on node b", l, id)
	}
	if out := mustRun(t, "", append(b.msgArgs("inbox", bob), b.quic)...).stdout; out != "" {
		t.Errorf("node b still lists %q after the ack on node a", out)
	}
}

// Crash: kill -9 the node during a burst of deliveries; after a restart every delivery
// answered ok is fetched exactly once.
func TestMsgCrash(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) { msgCrash(t, "") })
	t.Run("postgres", func(t *testing.T) {
		dsnFile := pgDSNFile(t)
		msgCrash(t, fmt.Sprintf("store = \"postgres\"\npostgres_dsn_file = %q", dsnFile))
	})
}

func msgCrash(t *testing.T, table string) {
	alice, aliceFP := newClientState(t)
	bob, bobFP := newClientState(t)
	state := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, cfg, msgConfig(table+"\nsends_per_minute = 1000000", msgPeers{aliceFP: {msg.ScopeSend}, bobFP: {msg.ScopeMailbox}}))
	p := startServeProcess(t, state, cfg)
	mustRun(t, "", append(p.msgArgs("register", bob), p.quic)...)

	aliceKey, bobKey := loadNodeKey(t, alice), loadNodeKey(t, bob)
	bobPub := bobKey.Public().(ed25519.PublicKey)
	// A fail-safe for the whole test: it turns a hang into a failure.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	bundle, err := dialMsg(t, p.fp, p.quic, aliceKey, false).GetKeys(ctx, bobPub)
	if err != nil {
		t.Fatal(err)
	}
	const senders, killAfter = 8, 64
	var (
		mu   sync.Mutex
		oks  = map[[msg.IDSize]byte]bool{}
		kill sync.Once
		wg   sync.WaitGroup
	)
	for range senders {
		// TCP: a killed node resets the connection at once (QUIC would wait for its
		// idle timeout). One connection per sender, as TCP carries one call at a time.
		sender := dialMsg(t, p.fp, p.tcp, aliceKey, true)
		wg.Go(func() {
			for {
				env, err := msg.Seal(aliceKey, bobPub, bundle, []byte("burst"), "text/plain")
				if err != nil {
					t.Error(err)
					return
				}
				_, err = sender.Deliver(ctx, env)
				if err != nil {
					return // the node is gone
				}
				mu.Lock()
				oks[env.ID] = true
				n := len(oks)
				mu.Unlock()
				if n >= killAfter {
					kill.Do(p.kill)
				}
			}
		})
	}
	wg.Wait()
	kill.Do(p.kill) // in case every sender failed first
	if len(oks) < killAfter {
		t.Fatalf("only %d deliveries answered ok before the node went away", len(oks))
	}

	q := startServeProcess(t, state, cfg)
	if q.fp != p.fp {
		t.Fatalf("restarted node has fingerprint %s, was %s", q.fp, p.fp)
	}
	reader := dialMsg(t, q.fp, q.quic, bobKey, false)
	seen := map[[msg.IDSize]byte]int{}
	after := ""
	for {
		page, err := reader.Fetch(ctx, msg.FetchOptions{After: after})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Envelopes) == 0 {
			break
		}
		for _, e := range page.Envelopes {
			seen[e.Envelope.ID]++
		}
		after = page.Next
	}
	for id := range oks {
		if seen[id] != 1 {
			t.Errorf("delivery %x answered ok is fetched %d times, want once", id, seen[id])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("envelope %x fetched %d times", id, n)
		}
	}
	t.Logf("%d deliveries answered ok, %d envelopes after the restart", len(oks), len(seen))
}

// serveProcess is `alknet serve` in a child process (the test binary run as the
// command), for tests that kill it.
type serveProcess struct {
	node
	cmd  *exec.Cmd
	once sync.Once
}

// startServeProcess starts serve on state with config and waits for its ready line.
func startServeProcess(t *testing.T, state, config string) *serveProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "serve", "--state", state, "--listen", "127.0.0.1:0", "--config", config, "--log-level", "warn")
	cmd.Env = append(os.Environ(), runAsCommandEnv+"=1")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{cmd: cmd}
	t.Cleanup(p.kill)
	// A fail-safe: a child that never gets ready is killed, which ends the scan.
	timer := time.AfterFunc(2*waitTimeout, p.kill)
	defer timer.Stop()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "fingerprint "); ok {
			p.fp = v
		}
		if v, ok := strings.CutPrefix(line, "listen quic "); ok {
			p.quic = v
		}
		if v, ok := strings.CutPrefix(line, "listen tcp "); ok {
			p.tcp = v
		}
		if line == "ready" {
			go io.Copy(io.Discard, out)
			return p
		}
	}
	t.Fatalf("serve process did not get ready; stderr:\n%s", stderr)
	return nil
}

// kill sends SIGKILL and reaps the process, once.
func (p *serveProcess) kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	})
}

// pgDSNFile returns a DSN file (mode 0600) for a fresh schema of the test PostgreSQL
// server, dropped when the test ends, or skips the test without a server. The schema is
// chosen by the DSN's search_path, as an operator would.
func pgDSNFile(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv(pgDSNEnv)
	if dsn == "" {
		t.Skip("no PostgreSQL: set " + pgDSNEnv + " (.ci/run starts one)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("PostgreSQL at %s: %v", pgDSNEnv, err)
	}
	defer conn.Close(ctx)
	schema := "alknet_msgnode_" + strings.ToLower(hex.EncodeToString(randomBytes(t, 8)))
	ident := pgx.Identifier{schema}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+ident); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+ident+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		dsn = u.String()
	} else {
		dsn += " search_path=" + schema
	}
	path := filepath.Join(t.TempDir(), "pg.dsn")
	writeFile(t, path, dsn+"\n")
	return path
}

// loadNodeKey returns the identity key of a client state directory (node.key).
func loadNodeKey(t *testing.T, state string) ed25519.PrivateKey {
	t.Helper()
	key, err := tlsconf.LoadKey(filepath.Join(state, keyFileName))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// pubKeyOf returns the public key of an ed25519:<hex> fingerprint.
func pubKeyOf(t *testing.T, fp string) ed25519.PublicKey {
	t.Helper()
	_, sum, err := core.ParseFingerprint(fp)
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.PublicKey(sum)
}

// dialMsg dials the alknet/msg of the node fp at addr as key, over TCP+TLS when tcp
// is set (QUIC otherwise); the client closes with the test.
func dialMsg(t *testing.T, fp, addr string, key ed25519.PrivateKey, tcp bool) *msg.Client {
	t.Helper()
	cert, err := tlsconf.Certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	network := endpoint.NetworkQUIC
	if tcp {
		network = endpoint.NetworkTCP
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c, err := msg.Dial(ctx, addr, endpoint.DialOptions{Network: network, TLS: tlsconf.ClientOptions{Pin: fp, Certificate: &cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// awaitResult waits for a command running in the background, with a fail-safe bound
// well past its own --wait.
func awaitResult(t *testing.T, ch <-chan cmdResult, what string) cmdResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(3 * time.Minute):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// The [msg] table: errors name the key; the DSN file resolves against the config
// directory, must not be readable by others, and its content is never shown.
func TestMsgConfig(t *testing.T) {
	serveErr := func(t *testing.T, dir, content string) error {
		t.Helper()
		path := filepath.Join(dir, "alknet.toml")
		writeFile(t, path, content)
		c := &cli{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard,
			ready: func(serveInfo) { t.Error("serve got ready with an invalid [msg]") }}
		err := c.run(t.Context(), []string{"serve", "--state", t.TempDir(), "--listen", "127.0.0.1:0", "--config", path})
		if err == nil {
			t.Fatal("serve accepted an invalid [msg]")
		}
		return err
	}
	for _, tc := range []struct{ name, table, want string }{
		{"store", `store = "sqlite"`, "msg.store"},
		{"postgres without dsn", `store = "postgres"`, "msg.postgres_dsn_file"},
		{"frame cap", `max_frame_bytes = "8MiB"`, "msg.max_frame_bytes"},
		{"size", `max_mailbox_bytes = "lots"`, "lots"},
		{"unknown key", `stor = "bbolt"`, `unknown key "msg.stor"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line := checkOneLine(t, serveErr(t, t.TempDir(), "[msg]\n"+tc.table+"\n"), exitUsage)
			if !strings.Contains(line, tc.want) {
				t.Errorf("message %q lacks %q", line, tc.want)
			}
		})
	}
	const secret = "s3cret-pw"
	pgTable := "[msg]\nstore = \"postgres\"\npostgres_dsn_file = \"pg.dsn\"\n"
	t.Run("dsn file mode", func(t *testing.T) {
		dir := t.TempDir()
		dsn := filepath.Join(dir, "pg.dsn")
		writeFile(t, dsn, "host=/nonexistent password="+secret+"\n")
		if err := os.Chmod(dsn, 0o644); err != nil {
			t.Fatal(err)
		}
		line := checkOneLine(t, serveErr(t, dir, pgTable), exitUsage)
		for _, want := range []string{dsn, "chmod 600"} {
			if !strings.Contains(line, want) {
				t.Errorf("message %q lacks %q", line, want)
			}
		}
	})
	t.Run("unreachable database", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "pg.dsn"), "host="+filepath.Join(dir, "no-socket-here")+" user=alknet password="+secret+" connect_timeout=5\n")
		line := checkOneLine(t, serveErr(t, dir, pgTable), exitFailure)
		if strings.Contains(line, secret) {
			t.Errorf("message %q shows the DSN's password", line)
		}
	})
}

// A reloaded [msg] table takes effect on restart, and the reload says so; peers and
// their scopes apply at once.
func TestMsgReload(t *testing.T) {
	bob, bobFP := newClientState(t)
	n, path := startServeConfig(t, msgConfig("", nil))
	checkFailure(t, runCmd(t, nil, "", append(n.msgArgs("register", bob), n.quic)...), exitFailure, "NOT_HOSTED")
	writeFile(t, path, msgConfig("allow_anonymous = true", msgPeers{bobFP: {msg.ScopeMailbox}}))
	if err := n.triggerReload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if !strings.Contains(n.stderr.String(), "[msg] changes take effect on restart") {
		t.Errorf("the reload line does not say that [msg] needs a restart:\n%s", n.stderr)
	}
	mustRun(t, "", append(n.msgArgs("register", bob), n.quic)...) // the new peer's mailbox is hosted
}

// Usage errors exit 2 before anything is dialled.
func TestMsgUsage(t *testing.T) {
	state := t.TempDir()
	fp := "ed25519:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"msg"}, "missing subcommand"},
		{[]string{"msg", "frob"}, `unknown subcommand "frob"`},
		{[]string{"msg", "send", "--state", state, "--pin", fp, "127.0.0.1:1"}, "want HOST:PORT RECIPIENT"},
		{[]string{"msg", "send", "--state", state, "127.0.0.1:1", fp}, "--pin"},
		{[]string{"msg", "send", "--state", state, "--pin", fp, "127.0.0.1:1", "bob"}, `RECIPIENT "bob"`},
		{[]string{"msg", "send", "--state", state, "--pin", fp, "--ttl", "0.5s", "127.0.0.1:1", fp}, "--ttl"},
		{[]string{"msg", "inbox", "--state", state, "--pin", fp, "--wait", "61s", "127.0.0.1:1"}, "--wait 1m1s"},
		{[]string{"msg", "register", "--state", state, "--pin", fp, "--valid", "forever", "127.0.0.1:1"}, "-valid"},
		{[]string{"msg", "inbox", "--state", state, "--insecure", "nohostport"}, "not HOST:PORT"},
	} {
		checkFailure(t, runCmd(t, nil, "", tc.args...), exitUsage, tc.want)
	}
	for _, sub := range []string{"register", "send", "inbox"} {
		r := runCmd(t, nil, "", "help", "msg", sub)
		if exitCode(r.err) != exitOK || !strings.HasPrefix(r.stdout, "Usage: alknet msg "+sub) {
			t.Errorf("help msg %s printed %q", sub, r.stdout)
		}
	}
}

// serve closes its store when it stops: the same state directory serves again at once,
// with the mailbox and the node's key as they were.
func TestMsgRestart(t *testing.T) {
	alice, aliceFP := newClientState(t)
	state := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, cfg, msgConfig("", msgPeers{aliceFP: {msg.ScopeSend}}))
	n := startServe(t, "--state", state, "--config", cfg)
	id := sendID(t, n, alice, n.fp, "kept across a restart")
	key := readBytes(t, filepath.Join(state, msgplugin.KeyFileName))
	n.stop(t)

	m := startServe(t, "--state", state, "--config", cfg)
	if m.fp != n.fp {
		t.Fatalf("fingerprint %s after restart, was %s", m.fp, n.fp)
	}
	if string(readBytes(t, filepath.Join(state, msgplugin.KeyFileName))) != string(key) {
		t.Error("the node's X25519 key file changed across a restart")
	}
	// The node reads its own mailbox with its own state directory.
	l := parseInbox(t, mustRun(t, "", append(m.msgArgs("inbox", state), m.quic)...).stdout)
	if len(l) != 1 || l[0].ID != id || l[0].From != aliceFP {
		t.Errorf("inbox after restart = %+v, want %s from %s", l, id, aliceFP)
	}
}
