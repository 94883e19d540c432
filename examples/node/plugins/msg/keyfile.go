package msg

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/alknet/alknet/examples/node"
)

// KeyFileName is the msg X25519 key file in a state directory without a keystore: a
// PEM "PRIVATE KEY" (PKCS #8, as openssl writes X25519 keys) with mode 0600.
const KeyFileName = "msg_x25519.key"

// maxKeyFileSize bounds the key file read (a PEM X25519 key is 119 bytes).
const maxKeyFileSize = 4 << 10

// pemType is the PEM block type of the key file.
const pemType = "PRIVATE KEY"

// LoadOrCreateKey returns the X25519 private key in dir/KeyFileName, creating the file
// (mode 0600, with a fresh random key) when it does not exist; created reports that.
// A file that group or others may access, or that is not a PEM PKCS #8 X25519 key, is
// refused with a *node.ConfigError naming it. The file appears complete or not at all,
// even when two processes create it at once.
func LoadOrCreateKey(dir string) (key *ecdh.PrivateKey, created bool, err error) {
	path := filepath.Join(dir, KeyFileName)
	key, err = readKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	key, err = ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("msg X25519 key: %w", err)
	}
	if err := writeKeyFile(path, key); errors.Is(err, fs.ErrExist) {
		// Another process created it first: use that one.
		key, err = readKeyFile(path)
		return key, false, err
	} else if err != nil {
		return nil, false, err
	}
	return key, true, nil
}

// readKeyFile reads and checks the key file at path; an error wrapping fs.ErrNotExist
// when there is none.
func readKeyFile(path string) (*ecdh.PrivateKey, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, &node.ConfigError{Err: fmt.Errorf("msg X25519 key: %w", err)}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, &node.ConfigError{Err: fmt.Errorf("msg X25519 key: %w", err)}
	}
	switch mode := st.Mode(); {
	case !mode.IsRegular():
		return nil, &node.ConfigError{Err: fmt.Errorf("msg X25519 key %s: not a regular file", path)}
	case mode.Perm()&0o077 != 0:
		return nil, &node.ConfigError{Err: fmt.Errorf("msg X25519 key %s: mode %04o lets group or others access it; run \"chmod 600 %s\"", path, mode.Perm(), path)}
	case st.Size() > maxKeyFileSize:
		return nil, &node.ConfigError{Err: fmt.Errorf("msg X25519 key %s: %d bytes, more than a key file holds (%d)", path, st.Size(), maxKeyFileSize)}
	}
	data, err := node.ReadLimited(f, maxKeyFileSize, "the key file")
	if err != nil {
		return nil, &node.ConfigError{Err: fmt.Errorf("msg X25519 key %s: %w", path, err)}
	}
	defer clear(data)
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemType {
		return nil, &node.ConfigError{Err: fmt.Errorf("msg X25519 key %s: not a PEM %q block", path, pemType)}
	}
	defer clear(block.Bytes)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, &node.ConfigError{Err: fmt.Errorf("msg X25519 key %s: %w", path, err)}
	}
	xk, ok := k.(*ecdh.PrivateKey)
	if !ok || xk.Curve() != ecdh.X25519() {
		return nil, &node.ConfigError{Err: fmt.Errorf("msg X25519 key %s: a %T, not an X25519 key", path, k)}
	}
	return xk, nil
}

// writeKeyFile writes key to path, which must not exist (an error wrapping fs.ErrExist
// otherwise): to a temporary file first, linked into place once complete.
func writeKeyFile(path string, key *ecdh.PrivateKey) (err error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("msg X25519 key: %w", err)
	}
	defer clear(der)
	data := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
	defer clear(data)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+KeyFileName+".*") // mode 0600
	if err != nil {
		return fmt.Errorf("msg X25519 key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("msg X25519 key %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("msg X25519 key %s: %w", path, err)
	}
	return nil
}
