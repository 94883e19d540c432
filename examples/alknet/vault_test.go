package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/vault"
)

// The BIP39 test mnemonic and the node fingerprint it gives with an empty BIP39
// passphrase: the Ed25519 public key at vault.PathIdentity.
const (
	abandonPhrase = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
	abandonFP     = "ed25519:e78c2766a792f09bfccb51493968ac322283e8d021a30063784d806929762ecc"
	// abandonBlob is "sk-test-123" sealed under key version 2 of abandonPhrase.
	abandonBlob = `{"key_version":2,"salt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","iv":"DA0ODxAREhMUFRYX","data":"w1j3EjEFq6LZ4xgwGr8Sn8luZSNPyTF9G+Ot"}`
)

// cmdResult is the outcome of one in-process command.
type cmdResult struct {
	stdout, stderr string
	err            error
}

// runCmd runs one command in-process with stdin, fast Argon2 parameters and prompt
// (nil: no terminal).
func runCmd(t *testing.T, prompt func(string) ([]byte, error), stdin string, args ...string) cmdResult {
	t.Helper()
	var stdout, stderr syncBuffer
	c := &cli{
		stdin:          strings.NewReader(stdin),
		stdout:         &stdout,
		stderr:         &stderr,
		prompt:         prompt,
		keystoreParams: vault.MinKeystoreParams(),
	}
	err := c.run(t.Context(), args)
	return cmdResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// mustRun runs a command that must succeed.
func mustRun(t *testing.T, stdin string, args ...string) cmdResult {
	t.Helper()
	r := runCmd(t, nil, stdin, args...)
	if r.err != nil {
		t.Fatalf("alknet %s: %v (stderr %q)", strings.Join(args, " "), r.err, r.stderr)
	}
	return r
}

// secretFile writes content to a new mode-0600 file and returns its path.
func secretFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "passphrase")
	writeFile(t, path, content)
	return path
}

// recoverAbandon recovers abandonPhrase into a new state directory with the passphrase
// in passFile and returns the directory.
func recoverAbandon(t *testing.T, passFile string, extra ...string) string {
	t.Helper()
	state := t.TempDir()
	args := append([]string{"vault", "recover", "--state", state, "--passphrase-file", passFile}, extra...)
	mustRun(t, abandonPhrase+"\n", args...)
	return state
}

// idOf runs `alknet id` for state with passFile and returns the fingerprint.
func idOf(t *testing.T, state, passFile string) string {
	t.Helper()
	r := mustRun(t, "", "id", "--state", state, "--passphrase-file", passFile)
	fp, ok := strings.CutSuffix(r.stdout, "\n")
	if !ok || !fingerprintRE.MatchString(fp) {
		t.Fatalf("id printed %q, want one fingerprint line", r.stdout)
	}
	return fp
}

// checkFailure checks that r failed with exit code and that stderr, after the command
// and report, is exactly one "alknet: " line containing every want. It returns the line.
func checkFailure(t *testing.T, r cmdResult, code int, want ...string) string {
	t.Helper()
	if r.err == nil {
		t.Fatalf("succeeded (stdout %q), want exit %d", r.stdout, code)
	}
	var stderr bytes.Buffer
	stderr.WriteString(r.stderr)
	if got := report(&stderr, r.err); got != code {
		t.Errorf("exit code %d, want %d (%v)", got, code, r.err)
	}
	line := stderr.String()
	if !strings.HasPrefix(line, "alknet: ") || strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Errorf("stderr %q, want exactly one line starting \"alknet: \"", line)
	}
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Errorf("message %q lacks %q", line, w)
		}
	}
	return line
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists (%v), want it absent", path, err)
	}
}

