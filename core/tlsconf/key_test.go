package tlsconf_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/core/tlsconf"
)

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	k, err := tlsconf.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGenerateKey(t *testing.T) {
	a, b := newKey(t), newKey(t)
	if len(a) != ed25519.PrivateKeySize {
		t.Fatalf("key length %d, want %d", len(a), ed25519.PrivateKeySize)
	}
	if a.Equal(b) {
		t.Error("two generated keys are equal")
	}
	msg := []byte("m")
	if !ed25519.Verify(a.Public().(ed25519.PublicKey), msg, ed25519.Sign(a, msg)) {
		t.Error("generated key does not sign/verify")
	}
}

func TestSaveKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.key")
	key := newKey(t)
	if err := tlsconf.SaveKey(path, key, "node@test"); err != nil {
		t.Fatalf("SaveKey: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %#o, want 0600", st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "OPENSSH PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("key file is not one OPENSSH PRIVATE KEY PEM block:\n%s", data)
	}
	raw, err := gossh.ParseRawPrivateKey(data)
	if err != nil {
		t.Fatalf("x/crypto/ssh cannot parse the saved key: %v", err)
	}
	if got, ok := raw.(*ed25519.PrivateKey); !ok || !got.Equal(key) {
		t.Errorf("saved key parses as %T, not the saved key", raw)
	}

	// Never overwrite.
	other := newKey(t)
	err = tlsconf.SaveKey(path, other, "")
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("SaveKey over an existing file = %v, want fs.ErrExist", err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, data) {
		t.Error("a refused SaveKey changed the file")
	}

	// No temporary files left behind, after success or failure.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "node.key" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want only node.key", names)
	}

	if err := tlsconf.SaveKey(filepath.Join(dir, "missing-dir", "k"), key, ""); err == nil {
		t.Error("SaveKey into a missing directory succeeded")
	}
	if err := tlsconf.SaveKey(filepath.Join(dir, "short"), key[:10], ""); !errors.Is(err, tlsconf.ErrInvalidKey) {
		t.Errorf("SaveKey(short key) = %v, want ErrInvalidKey", err)
	}
}

func TestLoadKeyRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	key := newKey(t)
	if err := tlsconf.SaveKey(path, key, ""); err != nil {
		t.Fatal(err)
	}
	got, err := tlsconf.LoadKey(path)
	if err != nil {
		t.Fatalf("LoadKey: %v", err)
	}
	if !got.Equal(key) {
		t.Error("LoadKey returned a different key")
	}
}

// writeFile writes data with the given mode (chmod after write, so umask does not matter).
func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// pemEncoder returns a function that PEM-encodes the result of a marshaller.
func pemEncoder(t *testing.T) func(*pem.Block, error) []byte {
	return func(b *pem.Block, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(b)
	}
}

