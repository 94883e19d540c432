package vault

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/argon2"
)

// The keystore file seals a mnemonic (and its optional BIP39 passphrase) with a
// passphrase, so that a node can restart unattended from a passphrase file or a prompt.
//
// Layout (version 1), all integers big-endian:
//
//	offset size
//	0      8    magic "ALKVAULT"
//	8      1    format version (1)
//	9      1    KDF (1 = Argon2id, RFC 9106)
//	10     4    Argon2 time (passes)
//	14     4    Argon2 memory in KiB
//	18     1    Argon2 threads (lanes)
//	19     16   Argon2 salt
//	35     12   AES-256-GCM nonce
//	47     ...  AES-256-GCM ciphertext of the payload, with the 16-byte tag appended
//
// The 47-byte header is the associated data, so any change to the version, the
// parameters, the salt or the nonce fails authentication. The key is
// Argon2id(NFKD(passphrase), salt, time, memory, threads, 32 bytes). The payload is
// u16 length + canonical mnemonic phrase, then u16 length + BIP39 passphrase.

// Keystore format constants and limits.
const (
	// MaxKeystoreSize is the largest keystore file read, in bytes; larger files are
	// refused before they are read.
	MaxKeystoreSize = 8 << 10
	// MaxPassphraseLength is the longest keystore passphrase or BIP39 passphrase, in
	// bytes.
	MaxPassphraseLength = 1024

	keystoreMagic      = "ALKVAULT"
	keystoreVersion    = 1
	keystoreKDFArgon2  = 1
	keystoreSaltSize   = 16
	keystoreHeaderSize = len(keystoreMagic) + 1 + 1 + 4 + 4 + 1 + keystoreSaltSize + NonceSize
)

// Keystore errors. Every keystore error wraps one of them and names the file.
var (
	// ErrKeystorePassphrase: authentication failed. A wrong passphrase and a corrupted
	// or tampered file cannot be told apart.
	ErrKeystorePassphrase = errors.New("wrong passphrase or corrupted file")
	// ErrKeystoreFormat: not a keystore file, truncated, too large, or a malformed
	// payload.
	ErrKeystoreFormat = errors.New("not a valid keystore file")
	// ErrKeystoreVersion: a format version or KDF this build does not know.
	ErrKeystoreVersion = errors.New("unsupported keystore version")
	// ErrKeystoreWeak: Argon2 parameters below the floor (KeystoreLimits.Min) or above
	// the ceiling (KeystoreLimits.Max).
	ErrKeystoreWeak = errors.New("keystore parameters outside the accepted range")
	// ErrKeystoreExists: WriteKeystore found a file at the path; it never overwrites.
	// Errors wrapping it also match fs.ErrExist.
	ErrKeystoreExists = errors.New("keystore already exists")
	// ErrEmptyPassphrase: a keystore passphrase must not be empty.
	ErrEmptyPassphrase = errors.New("empty passphrase")
	// ErrPassphraseTooLong: a keystore or BIP39 passphrase longer than
	// MaxPassphraseLength.
	ErrPassphraseTooLong = errors.New("passphrase is longer than 1024 bytes")
)

// KeystoreParams are the Argon2id parameters of a keystore file. They are stored in
// the file's header, so a file opens with the parameters it was written with.
type KeystoreParams struct {
	// Time is the number of passes over memory.
	Time uint32
	// MemoryKiB is the memory size in KiB.
	MemoryKiB uint32
	// Threads is the degree of parallelism (lanes).
	Threads uint8
}

// DefaultKeystoreParams returns RFC 9106's second recommended option: t=3, 64 MiB, p=4.
func DefaultKeystoreParams() KeystoreParams {
	return KeystoreParams{Time: 3, MemoryKiB: 64 << 10, Threads: 4}
}