// TestVaultRecoverAcceptance: recovering the BIP39 test mnemonic gives the node the
// fingerprint of its vault identity key.
func TestVaultRecoverAcceptance(t *testing.T) {
	pass := secretFile(t, "correct horse battery staple\n")
	state := t.TempDir()
	r := mustRun(t, abandonPhrase+"\n", "vault", "recover", "--state", state, "--passphrase-file", pass)
	ksPath := filepath.Join(state, keystoreFileName)
	if r.stdout != "" {
		t.Errorf("recover stdout = %q, want nothing", r.stdout)
	}
	wantErr := "keystore written to " + ksPath + "\nnode fingerprint: " + abandonFP + "\n"
	if r.stderr != wantErr {
		t.Errorf("recover stderr = %q, want %q", r.stderr, wantErr)
	}
	r = mustRun(t, "", "id", "--state", state, "--passphrase-file", pass)
	if r.stdout != abandonFP+"\n" || r.stderr != "" {
		t.Errorf("id: stdout %q, stderr %q; want %q", r.stdout, r.stderr, abandonFP+"\n")
	}
	st, err := os.Stat(ksPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("keystore mode %v, want 0600", st.Mode().Perm())
	}
	checkAbsent(t, filepath.Join(state, keyFileName))
	checkAbsent(t, filepath.Join(state, pubFileName))

	// A second recover refuses and leaves the keystore alone.
	before := readBytes(t, ksPath)
	r = runCmd(t, nil, abandonPhrase, "vault", "recover", "--state", state, "--passphrase-file", pass)
	checkFailure(t, r, exitFailure, ksPath, "already exists", "will not be overwritten")
	if !bytes.Equal(readBytes(t, ksPath), before) {
		t.Error("a refused recover changed the keystore")
	}
}

func TestVaultRecoverInvalidMnemonic(t *testing.T) {
	pass := secretFile(t, "pw")
	cases := []struct{ name, in, want string }{
		{"unknown word", strings.Replace(abandonPhrase, "about", "abuot", 1), "word 12 (index 11) is not in the BIP39 English word list"},
		{"checksum", strings.Replace(abandonPhrase, "about", "abandon", 1), "checksum mismatch"},
		{"word count", "abandon about", "2 words"},
		{"empty", "", "0 words"},
		{"too long", strings.Repeat("abandon ", 200), "longer than the limit of 1024 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			r := runCmd(t, nil, tc.in, "vault", "recover", "--state", state, "--passphrase-file", pass)
			line := checkFailure(t, r, exitFailure, tc.want)
			if strings.Contains(line, "abuot") {
				t.Errorf("message %q quotes the mnemonic", line)
			}
			checkAbsent(t, filepath.Join(state, keystoreFileName))
		})
	}
}

func TestVaultInit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		words int
	}{
		{"default", nil, 24},
		{"12 words", []string{"--words", "12"}, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pass := secretFile(t, "init passphrase\n")
			state := t.TempDir()
			ksPath := filepath.Join(state, keystoreFileName)
			args := append([]string{"vault", "init", "--state", state, "--passphrase-file", pass}, tc.args...)
			r := mustRun(t, "", args...)

			phrase, ok := strings.CutSuffix(r.stdout, "\n")
			if !ok || strings.Contains(phrase, "\n") {
				t.Fatalf("stdout %q, want the mnemonic on one line", r.stdout)
			}
			m, err := vault.ParseMnemonic([]byte(phrase))
			if err != nil {
				t.Fatalf("printed mnemonic does not parse: %v", err)
			}
			if m.Words() != tc.words {
				t.Errorf("%d words, want %d", m.Words(), tc.words)
			}
			m.Destroy()
			fp := idOf(t, state, pass)
			for _, want := range []string{
				"Write these " + strconv.Itoa(tc.words) + " words down and keep them offline",
				"They will not be shown again.",
				"keystore written to " + ksPath + "\n",
				"node fingerprint: " + fp + "\n",
			} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
			if strings.Contains(r.stderr, phrase) {
				t.Error("stderr repeats the mnemonic")
			}
			if strings.Contains(r.stderr, keyFileName+" is no longer used") {
				t.Errorf("stderr mentions node.key, which never existed:\n%s", r.stderr)
			}
			st, err := os.Stat(ksPath)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("keystore mode %v, want 0600", st.Mode().Perm())
			}
			checkAbsent(t, filepath.Join(state, keyFileName))

			// The printed mnemonic restores the same fingerprint elsewhere.
			other := t.TempDir()
			mustRun(t, phrase+"\n", "vault", "recover", "--state", other, "--passphrase-file", pass)
			if got := idOf(t, other, pass); got != fp {
				t.Errorf("recovered fingerprint %s, want %s", got, fp)
			}

			// A second init refuses and leaves the file byte-identical.
			before := readBytes(t, ksPath)
			r = runCmd(t, nil, "", "vault", "init", "--state", state, "--passphrase-file", pass)
			checkFailure(t, r, exitFailure, ksPath, "already exists", "will not be overwritten")
			if r.stdout != "" {
				t.Errorf("refused init printed %q", r.stdout)
			}
			if !bytes.Equal(readBytes(t, ksPath), before) {
				t.Error("a refused init changed the keystore")
			}
			if got := idOf(t, state, pass); got != fp {
				t.Errorf("fingerprint after a refused init %s, want %s", got, fp)
			}
		})
	}
}

