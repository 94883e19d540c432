package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// EncryptedData sizes and limits.
const (
	// MaxEncryptedDataSize is the largest JSON blob ParseEncryptedData reads, in bytes.
	// Use ParseEncryptedDataLimit for another bound.
	MaxEncryptedDataSize = 1 << 20
	// SaltSize is the size of EncryptedData's salt. The salt plays no part in the
	// encryption (the key comes from HD derivation); it is kept for format compatibility
	// and checked on decoding.
	SaltSize = 32
	// NonceSize is the size of the AES-GCM nonce (the iv field).
	NonceSize = 12
	// TagSize is the size of the GCM tag at the end of data.
	TagSize = 16
	// KeySize is the size of an AES-256 key.
	KeySize = 32
)

// EncryptedData is a secret encrypted at rest with AES-256-GCM under the vault key of
// KeyVersion. Its JSON form is frozen:
//
//	{"key_version":2,"salt":"<b64, 32 bytes>","iv":"<b64, 12 bytes>","data":"<b64 of ciphertext || 16-byte tag>"}
//
// with standard, padded base64. There is no associated data. A blob holds no secret
// in the clear, so it prints normally. Decrypted plaintext is bytes; readers in other
// languages (the Rust vault) expect it to be UTF-8.
type EncryptedData struct {
	// KeyVersion selects the key: version v ≥ 2 is derived at EncryptionPath(v).
	KeyVersion uint32 `json:"key_version"`
	// Salt is 32 random bytes, base64. Unused by the cipher.
	Salt string `json:"salt"`
	// IV is the 12-byte GCM nonce, base64.
	IV string `json:"iv"`
	// Data is the ciphertext followed by the 16-byte tag, base64.
	Data string `json:"data"`
}

// ParseEncryptedData decodes and validates a JSON blob of at most MaxEncryptedDataSize
// bytes. Every problem wraps ErrMalformedBlob, except an unusable key version, which
// wraps ErrUnsupportedKeyVersion. Unknown JSON fields are ignored (the format may grow
// optional fields).
func ParseEncryptedData(b []byte) (*EncryptedData, error) {
	return ParseEncryptedDataLimit(b, MaxEncryptedDataSize)
}

// ParseEncryptedDataLimit is ParseEncryptedData with a size limit of limit bytes.
func ParseEncryptedDataLimit(b []byte, limit int) (*EncryptedData, error) {
	if len(b) > limit {
		return nil, fmt.Errorf("%w: %d bytes is more than the limit of %d", ErrMalformedBlob, len(b), limit)
	}
	var ed EncryptedData
	if err := ed.UnmarshalJSON(b); err != nil {
		return nil, err
	}
	return &ed, nil
}

// UnmarshalJSON decodes a blob strictly: the field names are exact (no case folding),
// every field must be present, key_version must be a JSON integer and the other fields
// JSON strings, and Validate must pass. Unknown fields are ignored.
func (e *EncryptedData) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedBlob, err)
	}
	if fields == nil {
		return fmt.Errorf("%w: not a JSON object", ErrMalformedBlob)
	}
	var missing []string
	for _, name := range []string{"key_version", "salt", "iv", "data"} {
		if _, ok := fields[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing field %s", ErrMalformedBlob, strings.Join(missing, ", "))
	}
	v, err := parseKeyVersion(string(fields["key_version"]))
	if err != nil {
		return err
	}
	ed := EncryptedData{KeyVersion: v}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"salt", &ed.Salt}, {"iv", &ed.IV}, {"data", &ed.Data}} {
		if *f.dst, err = jsonString(f.name, fields[f.name]); err != nil {
			return err
		}
	}
	if err := ed.Validate(); err != nil {
		return err
	}
	*e = ed
	return nil
}

// jsonString decodes the raw JSON value of field name as a string. Base64 never needs
// escapes, so the common case is a plain slice of the quoted text.
func jsonString(name string, raw json.RawMessage) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", fmt.Errorf("%w: %s is not a JSON string", ErrMalformedBlob, name)
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrMalformedBlob, name, err)
	}
	return s, nil
}

// parseKeyVersion parses a JSON number as a key version.
func parseKeyVersion(s string) (uint32, error) {
	var v uint64
	if s == "" || len(s) > 20 {
		return 0, fmt.Errorf("%w: key_version %q is not an unsigned integer", ErrMalformedBlob, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: key_version %q is not an unsigned integer", ErrMalformedBlob, s)
		}
		if v > (1<<63)/10 {
			return 0, fmt.Errorf("%w: key_version %s is too large", ErrUnsupportedKeyVersion, s)
		}
		v = v*10 + uint64(c-'0')
	}
	if v > uint64(^uint32(0)) {
		return 0, fmt.Errorf("%w: key_version %s is too large", ErrUnsupportedKeyVersion, s)
	}
	return uint32(v), nil
}

// Validate checks the blob's shape: a usable key version (ErrUnsupportedKeyVersion),
// and padded standard base64 for a 32-byte salt, a 12-byte IV and data at least as long
// as the GCM tag (ErrMalformedBlob).
func (e *EncryptedData) Validate() error {
	if err := checkKeyVersion(e.KeyVersion); err != nil {
		return err
	}
	for _, f := range []struct {
		name           string
		s              string
		minLen, maxLen int
	}{{"salt", e.Salt, SaltSize, SaltSize}, {"iv", e.IV, NonceSize, NonceSize}, {"data", e.Data, TagSize, -1}} {
		if err := checkField(f.name, f.s, f.minLen, f.maxLen); err != nil {
			return err
		}
	}
	return nil
}