func TestLoadKeyRefuses(t *testing.T) {
	key := newKey(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pemEncoder(t)
	good := pemBytes(gossh.MarshalPrivateKey(key, ""))
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		data    []byte
		mode    os.FileMode
		wantSub []string // substrings of the error text (case-insensitive)
	}{
		{
			name:    "group and world readable",
			data:    good,
			mode:    0o644,
			wantSub: []string{"chmod 600", "too open"},
		},
		{
			name:    "group readable",
			data:    good,
			mode:    0o640,
			wantSub: []string{"chmod 600"},
		},
		{
			name:    "PKCS#8 PEM",
			data:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
			mode:    0o600,
			wantSub: []string{`"PRIVATE KEY"`, "OpenSSH", "ssh-keygen"},
		},
		{
			name:    "passphrase-protected OpenSSH key",
			data:    pemBytes(gossh.MarshalPrivateKeyWithPassphrase(key, "", []byte("correct horse"))),
			mode:    0o600,
			wantSub: []string{"passphrase-protected", "ssh-keygen -p"},
		},
		{
			name:    "RSA OpenSSH key",
			data:    pemBytes(gossh.MarshalPrivateKey(rsaKey, "")),
			mode:    0o600,
			wantSub: []string{"rsa", "not ed25519"},
		},
		{
			name:    "ECDSA OpenSSH key",
			data:    pemBytes(gossh.MarshalPrivateKey(ecKey, "")),
			mode:    0o600,
			wantSub: []string{"ecdsa", "not ed25519"},
		},
		{
			name:    "not PEM",
			data:    []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGarbage comment\n"),
			mode:    0o600,
			wantSub: []string{"no PEM block", "OpenSSH"},
		},
		{
			name:    "empty file",
			data:    nil,
			mode:    0o600,
			wantSub: []string{"no PEM block"},
		},
		{
			name:    "corrupt OpenSSH body",
			data:    pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: []byte("openssh-key-v1\x00garbage")}),
			mode:    0o600,
			wantSub: []string{"invalid key"},
		},
		{
			name:    "larger than the limit",
			data:    append(bytes.Clone(good), bytes.Repeat([]byte("\n"), tlsconf.MaxKeyFileSize)...),
			mode:    0o600,
			wantSub: []string{"more than"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if runtime.GOOS == "windows" && tt.mode != 0o600 {
				t.Skip("file permissions are not checked on Windows")
			}
			path := filepath.Join(t.TempDir(), "k")
			writeFile(t, path, tt.data, tt.mode)
			got, err := tlsconf.LoadKey(path)
			if err == nil {
				t.Fatalf("LoadKey accepted it (key %x)", got)
			}
			if !errors.Is(err, tlsconf.ErrInvalidKey) {
				t.Errorf("error %v does not wrap ErrInvalidKey", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			for _, sub := range tt.wantSub {
				if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(sub)) {
					t.Errorf("error %q does not mention %q", err, sub)
				}
			}
		})
	}
}

func TestLoadKeyFileErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := tlsconf.LoadKey(filepath.Join(dir, "absent"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadKey(missing) = %v, want fs.ErrNotExist", err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := tlsconf.LoadKey(sub); !errors.Is(err, tlsconf.ErrInvalidKey) {
		t.Errorf("LoadKey(directory) = %v, want ErrInvalidKey", err)
	}
}

func TestParseKey(t *testing.T) {
	key := newKey(t)
	data, err := tlsconf.MarshalKey(key, "c")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tlsconf.ParseKey(data)
	if err != nil || !got.Equal(key) {
		t.Errorf("ParseKey(MarshalKey(k)) = %v; want k", err)
	}
	if _, err := tlsconf.MarshalKey(key[:31], ""); !errors.Is(err, tlsconf.ErrInvalidKey) {
		t.Errorf("MarshalKey(short) = %v, want ErrInvalidKey", err)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	k1, created, err := tlsconf.LoadOrCreateKey(path, "node")
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateKey = created %v, %v; want true, nil", created, err)
	}
	k2, created, err := tlsconf.LoadOrCreateKey(path, "node")
	if err != nil || created {
		t.Fatalf("second LoadOrCreateKey = created %v, %v; want false, nil", created, err)
	}
	if !k1.Equal(k2) {
		t.Error("second LoadOrCreateKey returned a different key")
	}
	if st, err := os.Stat(path); err != nil || (runtime.GOOS != "windows" && st.Mode().Perm() != 0o600) {
		t.Errorf("created key file: %v, %v", st, err)
	}

	// A key file that exists but is unusable is reported, never replaced.
	bad := filepath.Join(t.TempDir(), "bad.key")
	writeFile(t, bad, []byte("garbage"), 0o600)
	if _, created, err := tlsconf.LoadOrCreateKey(bad, ""); err == nil || created {
		t.Errorf("LoadOrCreateKey(garbage) = created %v, %v; want an error", created, err)
	}
	if data, _ := os.ReadFile(bad); string(data) != "garbage" {
		t.Error("LoadOrCreateKey replaced an unusable key file")
	}
}

