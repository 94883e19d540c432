package vault

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	_ "embed"
	"encoding/binary"
	"strings"
	"sync"

	"golang.org/x/text/unicode/norm"
)

// englishWordList is BIP39's canonical english.txt: 2048 sorted lines, each ending in
// "\n". Its SHA-256 is checked by the tests.
//
//go:embed english.txt
var englishWordList string

// wordList returns the English word list, split once on first use.
var wordList = sync.OnceValue(func() []string {
	return strings.Split(strings.TrimSuffix(englishWordList, "\n"), "\n")
})

// Mnemonic limits and parameters.
const (
	// MaxMnemonicLength is the longest phrase, in bytes, ParseMnemonic reads; longer
	// input is refused before it is split. 24 words of at most 8 letters need 215.
	MaxMnemonicLength = 1024
	// DefaultWords is the word count of a generated mnemonic when none is chosen.
	DefaultWords = 24
	// seedIterations is BIP39's PBKDF2 iteration count.
	seedIterations = 2048
	// SeedSize is the size of a BIP39 seed in bytes.
	SeedSize = 64
)

// Mnemonic is a valid BIP39 English mnemonic. It holds the phrase in canonical form
// (single spaces, no surrounding whitespace) in a byte slice that Destroy wipes. It
// prints and marshals as [Redacted].
type Mnemonic struct {
	redacted
	phrase *secretBytes
	words  int
}

// validWordCount reports whether n is 12, 15, 18, 21 or 24.
func validWordCount(n int) bool { return n >= 12 && n <= 24 && n%3 == 0 }

// NewMnemonic generates a mnemonic of words words (12, 15, 18, 21 or 24) from
// crypto/rand. Other counts give a *MnemonicError wrapping ErrWordCount.
func NewMnemonic(words int) (*Mnemonic, error) {
	if !validWordCount(words) {
		return nil, &MnemonicError{Index: -1, Words: words, Err: ErrWordCount}
	}
	entropy := make([]byte, words*4/3)
	defer wipe(entropy)
	_, _ = rand.Read(entropy) // never fails since Go 1.24
	return MnemonicFromEntropy(entropy)
}

// MnemonicFromEntropy returns the mnemonic that encodes entropy, which must be 16, 20,
// 24, 28 or 32 bytes (12 to 24 words). It is deterministic; NewMnemonic is the way to
// make a new secret.
func MnemonicFromEntropy(entropy []byte) (*Mnemonic, error) {
	n := len(entropy)
	if n < 16 || n > 32 || n%4 != 0 {
		return nil, &MnemonicError{Index: -1, Words: -1, Err: ErrWordCount,
			detail: "entropy must be 16, 20, 24, 28 or 32 bytes"}
	}
	words := n * 3 / 4
	// The bit string is entropy followed by the first n/4 bits of SHA-256(entropy);
	// at most 33 bytes.
	sum := sha256.Sum256(entropy)
	var bits [33]byte
	defer clear(bits[:])
	defer clear(sum[:])
	copy(bits[:], entropy)
	bits[n] = sum[0]
	list := wordList()
	phrase := make([]byte, 0, words*9)
	for i := range words {
		if i > 0 {
			phrase = append(phrase, ' ')
		}
		phrase = append(phrase, list[index11(bits[:], i)]...)
	}
	m := &Mnemonic{phrase: wrapSecret(phrase), words: words}
	return m, nil
}

// index11 returns the i-th 11-bit group of b, most significant bit first.
func index11(b []byte, i int) int {
	bit := i * 11
	// Read 3 bytes starting at the group's first byte (b has room: len 33 covers the
	// last group of a 24-word phrase, bits 253..263 within bytes 31..32).
	var v uint32
	for k := range 3 {
		v <<= 8
		if j := bit/8 + k; j < len(b) {
			v |= uint32(b[j])
		}
	}
	shift := 24 - 11 - bit%8
	return int(v>>shift) & 0x7ff
}

// ParseMnemonic validates phrase and returns it as a Mnemonic. Words may be separated
// by any run of white space, with white space around them; the lookup is exact (no
// case folding: "About" is unknown). Errors are *MnemonicError values wrapping
// ErrInvalidMnemonic and one of ErrWordCount, ErrUnknownWord (with the word's index)
// or ErrChecksum. phrase is not retained; the caller may wipe it.
func ParseMnemonic(phrase []byte) (*Mnemonic, error) {
	if len(phrase) > MaxMnemonicLength {
		return nil, &MnemonicError{Index: -1, Words: -1, Err: ErrWordCount,
			detail: "phrase is longer than 1024 bytes"}
	}
	fields := bytes.Fields(phrase)
	if !validWordCount(len(fields)) {
		return nil, &MnemonicError{Index: -1, Words: len(fields), Err: ErrWordCount}
	}
	var bits [33]byte
	defer clear(bits[:])
	for i, w := range fields {
		idx := wordIndex(w)
		if idx < 0 {
			return nil, &MnemonicError{Index: i, Words: len(fields), Err: ErrUnknownWord}
		}
		// Write the 11 bits of idx at bit offset i*11.
		for k := range 11 {
			if idx&(1<<(10-k)) != 0 {
				pos := i*11 + k
				bits[pos/8] |= 0x80 >> (pos % 8)
			}
		}
	}
	n := len(fields) * 4 / 3 // entropy bytes
	sum := sha256.Sum256(bits[:n])
	defer clear(sum[:])
	csBits := uint(n / 4)
	mask := byte(0xff << (8 - csBits))
	if (bits[n]^sum[0])&mask != 0 {
		return nil, &MnemonicError{Index: -1, Words: len(fields), Err: ErrChecksum}
	}
	canonical := make([]byte, 0, len(phrase))
	for i, w := range fields {
		if i > 0 {
			canonical = append(canonical, ' ')
		}
		canonical = append(canonical, w...)
	}
	return &Mnemonic{phrase: wrapSecret(canonical), words: len(fields)}, nil
}