// TestVaultReplacesNodeKey: once a keystore exists, node.key is no longer read, created
// or modified, and init says so.
func TestVaultReplacesNodeKey(t *testing.T) {
	state := t.TempDir()
	oldFP := strings.TrimSpace(mustRun(t, "", "id", "--state", state).stdout)
	keyPath := filepath.Join(state, keyFileName)
	keyBefore := readBytes(t, keyPath)

	pass := secretFile(t, "pw\n")
	r := mustRun(t, abandonPhrase, "vault", "recover", "--state", state, "--passphrase-file", pass)
	if !strings.Contains(r.stderr, "note: "+keyPath+" is no longer used") {
		t.Errorf("stderr lacks the node.key note:\n%s", r.stderr)
	}
	if got := idOf(t, state, pass); got != abandonFP || got == oldFP {
		t.Errorf("id with a keystore = %s, want the vault's %s (node.key had %s)", got, abandonFP, oldFP)
	}
	if !bytes.Equal(readBytes(t, keyPath), keyBefore) {
		t.Error("node.key changed")
	}
	// A removed node.key is not recreated while the keystore exists.
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	idOf(t, state, pass)
	checkAbsent(t, keyPath)
}

func TestVaultWrongPassphrase(t *testing.T) {
	state := recoverAbandon(t, secretFile(t, "right\n"))
	ksPath := filepath.Join(state, keystoreFileName)
	before := readBytes(t, ksPath)
	wrong := secretFile(t, "wrong\n")
	cases := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"id", "", []string{"id"}},
		{"serve", "", []string{"serve", "--listen", "127.0.0.1:0"}},
		{"seal", "secret\n", []string{"vault", "seal"}},
		{"open", abandonBlob, []string{"vault", "open"}},
		{"pipe", "", []string{"pipe", "--alpn", "alknet/echo", "--insecure", "127.0.0.1:1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			c := &cli{stdin: strings.NewReader(tc.stdin), stdout: &stdout, stderr: &stderr,
				ready: func(serveInfo) { t.Error("serve got ready with a wrong passphrase") }}
			args := append(tc.args, "--state", state, "--passphrase-file", wrong)
			err := c.run(t.Context(), args)
			r := cmdResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
			line := checkFailure(t, r, exitFailure, "wrong passphrase", ksPath)
			if !errors.Is(err, vault.ErrKeystorePassphrase) {
				t.Errorf("error %v does not wrap vault.ErrKeystorePassphrase", err)
			}
			if strings.Contains(line, "wrong\n") || strings.Contains(line, "right") {
				t.Errorf("message %q contains a passphrase", line)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			if !bytes.Equal(readBytes(t, ksPath), before) {
				t.Error("the keystore changed")
			}
			checkAbsent(t, filepath.Join(state, keyFileName))
		})
	}
}

// TestVaultServe: serve presents the vault's identity and leaves node.key alone.
func TestVaultServe(t *testing.T) {
	pass := secretFile(t, "serve passphrase\n")
	state := recoverAbandon(t, pass)
	n := startServe(t, "--state", state, "--passphrase-file", pass)
	if n.info.Fingerprint != abandonFP || n.fp != abandonFP {
		t.Errorf("serve presents %s (stdout %s), want the vault's %s", n.info.Fingerprint, n.fp, abandonFP)
	}
	// pipe with its own vault identity reaches the node.
	client := recoverAbandon(t, pass)
	r := runPipe(t, []byte("vault hello"), "--state", client, "--passphrase-file", pass, "--alpn", "alknet/echo", "--pin", abandonFP, n.quic)
	if r.err != nil || string(r.stdout) != "vault hello" {
		t.Errorf("pipe: %q, %v (stderr %q)", r.stdout, r.err, r.stderr)
	}
	n.stop(t)
	if !strings.Contains(n.stderr.String(), `msg="node identity from the vault"`) {
		t.Errorf("no vault identity log line in:\n%s", n.stderr)
	}
	for _, dir := range []string{state, client} {
		checkAbsent(t, filepath.Join(dir, keyFileName))
		checkAbsent(t, filepath.Join(dir, pubFileName))
	}
}