// TestLoadOrCreateKeyConcurrent checks that racing creators end up with one key.
func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	const n = 8
	path := filepath.Join(t.TempDir(), "node.key")
	start := make(chan struct{})
	keys := make([]ed25519.PrivateKey, n)
	created := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			keys[i], created[i], errs[i] = tlsconf.LoadOrCreateKey(path, "")
		}()
	}
	close(start)
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if created[i] {
			creators++
		}
		if !keys[i].Equal(keys[0]) {
			t.Errorf("caller %d got a different key", i)
		}
	}
	if creators != 1 {
		t.Errorf("%d callers report creating the key, want 1", creators)
	}
}

func TestAuthorizedKey(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, 32))
	line, err := tlsconf.AuthorizedKey(key, "node@host")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(line), "ssh-ed25519 AAAA") || !strings.HasSuffix(string(line), " node@host\n") {
		t.Errorf("AuthorizedKey = %q", line)
	}
	pub, comment, _, rest, err := gossh.ParseAuthorizedKey(line)
	if err != nil || comment != "node@host" || len(rest) != 0 {
		t.Fatalf("ParseAuthorizedKey = %v, %q, %q", err, comment, rest)
	}
	want, _ := gossh.NewPublicKey(key.Public())
	if !bytes.Equal(pub.Marshal(), want.Marshal()) {
		t.Error("authorized key names another key")
	}
	noComment, err := tlsconf.AuthorizedKey(key, "")
	if err != nil || strings.Count(string(noComment), " ") != 1 || !strings.HasSuffix(string(noComment), "\n") {
		t.Errorf("AuthorizedKey without comment = %q, %v", noComment, err)
	}
}

func sshKeygen(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not on PATH; skipping the OpenSSH interoperability check")
	}
	return p
}

// authorizedKeyFields returns "type base64" of an authorized_keys line, dropping the comment.
func authorizedKeyFields(line []byte) string {
	f := strings.Fields(string(line))
	if len(f) < 2 {
		return string(line)
	}
	return f[0] + " " + f[1]
}

// TestSSHKeygenReadsSavedKey checks that OpenSSH reads the key file SaveKey writes.
func TestSSHKeygenReadsSavedKey(t *testing.T) {
	bin := sshKeygen(t)
	path := filepath.Join(t.TempDir(), "node.key")
	key := newKey(t)
	if err := tlsconf.SaveKey(path, key, "node@test"); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-y", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -y: %v\n%s", err, out)
	}
	want, err := tlsconf.AuthorizedKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := authorizedKeyFields(out); got != authorizedKeyFields(want) {
		t.Errorf("ssh-keygen -y printed %q, want %q", got, authorizedKeyFields(want))
	}
}

// TestLoadKeyFromSSHKeygen checks that a key made by ssh-keygen loads.
func TestLoadKeyFromSSHKeygen(t *testing.T) {
	bin := sshKeygen(t)
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if out, err := exec.Command(bin, "-q", "-t", "ed25519", "-N", "", "-C", "made-by-ssh-keygen", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -t ed25519: %v\n%s", err, out)
	}
	key, err := tlsconf.LoadKey(path)
	if err != nil {
		t.Fatalf("LoadKey(ssh-keygen key): %v", err)
	}
	pubLine, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tlsconf.AuthorizedKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	if authorizedKeyFields(got) != authorizedKeyFields(pubLine) {
		t.Errorf("loaded key's public half %q, ssh-keygen wrote %q", authorizedKeyFields(got), authorizedKeyFields(pubLine))
	}

	// A passphrase-protected key made by ssh-keygen is refused with the advice.
	locked := filepath.Join(t.TempDir(), "locked")
	if out, err := exec.Command(bin, "-q", "-t", "ed25519", "-N", "secret passphrase", "-f", locked).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen with passphrase: %v\n%s", err, out)
	}
	if _, err := tlsconf.LoadKey(locked); err == nil || !strings.Contains(err.Error(), "passphrase-protected") {
		t.Errorf("LoadKey(passphrase key) = %v, want a passphrase-protected error", err)
	}
}