// MinKeystoreParams returns the floor: t=2, 19 MiB, p=1 (OWASP's minimum for
// Argon2id). Files with weaker parameters are refused, and WriteKeystore will not write
// them.
func MinKeystoreParams() KeystoreParams {
	return KeystoreParams{Time: 2, MemoryKiB: 19 << 10, Threads: 1}
}

// MaxKeystoreParams returns the default ceiling: t=16, 1 GiB, p=64. A file asking for
// more is refused before the KDF runs, so a planted file cannot exhaust memory.
func MaxKeystoreParams() KeystoreParams {
	return KeystoreParams{Time: 16, MemoryKiB: 1 << 20, Threads: 64}
}

// KeystoreLimits bound the parameters a keystore may use.
type KeystoreLimits struct {
	// Min is the floor; every field must be at least this.
	Min KeystoreParams
	// Max is the ceiling; every field must be at most this.
	Max KeystoreParams
}

// DefaultKeystoreLimits returns MinKeystoreParams and MaxKeystoreParams.
func DefaultKeystoreLimits() KeystoreLimits {
	return KeystoreLimits{Min: MinKeystoreParams(), Max: MaxKeystoreParams()}
}

// check returns an error wrapping ErrKeystoreWeak when p is outside l.
func (l KeystoreLimits) check(p KeystoreParams) error {
	switch {
	case p.Time < l.Min.Time || p.MemoryKiB < l.Min.MemoryKiB || p.Threads < l.Min.Threads:
		return fmt.Errorf("%w: Argon2id t=%d m=%d KiB p=%d is below the floor t=%d m=%d KiB p=%d",
			ErrKeystoreWeak, p.Time, p.MemoryKiB, p.Threads, l.Min.Time, l.Min.MemoryKiB, l.Min.Threads)
	case p.Time > l.Max.Time || p.MemoryKiB > l.Max.MemoryKiB || p.Threads > l.Max.Threads:
		return fmt.Errorf("%w: Argon2id t=%d m=%d KiB p=%d is above the ceiling t=%d m=%d KiB p=%d",
			ErrKeystoreWeak, p.Time, p.MemoryKiB, p.Threads, l.Max.Time, l.Max.MemoryKiB, l.Max.Threads)
	}
	return nil
}

// SealKeystore returns the keystore file contents for m and the optional BIP39
// passphrase, sealed with passphrase under the Argon2id parameters p (which must lie
// within DefaultKeystoreLimits). Neither input is retained.
func SealKeystore(m *Mnemonic, bip39Passphrase, passphrase []byte, p KeystoreParams) ([]byte, error) {
	return sealKeystore(m, bip39Passphrase, passphrase, p, DefaultKeystoreLimits())
}

// sealKeystore is SealKeystore with the parameter limits lim.
func sealKeystore(m *Mnemonic, bip39Passphrase, passphrase []byte, p KeystoreParams, lim KeystoreLimits) ([]byte, error) {
	if err := lim.check(p); err != nil {
		return nil, err
	}
	if err := checkPassphrase(passphrase); err != nil {
		return nil, err
	}
	if len(bip39Passphrase) > MaxPassphraseLength {
		return nil, fmt.Errorf("BIP39 %w", ErrPassphraseTooLong)
	}
	if m == nil || m.phrase == nil {
		return nil, ErrDestroyed
	}
	phrase := m.phrase.bytes()
	payload := make([]byte, 0, 4+len(phrase)+len(bip39Passphrase))
	defer func() { wipe(payload[:cap(payload)]) }()
	payload = binary.BigEndian.AppendUint16(payload, uint16(len(phrase)))
	payload = append(payload, phrase...)
	payload = binary.BigEndian.AppendUint16(payload, uint16(len(bip39Passphrase)))
	payload = append(payload, bip39Passphrase...)
	return sealKeystorePayload(payload, passphrase, p)
}