func TestVaultSealOpen(t *testing.T) {
	pass := secretFile(t, "seal passphrase\n")
	state := recoverAbandon(t, pass)
	seal := func(t *testing.T, stdin string, extra ...string) string {
		t.Helper()
		r := mustRun(t, stdin, append([]string{"vault", "seal", "--state", state, "--passphrase-file", pass}, extra...)...)
		blob, ok := strings.CutSuffix(r.stdout, "\n")
		if !ok || strings.Contains(blob, "\n") || r.stderr != "" {
			t.Fatalf("seal: stdout %q, stderr %q; want one JSON line", r.stdout, r.stderr)
		}
		if _, err := vault.ParseEncryptedData([]byte(blob)); err != nil {
			t.Fatalf("seal printed an invalid blob %s: %v", blob, err)
		}
		return r.stdout
	}
	open := func(t *testing.T, blob string) string {
		t.Helper()
		r := mustRun(t, blob, "vault", "open", "--state", state, "--passphrase-file", pass)
		if r.stderr != "" {
			t.Errorf("open stderr %q", r.stderr)
		}
		return r.stdout
	}

	cases := []struct {
		name, in, want string
		extra          []string
	}{
		{"newline stripped", "sk-test-123\n", "sk-test-123", nil},
		{"crlf stripped", "sk-test-123\r\n", "sk-test-123", nil},
		{"one newline only", "two\n\n", "two\n", nil},
		{"no newline", "exact", "exact", nil},
		{"empty", "", "", nil},
		{"raw keeps the newline", "line\n", "line\n", []string{"--raw"}},
		{"raw crlf", "line\r\n", "line\r\n", []string{"--raw"}},
		{"binary raw", "\x00\xff\n\x01", "\x00\xff\n\x01", []string{"--raw"}},
		{"largest", strings.Repeat("s", maxSecretSize), strings.Repeat("s", maxSecretSize), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			blob := seal(t, tc.in, tc.extra...)
			if got := open(t, blob); got != tc.want {
				t.Errorf("round trip of %q gave %q, want %q", clipString(tc.in), clipString(got), clipString(tc.want))
			}
		})
	}

	t.Run("key versions", func(t *testing.T) {
		for _, kv := range []uint32{vault.CurrentKeyVersion, 3, 1000} {
			blob := seal(t, "versioned", "--key-version", strconv.FormatUint(uint64(kv), 10))
			var ed vault.EncryptedData
			if err := json.Unmarshal([]byte(blob), &ed); err != nil || ed.KeyVersion != kv {
				t.Errorf("--key-version %d: blob %s (%v)", kv, blob, err)
			}
			if got := open(t, blob); got != "versioned" {
				t.Errorf("--key-version %d: opened %q", kv, got)
			}
		}
		blob := seal(t, "default")
		if !strings.HasPrefix(blob, `{"key_version":2,`) {
			t.Errorf("default key version: %s", blob)
		}
	})

	t.Run("known blob", func(t *testing.T) {
		if got := open(t, abandonBlob); got != "sk-test-123" {
			t.Errorf("opened %q, want sk-test-123", got)
		}
		if got := open(t, abandonBlob+"\n"); got != "sk-test-123" {
			t.Errorf("opened %q with a trailing newline, want sk-test-123", got)
		}
	})

	t.Run("errors", func(t *testing.T) {
		tampered := strings.Replace(abandonBlob, `"data":"w`, `"data":"x`, 1)
		cases := []struct {
			name, stdin string
			args        []string
			want        []string
		}{
			{"malformed blob", "{not json", []string{"open"}, []string{"malformed encrypted data"}},
			{"missing field", `{"key_version":2}`, []string{"open"}, []string{"missing field"}},
			{"empty blob", "", []string{"open"}, []string{"malformed encrypted data"}},
			{"version 1 blob", strings.Replace(abandonBlob, `"key_version":2`, `"key_version":1`, 1), []string{"open"}, []string{"unsupported key version"}},
			{"tampered blob", tampered, []string{"open"}, []string{"decryption failed"}},
			{"blob too large", strings.Repeat(" ", vault.MaxEncryptedDataSize+1), []string{"open"}, []string{"longer than the limit"}},
			{"secret too large", strings.Repeat("s", maxSecretSize+1), []string{"seal"}, []string{"longer than the limit of 65536 bytes"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				args := append([]string{"vault"}, tc.args...)
				r := runCmd(t, nil, tc.stdin, append(args, "--state", state, "--passphrase-file", pass)...)
				checkFailure(t, r, exitFailure, tc.want...)
				if r.stdout != "" {
					t.Errorf("stdout = %q", clipString(r.stdout))
				}
			})
		}
	})

	t.Run("other vault", func(t *testing.T) {
		other := t.TempDir()
		mustRun(t, "", "vault", "init", "--state", other, "--words", "12", "--passphrase-file", pass)
		r := runCmd(t, nil, abandonBlob, "vault", "open", "--state", other, "--passphrase-file", pass)
		checkFailure(t, r, exitFailure, "decryption failed")
	})
}

