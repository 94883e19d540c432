package msg

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/alknet/alknet/examples/node"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// writeKey writes data to dir/KeyFileName with mode perm.
func writeKey(t *testing.T, dir string, data []byte, perm os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, KeyFileName)
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	return path
}

func pemKey(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
}

func TestLoadOrCreateKeyRefusals(t *testing.T) {
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := pemKey(t, x)
	for _, tc := range []struct {
		name string
		data []byte
		perm os.FileMode
		want string
	}{
		{"group readable", good, 0o640, "mode 0640"},
		{"world readable", good, 0o604, "mode 0604"},
		{"not PEM", []byte("hello\n"), 0o600, "not a PEM"},
		{"other PEM type", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}}), 0o600, "not a PEM"},
		{"Ed25519 key", pemKey(t, ed), 0o600, "not an X25519 key"},
		{"over the size limit", append(good, make([]byte, maxKeyFileSize+1-len(good))...), 0o600, "more than a key file holds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeKey(t, dir, tc.data, tc.perm)
			_, _, err := LoadOrCreateKey(dir)
			if _, ok := errors.AsType[*node.ConfigError](err); !ok || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("LoadOrCreateKey = %v, want a ConfigError naming %s and saying %q", err, path, tc.want)
			}
		})
	}
	// At the size limit, trailing bytes after the PEM block are ignored.
	dir := t.TempDir()
	writeKey(t, dir, append(good, make([]byte, maxKeyFileSize-len(good))...), 0o600)
	k, created, err := LoadOrCreateKey(dir)
	if err != nil || created || !k.Equal(x) {
		t.Errorf("key file of exactly %d bytes: %v, created %v", maxKeyFileSize, err, created)
	}
}

// Processes (here goroutines) starting together all end up with the one key written.
func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	keys := make([]*ecdh.PrivateKey, n)
	var createdCount int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k, created, err := LoadOrCreateKey(dir)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = k
			if created {
				mu.Lock()
				createdCount++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if createdCount != 1 {
		t.Errorf("%d callers report creating the key, want 1", createdCount)
	}
	for i := 1; i < n; i++ {
		if keys[i] == nil || !keys[i].Equal(keys[0]) {
			t.Fatalf("caller %d got another key", i)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("state directory holds %v (%v), want the key file alone", entries, err)
	}
}