// decode validates e and returns its decoded IV and data.
func (e *EncryptedData) decode() (iv, data []byte, err error) {
	if err := checkKeyVersion(e.KeyVersion); err != nil {
		return nil, nil, err
	}
	if err := checkField("salt", e.Salt, SaltSize, SaltSize); err != nil {
		return nil, nil, err
	}
	if iv, err = decodeField("iv", e.IV, NonceSize, NonceSize); err != nil {
		return nil, nil, err
	}
	if data, err = decodeField("data", e.Data, TagSize, -1); err != nil {
		return nil, nil, err
	}
	return iv, data, nil
}

// checkChunk is how much base64 text checkField decodes at a time: 1 KiB of text, 768
// bytes of output on the stack.
const checkChunk = 1024

// checkField validates s as decodeField does, without keeping the decoded bytes: it
// decodes into a stack buffer, a chunk at a time. Padding may only end the text, so
// every chunk but the last is free of it, and the last one checks it (and the zero
// trailing bits) as a whole decode would.
func checkField(name, s string, minLen, maxLen int) error {
	n, err := checkShape(name, s, maxLen)
	if err != nil {
		return err
	}
	if i := strings.IndexByte(s, '='); i >= 0 && i < len(s)-2 {
		return fmt.Errorf("%w: %s is not padded standard base64", ErrMalformedBlob, name)
	}
	var buf [checkChunk / 4 * 3]byte
	n = 0
	for len(s) > 0 {
		c := min(len(s), checkChunk)
		m, err := base64.StdEncoding.Strict().Decode(buf[:], []byte(s[:c]))
		if err != nil {
			return fmt.Errorf("%w: %s is not padded standard base64", ErrMalformedBlob, name)
		}
		n += m
		s = s[c:]
	}
	return checkLen(name, n, minLen, maxLen)
}

// checkShape checks what can be checked before decoding: no line breaks (the decoder
// skips \r and \n; a blob must not contain them), whole 4-character groups, and at
// most maxLen decoded bytes. It returns the decoded length counting padding as data.
func checkShape(name, s string, maxLen int) (int, error) {
	if strings.IndexByte(s, '\r') >= 0 || strings.IndexByte(s, '\n') >= 0 || len(s)%4 != 0 {
		return 0, fmt.Errorf("%w: %s is not padded standard base64", ErrMalformedBlob, name)
	}
	n := base64.StdEncoding.DecodedLen(len(s))
	if maxLen >= 0 && n > maxLen+2 { // DecodedLen counts padding as data
		return 0, fmt.Errorf("%w: %s decodes to more than %d bytes", ErrMalformedBlob, name, maxLen)
	}
	return n, nil
}

// checkLen checks a decoded length against [minLen, maxLen] (maxLen < 0: no upper bound).
func checkLen(name string, n, minLen, maxLen int) error {
	if n < minLen || (maxLen >= 0 && n > maxLen) {
		if minLen == maxLen {
			return fmt.Errorf("%w: %s is %d bytes, want %d", ErrMalformedBlob, name, n, minLen)
		}
		return fmt.Errorf("%w: %s is %d bytes, want at least %d", ErrMalformedBlob, name, n, minLen)
	}
	return nil
}

// decodeField decodes padded standard base64 and checks the decoded length against
// [min, max] (max < 0: no upper bound).
func decodeField(name, s string, minLen, maxLen int) ([]byte, error) {
	n, err := checkShape(name, s, maxLen)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	n, err = base64.StdEncoding.Strict().Decode(b, []byte(s))
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not padded standard base64", ErrMalformedBlob, name)
	}
	b = b[:n]
	if err := checkLen(name, n, minLen, maxLen); err != nil {
		return nil, err
	}
	return b, nil
}

// seal encrypts plaintext under the 32-byte key with a fresh nonce and salt.
func seal(key []byte, version uint32, plaintext []byte) (*EncryptedData, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return sealWith(gcm, version, plaintext), nil
}

// sealWith encrypts plaintext with gcm (AES-256-GCM under the key of version) with a
// fresh nonce and salt.
func sealWith(gcm cipher.AEAD, version uint32, plaintext []byte) *EncryptedData {
	var salt [SaltSize]byte
	var iv [NonceSize]byte
	_, _ = rand.Read(salt[:])
	_, _ = rand.Read(iv[:])
	ct := gcm.Seal(nil, iv[:], plaintext, nil)
	return &EncryptedData{
		KeyVersion: version,
		Salt:       base64.StdEncoding.EncodeToString(salt[:]),
		IV:         base64.StdEncoding.EncodeToString(iv[:]),
		Data:       base64.StdEncoding.EncodeToString(ct),
	}
}

// open decrypts the decoded iv and data (from EncryptedData.decode) under key.
// Authentication failures are ErrDecrypt.
func open(key, iv, data []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return openWith(gcm, iv, data)
}

// openWith decrypts the decoded iv and data with gcm. Authentication failures are
// ErrDecrypt.
func openWith(gcm cipher.AEAD, iv, data []byte) ([]byte, error) {
	pt, err := gcm.Open(data[:0], iv, data, nil)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// newGCM returns AES-256-GCM with the standard nonce and tag sizes.
func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("vault: AES-256 key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return gcm, nil
}