func clipString(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func TestPassphraseFileRules(t *testing.T) {
	t.Run("group or other bits", func(t *testing.T) {
		for _, mode := range []os.FileMode{0o644, 0o640, 0o602} {
			path := secretFile(t, "pw\n")
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			state := t.TempDir()
			r := runCmd(t, nil, abandonPhrase, "vault", "recover", "--state", state, "--passphrase-file", path)
			checkFailure(t, r, exitUsage, path, "chmod 600")
			checkAbsent(t, filepath.Join(state, keystoreFileName))
		}
	})
	t.Run("refused contents", func(t *testing.T) {
		long := strings.Repeat("p", vault.MaxPassphraseLength+1)
		for _, tc := range []struct{ name, content, want string }{
			{"empty", "", "empty passphrase"},
			{"only newline", "\n", "empty passphrase"},
			{"only crlf", "\r\n", "empty passphrase"},
			{"too long", long, "longer than 1024 bytes"},
			{"too long with newline", long + "\n", "longer than 1024 bytes"},
			{"far too long", strings.Repeat("p", 10000), "longer than 1024 bytes"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				state := t.TempDir()
				r := runCmd(t, nil, abandonPhrase, "vault", "recover", "--state", state, "--passphrase-file", secretFile(t, tc.content))
				checkFailure(t, r, exitUsage, tc.want)
				checkAbsent(t, filepath.Join(state, keystoreFileName))
			})
		}
	})
	t.Run("missing and directory", func(t *testing.T) {
		dir := t.TempDir()
		for _, path := range []string{filepath.Join(dir, "absent"), dir} {
			r := runCmd(t, nil, abandonPhrase, "vault", "recover", "--state", t.TempDir(), "--passphrase-file", path)
			checkFailure(t, r, exitUsage, "--passphrase-file", path)
		}
	})
	t.Run("newline stripping", func(t *testing.T) {
		state := recoverAbandon(t, secretFile(t, "secret\r\n"))
		if got := idOf(t, state, secretFile(t, "secret")); got != abandonFP {
			t.Errorf("id = %s", got)
		}
		if got := idOf(t, state, secretFile(t, "secret\n")); got != abandonFP {
			t.Errorf("id = %s", got)
		}
		// Only one newline is stripped: "secret\n" is another passphrase.
		r := runCmd(t, nil, "", "id", "--state", state, "--passphrase-file", secretFile(t, "secret\n\n"))
		checkFailure(t, r, exitFailure, "wrong passphrase")
	})
	t.Run("longest", func(t *testing.T) {
		longest := strings.Repeat("p", vault.MaxPassphraseLength)
		state := recoverAbandon(t, secretFile(t, longest+"\r\n"))
		if got := idOf(t, state, secretFile(t, longest)); got != abandonFP {
			t.Errorf("id = %s", got)
		}
	})
	t.Run("fifo", func(t *testing.T) {
		pass := secretFile(t, "piped\n")
		state := recoverAbandon(t, pass)
		fifo := filepath.Join(t.TempDir(), "fifo")
		if err := syscall.Mkfifo(fifo, 0o644); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		done := make(chan error, 1)
		go func() {
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				done <- err
				return
			}
			_, err = io.WriteString(f, "piped\n")
			done <- errors.Join(err, f.Close())
		}()
		if got := idOf(t, state, fifo); got != abandonFP {
			t.Errorf("id = %s", got)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bip39 passphrase", func(t *testing.T) {
		pass := secretFile(t, "pw\n")
		trezor := secretFile(t, "TREZOR\n")
		state := t.TempDir()
		r := mustRun(t, abandonPhrase, "vault", "recover", "--state", state, "--passphrase-file", pass, "--bip39-passphrase-file", trezor)
		fp := idOf(t, state, pass)
		if fp == abandonFP {
			t.Errorf("the BIP39 passphrase did not change the fingerprint %s", fp)
		}
		if !strings.Contains(r.stderr, "node fingerprint: "+fp+"\n") {
			t.Errorf("recover stderr %q lacks the fingerprint %s", r.stderr, fp)
		}
		// The same phrase and BIP39 passphrase with another keystore passphrase give
		// the same node.
		other := recoverAbandon(t, secretFile(t, "other\n"), "--bip39-passphrase-file", secretFile(t, "TREZOR"))
		if got := idOf(t, other, secretFile(t, "other")); got != fp {
			t.Errorf("second recovery with TREZOR: %s, want %s", got, fp)
		}
		// The file rules apply.
		if err := os.Chmod(trezor, 0o644); err != nil {
			t.Fatal(err)
		}
		r = runCmd(t, nil, abandonPhrase, "vault", "recover", "--state", t.TempDir(), "--passphrase-file", pass, "--bip39-passphrase-file", trezor)
		checkFailure(t, r, exitUsage, "--bip39-passphrase-file", "chmod 600")
		r = runCmd(t, nil, "", "vault", "init", "--state", t.TempDir(), "--passphrase-file", pass, "--bip39-passphrase-file", secretFile(t, ""))
		checkFailure(t, r, exitUsage, "--bip39-passphrase-file", "empty passphrase")
	})
}

