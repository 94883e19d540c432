package vault

import (
	"errors"
	"fmt"
)

// Sentinel errors, for errors.Is. Error values returned by this package wrap one of
// them; messages never contain secret material (no words, keys or plaintext).
var (
	// ErrLocked: the vault is locked; unlock it first.
	ErrLocked = errors.New("vault: locked")
	// ErrAlreadyUnlocked: Unlock or UnlockNew on an unlocked vault. The vault never
	// replaces its seed silently; Lock it first.
	ErrAlreadyUnlocked = errors.New("vault: already unlocked")

	// ErrInvalidMnemonic: a phrase is not a valid BIP39 mnemonic. Errors that wrap it
	// also wrap exactly one of ErrWordCount, ErrUnknownWord or ErrChecksum, and are of
	// type *MnemonicError.
	ErrInvalidMnemonic = errors.New("vault: invalid mnemonic")
	// ErrWordCount: not 12, 15, 18, 21 or 24 words.
	ErrWordCount = errors.New("unsupported word count")
	// ErrUnknownWord: a word is not in the BIP39 English word list (the lookup is exact,
	// without case folding). The *MnemonicError says which position.
	ErrUnknownWord = errors.New("unknown word")
	// ErrChecksum: every word is known but the checksum bits do not match.
	ErrChecksum = errors.New("checksum mismatch")

	// ErrInvalidPath: a derivation path does not follow the grammar (see ParsePath).
	ErrInvalidPath = errors.New("vault: invalid derivation path")
	// ErrNotHardened: an Ed25519 (SLIP-0010) path has a non-hardened index. Errors
	// wrapping it also match ErrInvalidPath.
	ErrNotHardened = errors.New("vault: SLIP-0010 Ed25519 derivation needs hardened indices")
	// ErrInvalidSeed: a seed is shorter than 16 or longer than 64 bytes.
	ErrInvalidSeed = errors.New("vault: invalid seed length")

	// ErrUnsupportedKeyVersion: an EncryptedData key version this vault cannot use: 0,
	// 1 (the TypeScript predecessor's PBKDF2 scheme) or one whose path index overflows.
	ErrUnsupportedKeyVersion = errors.New("vault: unsupported key version")
	// ErrUnsupportedKeyType: a key type this build does not derive (secp256k1).
	ErrUnsupportedKeyType = errors.New("vault: unsupported key type")
	// ErrMalformedBlob: an EncryptedData blob that is not well formed: not JSON, a
	// missing field, bad or unpadded base64, an IV that is not 12 bytes, a salt that is
	// not 32 bytes, data shorter than the GCM tag, or larger than the size limit.
	ErrMalformedBlob = errors.New("vault: malformed encrypted data")
	// ErrDecrypt: authentication failed. Deliberately generic: a wrong key, a tampered
	// blob and a corrupted one look the same.
	ErrDecrypt = errors.New("vault: decryption failed")

	// ErrRedacted: an attempt to decode a secret from JSON or text (including the
	// "[REDACTED]" placeholder this package prints).
	ErrRedacted = errors.New("vault: redacted secret cannot be decoded")
	// ErrDestroyed: a secret value was used after Destroy.
	ErrDestroyed = errors.New("vault: secret already destroyed")
)

// MnemonicError is a phrase that is not a valid mnemonic. It matches ErrInvalidMnemonic
// and its cause (ErrWordCount, ErrUnknownWord or ErrChecksum) with errors.Is. It never
// holds the words themselves.
type MnemonicError struct {
	// Index is the 0-based position of the offending word for ErrUnknownWord, and -1
	// otherwise.
	Index int
	// Words is the number of words found (for ErrWordCount).
	Words int
	// Err is the cause: ErrWordCount, ErrUnknownWord or ErrChecksum.
	Err error
	// detail is an extra, non-secret explanation.
	detail string
}

// Error describes the problem with its position, never with the words.
func (e *MnemonicError) Error() string {
	switch {
	case errors.Is(e.Err, ErrUnknownWord):
		return fmt.Sprintf("vault: invalid mnemonic: word %d (index %d) is not in the BIP39 English word list", e.Index+1, e.Index)
	case errors.Is(e.Err, ErrWordCount) && e.detail != "":
		return "vault: invalid mnemonic: " + e.detail
	case errors.Is(e.Err, ErrWordCount):
		return fmt.Sprintf("vault: invalid mnemonic: %d words, want 12, 15, 18, 21 or 24", e.Words)
	default:
		return "vault: invalid mnemonic: " + e.Err.Error()
	}
}

// Unwrap returns the cause.
func (e *MnemonicError) Unwrap() error { return e.Err }

// Is reports ErrInvalidMnemonic as matching.
func (e *MnemonicError) Is(target error) bool { return target == ErrInvalidMnemonic }

// PathError is a derivation path that cannot be used. It matches ErrInvalidPath and,
// for a non-hardened Ed25519 index, ErrNotHardened.
type PathError struct {
	// Path is the path as given (paths are not secret).
	Path string
	// Reason says what is wrong.
	Reason string
	// Err is ErrInvalidPath or ErrNotHardened.
	Err error
}

// Error names the path and what is wrong with it.
func (e *PathError) Error() string {
	if e.Err == ErrNotHardened {
		return fmt.Sprintf("vault: path %q: %s: %s", e.Path, ErrNotHardened.Error()[len("vault: "):], e.Reason)
	}
	return fmt.Sprintf("vault: invalid derivation path %q: %s", e.Path, e.Reason)
}

// Unwrap returns the cause.
func (e *PathError) Unwrap() error { return e.Err }

// Is reports ErrInvalidPath as matching every PathError.
func (e *PathError) Is(target error) bool { return target == ErrInvalidPath }