// wordIndex returns w's index in the English list, or -1.
func wordIndex(w []byte) int {
	list := wordList()
	lo, hi := 0, len(list)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if compareWord(list[mid], w) < 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(list) && compareWord(list[lo], w) == 0 {
		return lo
	}
	return -1
}

// compareWord compares s and b bytewise without converting the secret b to a string.
func compareWord(s string, b []byte) int {
	for i := 0; i < len(s) && i < len(b); i++ {
		if s[i] != b[i] {
			if s[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(s) < len(b):
		return -1
	case len(s) > len(b):
		return 1
	}
	return 0
}

// Words returns the number of words.
func (m *Mnemonic) Words() int { return m.words }

// Phrase returns a copy of the canonical phrase (words separated by single spaces).
// The caller owns the copy and should wipe it when done. After Destroy it returns nil.
func (m *Mnemonic) Phrase() []byte {
	if m == nil || m.phrase == nil {
		return nil
	}
	return bytes.Clone(m.phrase.bytes())
}

// Seed derives the 64-byte BIP39 seed: PBKDF2-HMAC-SHA512 over the NFKD-normalised
// phrase with the salt "mnemonic" + NFKD(passphrase), 2048 iterations. A nil passphrase
// is the same as an empty one. A wrong passphrase is not detectable: it gives another
// valid seed. After Destroy it returns ErrDestroyed.
func (m *Mnemonic) Seed(passphrase []byte) (*Seed, error) {
	if m == nil || m.phrase == nil {
		return nil, ErrDestroyed
	}
	password := nfkd(m.phrase.bytes())
	defer wipe(password)
	normPass := nfkd(passphrase)
	defer wipe(normPass)
	salt := make([]byte, 0, len("mnemonic")+len(normPass))
	salt = append(salt, "mnemonic"...)
	salt = append(salt, normPass...)
	defer wipe(salt)
	return &Seed{b: wrapSecret(pbkdf2SHA512(password, salt, seedIterations, SeedSize))}, nil
}

// Destroy wipes the phrase. The Mnemonic is unusable afterwards.
func (m *Mnemonic) Destroy() {
	if m == nil || m.phrase == nil {
		return
	}
	m.phrase.wipe()
	m.phrase = nil
}

// nfkd returns the NFKD normal form of b in a new slice that the caller owns (and
// wipes). norm.NFKD.Bytes may return b itself, which a wipe would then destroy.
func nfkd(b []byte) []byte {
	return norm.NFKD.Append(make([]byte, 0, len(b)+len(b)/2), b...)
}

// pbkdf2SHA512 is PBKDF2 (RFC 8018) with HMAC-SHA512. It is written here because both
// crypto/pbkdf2 and x/crypto/pbkdf2 take the password as a string, which would leave an
// unwipeable copy of the mnemonic in memory.
func pbkdf2SHA512(password, salt []byte, iter, keyLen int) []byte {
	prf := hmac.New(sha512.New, password)
	hLen := prf.Size()
	out := make([]byte, 0, (keyLen+hLen-1)/hLen*hLen)
	var counter [4]byte
	u := make([]byte, 0, hLen)
	t := make([]byte, hLen)
	defer wipe(u[:hLen])
	for block := uint32(1); len(out) < keyLen; block++ {
		binary.BigEndian.PutUint32(counter[:], block)
		prf.Reset()
		prf.Write(salt)
		prf.Write(counter[:])
		u = prf.Sum(u[:0])
		copy(t, u)
		for range iter - 1 {
			prf.Reset()
			prf.Write(u)
			u = prf.Sum(u[:0])
			for i := range t {
				t[i] ^= u[i]
			}
		}
		out = append(out, t...)
	}
	wipe(t)
	return out[:keyLen]
}

// Seed is a BIP39 seed (or any 16..64-byte master secret): the root of every derived
// key. It prints and marshals as [Redacted]; Destroy wipes it.
type Seed struct {
	redacted
	b *secretBytes
}

// NewSeed copies b (16 to 64 bytes, as BIP32/SLIP-0010 allow) into a Seed. Use it for
// seeds that do not come from a mnemonic, such as published test vectors.
func NewSeed(b []byte) (*Seed, error) {
	if len(b) < 16 || len(b) > 64 {
		return nil, ErrInvalidSeed
	}
	return &Seed{b: newSecret(b)}, nil
}

// Bytes returns a copy of the seed bytes; the caller should wipe it. After Destroy it
// returns nil.
func (s *Seed) Bytes() []byte {
	if s == nil || s.b == nil {
		return nil
	}
	return bytes.Clone(s.b.bytes())
}

// Destroy wipes the seed.
func (s *Seed) Destroy() {
	if s == nil || s.b == nil {
		return
	}
	s.b.wipe()
	s.b = nil
}