// fakePrompt answers prompts from a list and keeps what it handed out.
type fakePrompt struct {
	answers []string
	msgs    []string
	given   [][]byte
}

func (p *fakePrompt) prompt(msg string) ([]byte, error) {
	p.msgs = append(p.msgs, msg)
	if len(p.answers) == 0 {
		return nil, errors.New("fake prompt: no more answers")
	}
	b := []byte(p.answers[0])
	p.answers = p.answers[1:]
	p.given = append(p.given, b)
	return b, nil
}

// checkWiped checks that every passphrase the prompt handed out was wiped.
func (p *fakePrompt) checkWiped(t *testing.T) {
	t.Helper()
	for i, b := range p.given {
		if !bytes.Equal(b, make([]byte, len(b))) {
			t.Errorf("answer %d was not wiped", i)
		}
	}
}

func TestVaultPrompt(t *testing.T) {
	state := t.TempDir()
	ksPath := filepath.Join(state, keystoreFileName)

	p := &fakePrompt{answers: []string{"first", "second"}}
	r := runCmd(t, p.prompt, "", "vault", "init", "--state", state)
	checkFailure(t, r, exitFailure, "passphrases do not match")
	if len(p.msgs) != 2 || r.stdout != "" {
		t.Errorf("mismatch: %d prompts, stdout %q", len(p.msgs), r.stdout)
	}
	p.checkWiped(t)
	checkAbsent(t, ksPath)

	p = &fakePrompt{answers: []string{"typed", "typed"}}
	r = runCmd(t, p.prompt, "", "vault", "init", "--state", state, "--words", "12")
	if r.err != nil {
		t.Fatalf("init with matching prompts: %v", r.err)
	}
	if len(p.msgs) != 2 || !strings.Contains(p.msgs[0], ksPath) {
		t.Errorf("init prompts %q, want two, the first naming %s", p.msgs, ksPath)
	}
	p.checkWiped(t)
	fp := idOf(t, state, secretFile(t, "typed"))

	p = &fakePrompt{answers: []string{"typed"}}
	r = runCmd(t, p.prompt, "", "id", "--state", state)
	if r.err != nil || r.stdout != fp+"\n" {
		t.Fatalf("id with a prompt: %q, %v", r.stdout, r.err)
	}
	if len(p.msgs) != 1 || !strings.Contains(p.msgs[0], ksPath) {
		t.Errorf("id prompts %q, want one naming %s", p.msgs, ksPath)
	}
	p.checkWiped(t)

	p = &fakePrompt{answers: []string{"mistyped"}}
	r = runCmd(t, p.prompt, "", "id", "--state", state)
	checkFailure(t, r, exitFailure, "wrong passphrase")
	p.checkWiped(t)

	p = &fakePrompt{answers: []string{""}}
	r = runCmd(t, p.prompt, "", "id", "--state", state)
	checkFailure(t, r, exitFailure, "empty passphrase")

	// Without a keystore, id neither prompts nor needs a passphrase.
	p = &fakePrompt{}
	if r := runCmd(t, p.prompt, "", "id", "--state", t.TempDir()); r.err != nil || len(p.msgs) != 0 {
		t.Errorf("id without a keystore: %v, prompts %q", r.err, p.msgs)
	}

	t.Run("no terminal", func(t *testing.T) {
		noTTY := []struct {
			name   string
			prompt func(string) ([]byte, error)
		}{
			{"nil prompt", nil},
			{"not a terminal", terminalPrompt(t.Context(), os.DevNull)},
			{"no such terminal", terminalPrompt(t.Context(), filepath.Join(t.TempDir(), "tty"))},
		}
		if f, err := os.Open(ttyPath); err == nil {
			f.Close()
		} else {
			noTTY = append(noTTY, struct {
				name   string
				prompt func(string) ([]byte, error)
			}{"default prompt", terminalPrompt(t.Context(), ttyPath)})
		}
		for _, tc := range noTTY {
			t.Run(tc.name, func(t *testing.T) {
				r := runCmd(t, tc.prompt, "", "id", "--state", state)
				checkFailure(t, r, exitUsage, "no --passphrase-file given and no terminal to prompt on")
				r = runCmd(t, tc.prompt, "", "vault", "init", "--state", t.TempDir())
				checkFailure(t, r, exitUsage, "no --passphrase-file given and no terminal to prompt on")
			})
		}
	})
}