// sealKeystorePayload builds the header for p and seals payload under passphrase.
func sealKeystorePayload(payload, passphrase []byte, p KeystoreParams) ([]byte, error) {
	header := make([]byte, 0, keystoreHeaderSize)
	header = append(header, keystoreMagic...)
	header = append(header, keystoreVersion, keystoreKDFArgon2)
	header = binary.BigEndian.AppendUint32(header, p.Time)
	header = binary.BigEndian.AppendUint32(header, p.MemoryKiB)
	header = append(header, p.Threads)
	var salt [keystoreSaltSize]byte
	var nonce [NonceSize]byte
	_, _ = rand.Read(salt[:])
	_, _ = rand.Read(nonce[:])
	header = append(header, salt[:]...)
	header = append(header, nonce[:]...)

	key := keystoreKey(passphrase, salt[:], p)
	defer wipe(key)
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return gcm.Seal(header, nonce[:], payload, header), nil
}

// OpenKeystore decrypts keystore file contents with passphrase and returns the
// mnemonic and the BIP39 passphrase (empty when none was stored). The caller owns both
// and should Destroy the mnemonic and wipe the passphrase. The header is checked
// against lim before the KDF runs.
func OpenKeystore(data, passphrase []byte, lim KeystoreLimits) (*Mnemonic, []byte, error) {
	if len(data) > MaxKeystoreSize {
		return nil, nil, fmt.Errorf("%w: %d bytes is more than %d", ErrKeystoreFormat, len(data), MaxKeystoreSize)
	}
	if len(data) < len(keystoreMagic) || string(data[:len(keystoreMagic)]) != keystoreMagic {
		return nil, nil, fmt.Errorf("%w: bad magic", ErrKeystoreFormat)
	}
	if len(data) < len(keystoreMagic)+2 {
		return nil, nil, fmt.Errorf("%w: truncated header", ErrKeystoreFormat)
	}
	if v := data[len(keystoreMagic)]; v != keystoreVersion {
		return nil, nil, fmt.Errorf("%w: format version %d (this build reads %d)", ErrKeystoreVersion, v, keystoreVersion)
	}
	if k := data[len(keystoreMagic)+1]; k != keystoreKDFArgon2 {
		return nil, nil, fmt.Errorf("%w: KDF %d (this build knows 1 = Argon2id)", ErrKeystoreVersion, k)
	}
	if len(data) < keystoreHeaderSize+TagSize {
		return nil, nil, fmt.Errorf("%w: truncated (%d bytes)", ErrKeystoreFormat, len(data))
	}
	off := len(keystoreMagic) + 2
	p := KeystoreParams{
		Time:      binary.BigEndian.Uint32(data[off:]),
		MemoryKiB: binary.BigEndian.Uint32(data[off+4:]),
		Threads:   data[off+8],
	}
	off += 9
	salt := data[off : off+keystoreSaltSize]
	nonce := data[off+keystoreSaltSize : keystoreHeaderSize]
	if err := lim.check(p); err != nil {
		return nil, nil, err
	}
	if err := checkPassphrase(passphrase); err != nil {
		return nil, nil, err
	}
	key := keystoreKey(passphrase, salt, p)
	defer wipe(key)
	gcm, err := newGCM(key)
	if err != nil {
		return nil, nil, err
	}
	header := data[:keystoreHeaderSize]
	payload, err := gcm.Open(nil, nonce, data[keystoreHeaderSize:], header)
	if err != nil {
		return nil, nil, ErrKeystorePassphrase
	}
	defer wipe(payload)
	phrase, rest, ok := readField(payload)
	if !ok || len(phrase) > MaxMnemonicLength {
		return nil, nil, fmt.Errorf("%w: bad payload", ErrKeystoreFormat)
	}
	bip39Pass, rest, ok := readField(rest)
	if !ok || len(rest) != 0 || len(bip39Pass) > MaxPassphraseLength {
		return nil, nil, fmt.Errorf("%w: bad payload", ErrKeystoreFormat)
	}
	m, err := ParseMnemonic(phrase)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: stored mnemonic: %w", ErrKeystoreFormat, err)
	}
	return m, bytes.Clone(bip39Pass), nil
}

