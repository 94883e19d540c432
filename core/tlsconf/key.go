// Package tlsconf builds the TLS side of an Alknet node: its Ed25519 identity key (kept
// in an OpenSSH private key file, so `ssh -i` can use the same key), the self-signed
// certificates that carry it (Go's crypto/tls has no RFC 7250 raw public keys; peers
// know a node by its key's fingerprint, whatever certificate carries the key), the
// server configuration (TLS 1.3; client certificates requested, never required, used
// only as fingerprints) and client configurations that verify the server by pinned
// fingerprint or by CA and host name. There is no accept-any client configuration.
package tlsconf

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	gossh "golang.org/x/crypto/ssh"
)

// KeyFileMode is the permission of a key file written by [SaveKey]. [LoadKey] refuses a
// key file that group or others can access.
const KeyFileMode fs.FileMode = 0o600

// MaxKeyFileSize bounds what [LoadKey] reads; an OpenSSH Ed25519 key is about 400 bytes.
const MaxKeyFileSize = 64 << 10

// openSSHPEMType is the PEM block type of OpenSSH private keys.
const openSSHPEMType = "OPENSSH PRIVATE KEY"

// ErrInvalidKey is wrapped by every key parsing and loading error.
var ErrInvalidKey = errors.New("invalid key")

// GenerateKey returns a new Ed25519 private key from crypto/rand.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return priv, nil
}

// MarshalKey encodes key as an unencrypted OpenSSH private key file.
func MarshalKey(key ed25519.PrivateKey, comment string) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: ed25519 private key must be %d bytes, got %d", ErrInvalidKey, ed25519.PrivateKeySize, len(key))
	}
	block, err := gossh.MarshalPrivateKey(key, comment)
	if err != nil {
		return nil, fmt.Errorf("marshal OpenSSH key: %w", err)
	}
	out := pem.EncodeToMemory(block)
	clear(block.Bytes)
	return out, nil
}

// ParseKey decodes an unencrypted OpenSSH Ed25519 private key. Other formats (PKCS#8
// "PRIVATE KEY" PEM and the like), other key types and passphrase-protected keys are
// refused with an error saying what to do.
func ParseKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found; want an OpenSSH private key (ssh-keygen -t ed25519)", ErrInvalidKey)
	}
	if block.Type != openSSHPEMType {
		return nil, fmt.Errorf("%w: PEM type %q is not an OpenSSH private key; convert it with ssh-keygen -p -f FILE or create one with ssh-keygen -t ed25519", ErrInvalidKey, block.Type)
	}
	raw, err := gossh.ParseRawPrivateKey(data)
	if err != nil {
		var pm *gossh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, fmt.Errorf("%w: the key is passphrase-protected; alknet needs an unencrypted key file protected by its permissions (ssh-keygen -p -N '' -f FILE)", ErrInvalidKey)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	switch k := raw.(type) {
	case *ed25519.PrivateKey:
		return *k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("%w: key type %T is not Ed25519", ErrInvalidKey, raw)
	}
}

// LoadKey reads an OpenSSH Ed25519 private key file written by SaveKey or ssh-keygen.
// On Unix it refuses a file that group or others may access, as ssh does.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: key file %s is not a regular file", ErrInvalidKey, path)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: permissions %#o for key file %s are too open; run chmod 600 %s", ErrInvalidKey, st.Mode().Perm(), path, path)
	}
	if st.Size() > MaxKeyFileSize {
		return nil, fmt.Errorf("%w: key file %s is %d bytes, more than %d", ErrInvalidKey, path, st.Size(), MaxKeyFileSize)
	}
	data := make([]byte, st.Size())
	defer clear(data)
	if _, err := readFull(f, data); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	key, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return key, nil
}

func readFull(f *os.File, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := f.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// SaveKey writes key to path as an OpenSSH private key file with mode [KeyFileMode].
// The file appears atomically and an existing file is never replaced: the error then
// wraps fs.ErrExist.
func SaveKey(path string, key ed25519.PrivateKey, comment string) error {
	data, err := MarshalKey(key, comment)
	if err != nil {
		return err
	}
	defer clear(data)
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".key-*")
	if err != nil {
		return fmt.Errorf("save key: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := tmp.Chmod(KeyFileMode); err != nil {
		tmp.Close()
		return fmt.Errorf("save key: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save key: %w", err)
	}
	// Link fails if path exists, so two processes racing to create a key agree on one.
	switch err := os.Link(tmpName, path); {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("save key: %w", err)
	}
	// Filesystems without hard links: create exclusively instead (not atomic, but never
	// replaces a key).
	return writeExclusive(path, data)
}

func writeExclusive(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, KeyFileMode)
	if err != nil {
		return fmt.Errorf("save key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("save key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("save key: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("save key: %w", err)
	}
	return nil
}

// LoadOrCreateKey loads the key at path, or generates and saves a new one when the file
// does not exist. created reports whether a key was generated.
func LoadOrCreateKey(path, comment string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = LoadKey(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	key, err = GenerateKey()
	if err != nil {
		return nil, false, err
	}
	if err := SaveKey(path, key, comment); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Someone else created it first: use theirs.
			key, err = LoadKey(path)
			return key, false, err
		}
		return nil, false, err
	}
	return key, true, nil
}

// AuthorizedKey returns the public half of key as one authorized_keys line
// ("ssh-ed25519 AAAA... comment").
func AuthorizedKey(key ed25519.PrivateKey, comment string) ([]byte, error) {
	pub, err := gossh.NewPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	line := bytes.TrimSuffix(gossh.MarshalAuthorizedKey(pub), []byte("\n"))
	if comment != "" {
		line = append(line, ' ')
		line = append(line, comment...)
	}
	return append(line, '\n'), nil
}