func TestVaultNoKeystore(t *testing.T) {
	pass := secretFile(t, "pw\n")
	for _, args := range [][]string{
		{"id"},
		{"serve", "--listen", "127.0.0.1:0"},
		{"pipe", "--alpn", "alknet/echo", "--insecure", "127.0.0.1:1"},
	} {
		t.Run(args[0], func(t *testing.T) {
			state := t.TempDir()
			var stdout, stderr syncBuffer
			c := &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr,
				ready: func(serveInfo) { t.Error("serve got ready") }}
			err := c.run(t.Context(), append(args, "--state", state, "--passphrase-file", pass))
			checkFailure(t, cmdResult{stdout: stdout.String(), stderr: stderr.String(), err: err}, exitUsage,
				"--passphrase-file given", state, "alknet vault init")
			checkAbsent(t, filepath.Join(state, keyFileName))
		})
	}
	for _, tc := range []struct{ sub, stdin string }{{"seal", "secret"}, {"open", abandonBlob}} {
		t.Run(tc.sub, func(t *testing.T) {
			state := t.TempDir()
			r := runCmd(t, nil, tc.stdin, "vault", tc.sub, "--state", state, "--passphrase-file", pass)
			checkFailure(t, r, exitFailure, state, keystoreFileName, `"alknet vault init"`, `"alknet vault recover"`)
			checkAbsent(t, filepath.Join(state, keyFileName))
		})
	}
}

func TestVaultUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"vault"}, "vault: missing subcommand"},
		{"unknown subcommand", []string{"vault", "bogus"}, `vault: unknown subcommand "bogus"`},
		{"words 13", []string{"vault", "init", "--words", "13"}, "--words 13: want 12, 15, 18, 21 or 24"},
		{"words 0", []string{"vault", "init", "--words", "0"}, "--words 0"},
		{"words not a number", []string{"vault", "init", "--words", "many"}, "invalid value"},
		{"init argument", []string{"vault", "init", "extra"}, `vault init: unexpected argument "extra"`},
		{"recover argument", []string{"vault", "recover", "abandon"}, `vault recover: unexpected argument "abandon"`},
		{"seal argument", []string{"vault", "seal", "secret"}, `vault seal: unexpected argument "secret"`},
		{"open argument", []string{"vault", "open", "blob"}, `vault open: unexpected argument "blob"`},
		{"seal key version 1", []string{"vault", "seal", "--key-version", "1"}, "--key-version 1"},
		{"seal key version 0", []string{"vault", "seal", "--key-version", "0"}, "--key-version 0"},
		{"seal key version negative", []string{"vault", "seal", "--key-version", "-2"}, "invalid value"},
		{"seal key version too large", []string{"vault", "seal", "--key-version", "4294967296"}, "--key-version"},
		{"unknown flag", []string{"vault", "open", "--raw"}, `flag provided but not defined: -raw (run "alknet vault open -h" for usage)`},
		{"help unknown subcommand", []string{"help", "vault", "bogus"}, `unknown vault subcommand "bogus"`},
		{"help too many", []string{"help", "vault", "init", "x"}, "too many arguments"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			args := tc.args
			if len(args) >= 2 && args[0] == "vault" && slices.Contains(vaultSubcommands, args[1]) {
				args = append(args, "--state", state)
			}
			r := runCmd(t, nil, "", args...)
			var ue *usageError
			if !errors.As(r.err, &ue) {
				t.Fatalf("error %v (%T), want a usage error", r.err, r.err)
			}
			checkFailure(t, r, exitUsage, tc.want)
			if r.stdout != "" {
				t.Errorf("stdout %q", r.stdout)
			}
			checkAbsent(t, filepath.Join(state, keystoreFileName))
		})
	}
}

func TestVaultHelp(t *testing.T) {
	r := mustRun(t, "", "help")
	if !strings.Contains(r.stdout, "  vault ") || !strings.Contains(r.stdout, "init, recover, seal, open") {
		t.Errorf("help lacks vault:\n%s", r.stdout)
	}
	for _, args := range [][]string{{"help", "vault"}, {"vault", "-h"}, {"vault", "help"}} {
		r := runCmd(t, nil, "", args...)
		if exitCode(r.err) != 0 {
			t.Errorf("%q: %v", args, r.err)
		}
		for _, want := range []string{"Usage: alknet vault <subcommand>", "  init ", "  recover ", "  seal ", "  open ", "vault.keystore"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%q lacks %q:\n%s", args, want, r.stdout)
			}
		}
	}
	for _, tc := range []struct {
		args  []string
		flags []string
	}{
		{[]string{"vault", "init", "-h"}, []string{"-state", "-words", "-passphrase-file", "-bip39-passphrase-file"}},
		{[]string{"vault", "recover", "--help"}, []string{"-state", "-passphrase-file", "-bip39-passphrase-file"}},
		{[]string{"help", "vault", "seal"}, []string{"-state", "-passphrase-file", "-key-version", "-raw"}},
		{[]string{"vault", "help", "open"}, []string{"-state", "-passphrase-file"}},
		{[]string{"id", "-h"}, []string{"-state", "-passphrase-file"}},
		{[]string{"serve", "-h"}, []string{"-state", "-passphrase-file"}},
		{[]string{"pipe", "-h"}, []string{"-state", "-passphrase-file"}},
	} {
		r := runCmd(t, nil, "", tc.args...)
		if code := report(io.Discard, r.err); code != 0 {
			t.Errorf("%q: exit %d (%v)", tc.args, code, r.err)
		}
		if !strings.HasPrefix(r.stdout, "Usage: alknet ") {
			t.Errorf("%q printed:\n%s", tc.args, r.stdout)
		}
		for _, f := range tc.flags {
			if !strings.Contains(r.stdout, "  "+f+" ") && !strings.Contains(r.stdout, "  "+f+"\n") {
				t.Errorf("%q lacks flag %s:\n%s", tc.args, f, r.stdout)
			}
		}
	}
}

// TestVaultIdentityMatchesDerivation checks the identity against the vault library
// directly, so that the CLI uses vault.PathIdentity.
func TestVaultIdentityMatchesDerivation(t *testing.T) {
	v := vault.New()
	defer v.Lock()
	if err := v.Unlock([]byte(abandonPhrase), nil); err != nil {
		t.Fatal(err)
	}
	key, err := vaultIdentityKey(v)
	if err != nil {
		t.Fatal(err)
	}
	if got := tlsconf.Fingerprint(key); got != abandonFP {
		t.Errorf("vault identity %s, want %s", got, abandonFP)
	}
}