// readField splits a u16-length-prefixed field off b.
func readField(b []byte) (field, rest []byte, ok bool) {
	if len(b) < 2 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b)-2 < n {
		return nil, nil, false
	}
	return b[2 : 2+n], b[2+n:], true
}

// checkPassphrase refuses empty and over-long keystore passphrases.
func checkPassphrase(p []byte) error {
	switch {
	case len(p) == 0:
		return ErrEmptyPassphrase
	case len(p) > MaxPassphraseLength:
		return ErrPassphraseTooLong
	}
	return nil
}

// keystoreKey runs Argon2id over the NFKD-normalised passphrase.
func keystoreKey(passphrase, salt []byte, p KeystoreParams) []byte {
	norm := nfkd(passphrase)
	defer wipe(norm)
	return argon2.IDKey(norm, salt, p.Time, p.MemoryKiB, p.Threads, KeySize)
}

// WriteKeystore seals m (and the optional BIP39 passphrase) with passphrase and writes
// the result to path with mode 0600, atomically: a temporary file in the same
// directory is written, synced and then linked into place. It never overwrites: an
// existing path gives an error wrapping ErrKeystoreExists and fs.ErrExist.
func WriteKeystore(path string, m *Mnemonic, bip39Passphrase, passphrase []byte, p KeystoreParams) error {
	if _, err := os.Lstat(path); err == nil {
		return keystoreError(path, existsError{})
	}
	data, err := SealKeystore(m, bip39Passphrase, passphrase, p)
	if err != nil {
		return keystoreError(path, err)
	}
	if err := writeNew(path, data); err != nil {
		return keystoreError(path, err)
	}
	return nil
}

// ReadKeystore reads the keystore at path and opens it with passphrase under
// DefaultKeystoreLimits. The file is only read, never modified.
func ReadKeystore(path string, passphrase []byte) (*Mnemonic, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, keystoreError(path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxKeystoreSize+1))
	if err != nil {
		return nil, nil, keystoreError(path, err)
	}
	m, bip39Pass, err := OpenKeystore(data, passphrase, DefaultKeystoreLimits())
	if err != nil {
		return nil, nil, keystoreError(path, err)
	}
	return m, bip39Pass, nil
}

// UnlockKeystore reads the keystore at path with passphrase and unlocks the vault with
// the stored mnemonic and BIP39 passphrase, wiping both afterwards.
func (v *Vault) UnlockKeystore(path string, passphrase []byte) error {
	if v.IsUnlocked() {
		return ErrAlreadyUnlocked
	}
	m, bip39Pass, err := ReadKeystore(path, passphrase)
	if err != nil {
		return err
	}
	defer m.Destroy()
	defer wipe(bip39Pass)
	return v.UnlockMnemonic(m, bip39Pass)
}

// existsError wraps both ErrKeystoreExists and fs.ErrExist.
type existsError struct{}

func (existsError) Error() string { return ErrKeystoreExists.Error() + "; it is never overwritten" }
func (existsError) Is(target error) bool {
	return target == ErrKeystoreExists || target == fs.ErrExist
}

// keystoreError prefixes err with the file it concerns (dropping the path an
// *fs.PathError would repeat).
func keystoreError(path string, err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok && pe.Path == path {
		err = pe.Err
	}
	return fmt.Errorf("vault: keystore %s: %w", path, err)
}

// writeNew writes data to a new file at path (mode 0600) through a synced temporary
// file in the same directory. With hard links the final step fails if path appeared
// meanwhile; on file systems without them it falls back to a rename after a final
// existence check.
func writeNew(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer func() {
		if rmErr := os.Remove(tmpName); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) && err == nil {
			err = rmErr
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return existsError{}
		}
		// No hard links here (some network and FUSE file systems): rename instead.
		if _, statErr := os.Lstat(path); statErr == nil {
			return existsError{}
		}
		if err := os.Rename(tmpName, path); err != nil {
			return err
		}
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
