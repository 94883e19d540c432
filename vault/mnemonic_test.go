package vault

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// englishWordListSHA256 is the SHA-256 of BIP39's canonical english.txt (vault.md §3).
const englishWordListSHA256 = "2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda"

// bip39Vector is one entry of trezor/python-mnemonic vectors.json (vault.md §9.1); the
// seed is for the passphrase "TREZOR".
type bip39Vector struct {
	entropy string
	phrase  string
	seed    string
}

var bip39Vectors = []bip39Vector{
	{
		entropy: "00000000000000000000000000000000",
		phrase:  "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
		seed:    "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04",
	},
	{
		entropy: "7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
		phrase:  "legal winner thank year wave sausage worth useful legal winner thank yellow",
		seed:    "2e8905819b8723fe2c1d161860e5ee1830318dbf49a83bd451cfb8440c28bd6fa457fe1296106559a3c80937a1c1069be3a3a5bd381ee6260e8d9739fce1f607",
	},
	{
		entropy: "ffffffffffffffffffffffffffffffff",
		phrase:  "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong",
		seed:    "ac27495480225222079d7be181583751e86f571027b0497b5b5d11218e0a8a13332572917f0f8e5a589620c6f15b11c61dee327651a14c34e18231052e48c069",
	},
	{
		entropy: "0000000000000000000000000000000000000000000000000000000000000000",
		phrase:  "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art",
		seed:    "bda85446c68413707090a52022edd26a1c9462295029f2e60cd7c4f2bbd3097170af7a4d73245cafa9c3cca8d561a7c3de6f5d4a10be8ed2a5e608d68f92fcc8",
	},
	{
		entropy: "9e885d952ad362caeb4efe34a8e91bd2",
		phrase:  "ozone drill grab fiber curtain grace pudding thank cruise elder eight picnic",
		seed:    "274ddc525802f7c828d8ef7ddbcdc5304e87ac3535913611fbbfa986d0c9e5476c91689f9c8a54fd55bd38606aa6a8595ad213d4c9c9f9aca3fb217069a41028",
	},
}

// abandonAboutEmptySeed is the seed of abandonPhrase with the empty passphrase (§9.1).
const abandonAboutEmptySeed = "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc19a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4"

// mustParseMnemonic parses phrase or fails the test.
func mustParseMnemonic(t testing.TB, phrase string) *Mnemonic {
	t.Helper()
	m, err := ParseMnemonic([]byte(phrase))
	if err != nil {
		t.Fatalf("ParseMnemonic(%q): %v", phrase, err)
	}
	return m
}

// mustSeed returns m's seed for passphrase or fails the test.
func mustSeed(t testing.TB, m *Mnemonic, passphrase []byte) *Seed {
	t.Helper()
	s, err := m.Seed(passphrase)
	if err != nil {
		t.Fatalf("Mnemonic.Seed: %v", err)
	}
	return s
}

// wantMnemonicError checks that err is a *MnemonicError matching ErrInvalidMnemonic and
// exactly the cause want among ErrWordCount, ErrUnknownWord and ErrChecksum.
func wantMnemonicError(t *testing.T, err, want error) *MnemonicError {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	if !errors.Is(err, ErrInvalidMnemonic) {
		t.Errorf("errors.Is(%v, ErrInvalidMnemonic) = false", err)
	}
	for _, cause := range []error{ErrWordCount, ErrUnknownWord, ErrChecksum} {
		if got := errors.Is(err, cause); got != (cause == want) {
			t.Errorf("errors.Is(%v, %v) = %v, want %v", err, cause, got, cause == want)
		}
	}
	var me *MnemonicError
	if !errors.As(err, &me) {
		t.Fatalf("error %T %v is not a *MnemonicError", err, err)
	}
	return me
}

func TestEnglishWordListIsCanonical(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte(englishWordList))
	if got := hex.EncodeToString(sum[:]); got != englishWordListSHA256 {
		t.Fatalf("SHA-256(english.txt) = %s, want %s", got, englishWordListSHA256)
	}
	if !strings.HasSuffix(englishWordList, "\n") {
		t.Errorf("english.txt does not end in a newline")
	}
	words := wordList()
	if len(words) != 2048 {
		t.Fatalf("word list has %d words, want 2048", len(words))
	}
	if !slices.IsSorted(words) {
		t.Errorf("word list is not sorted")
	}
	for i, w := range words {
		if i > 0 && words[i-1] == w {
			t.Errorf("word %q appears twice", w)
		}
		if len(w) < 3 || len(w) > 8 || strings.Trim(w, "abcdefghijklmnopqrstuvwxyz") != "" {
			t.Errorf("word %d %q is not 3..8 lower-case ASCII letters", i, w)
		}
		if got := wordIndex([]byte(w)); got != i {
			t.Errorf("wordIndex(%q) = %d, want %d", w, got, i)
		}
	}
	for _, w := range []string{"", "a", "abandonx", "About", "ABANDON", "zoo ", "zooo", "aaaa", "zzz"} {
		if got := wordIndex([]byte(w)); got != -1 {
			t.Errorf("wordIndex(%q) = %d, want -1", w, got)
		}
	}
}

func TestMnemonicFromEntropyVectors(t *testing.T) {
	t.Parallel()
	for _, v := range bip39Vectors {
		t.Run(v.entropy, func(t *testing.T) {
			t.Parallel()
			m, err := MnemonicFromEntropy(mustHex(t, v.entropy))
			if err != nil {
				t.Fatalf("MnemonicFromEntropy: %v", err)
			}
			if got := string(m.Phrase()); got != v.phrase {
				t.Errorf("phrase = %q, want %q", got, v.phrase)
			}
			if got, want := m.Words(), len(strings.Fields(v.phrase)); got != want {
				t.Errorf("Words() = %d, want %d", got, want)
			}
		})
	}
}

func TestParseMnemonicVectorsSeedTREZOR(t *testing.T) {
	t.Parallel()
	for _, v := range bip39Vectors {
		t.Run(v.entropy, func(t *testing.T) {
			t.Parallel()
			m := mustParseMnemonic(t, v.phrase)
			if got, want := m.Words(), len(strings.Fields(v.phrase)); got != want {
				t.Errorf("Words() = %d, want %d", got, want)
			}
			if got := string(m.Phrase()); got != v.phrase {
				t.Errorf("Phrase() = %q, want %q", got, v.phrase)
			}
			seed := mustSeed(t, m, []byte("TREZOR"))
			if got := hex.EncodeToString(seed.Bytes()); got != v.seed {
				t.Errorf("seed(TREZOR) = %s, want %s", got, v.seed)
			}
			empty := mustSeed(t, m, nil)
			if bytes.Equal(empty.Bytes(), seed.Bytes()) {
				t.Errorf("the empty passphrase gives the same seed as TREZOR")
			}
		})
	}
}

func TestSeedEmptyPassphrase(t *testing.T) {
	t.Parallel()
	m := mustParseMnemonic(t, abandonPhrase)
	withNil := mustSeed(t, m, nil)
	withEmpty := mustSeed(t, m, []byte{})
	if got := hex.EncodeToString(withNil.Bytes()); got != abandonAboutEmptySeed {
		t.Errorf("seed(nil) = %s, want %s", got, abandonAboutEmptySeed)
	}
	if !bytes.Equal(withNil.Bytes(), withEmpty.Bytes()) {
		t.Errorf("seed(nil) != seed(\"\")")
	}
	if got := len(withNil.Bytes()); got != SeedSize {
		t.Errorf("seed is %d bytes, want %d", got, SeedSize)
	}
	trezor := mustSeed(t, m, []byte("TREZOR"))
	if bytes.Equal(trezor.Bytes(), withNil.Bytes()) {
		t.Errorf("seed(TREZOR) == seed(\"\")")
	}
}

func TestSeedNormalisesPassphraseNFKD(t *testing.T) {
	t.Parallel()
	m := mustParseMnemonic(t, abandonPhrase)
	for _, tc := range []struct{ name, a, b string }{
		{"composed vs decomposed e-acute", "caf\u00e9", "cafe\u0301"},
		{"fi ligature vs f i", "\ufb01le", "file"},
		{"full-width vs ASCII", "\uff34\uff32\uff25\uff3a\uff2f\uff32", "TREZOR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := mustSeed(t, m, []byte(tc.a))
			b := mustSeed(t, m, []byte(tc.b))
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Errorf("seed(%q) != seed(%q), want equal after NFKD", tc.a, tc.b)
			}
		})
	}
	// The passphrase given by the caller is not modified by the normalisation.
	pass := []byte("cafe\u0301")
	orig := bytes.Clone(pass)
	mustSeed(t, m, pass)
	if !bytes.Equal(pass, orig) {
		t.Errorf("Seed modified its passphrase argument: %q", pass)
	}
}

func TestMnemonicFromEntropyRejectsBadLength(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 12, 15, 17, 18, 30, 33, 36, 64} {
		_, err := MnemonicFromEntropy(make([]byte, n))
		if err == nil {
			t.Errorf("MnemonicFromEntropy(%d bytes): no error", n)
			continue
		}
		wantMnemonicError(t, err, ErrWordCount)
	}
}

func TestNewMnemonicWordCounts(t *testing.T) {
	t.Parallel()
	for _, words := range []int{12, 15, 18, 21, 24} {
		t.Run(strconv.Itoa(words)+" words", func(t *testing.T) {
			t.Parallel()
			a, err := NewMnemonic(words)
			if err != nil {
				t.Fatalf("NewMnemonic(%d): %v", words, err)
			}
			if a.Words() != words {
				t.Errorf("Words() = %d, want %d", a.Words(), words)
			}
			phrase := a.Phrase()
			if got := len(bytes.Fields(phrase)); got != words {
				t.Errorf("phrase has %d words, want %d", got, words)
			}
			again, err := ParseMnemonic(phrase)
			if err != nil {
				t.Fatalf("ParseMnemonic(generated %d-word phrase): %v", words, err)
			}
			if again.Words() != words || !bytes.Equal(again.Phrase(), phrase) {
				t.Errorf("re-parsed phrase differs")
			}
			b, err := NewMnemonic(words)
			if err != nil {
				t.Fatalf("NewMnemonic(%d): %v", words, err)
			}
			if bytes.Equal(a.Phrase(), b.Phrase()) {
				t.Errorf("two generated %d-word mnemonics are equal", words)
			}
		})
	}
}

func TestNewMnemonicRejectsBadWordCounts(t *testing.T) {
	t.Parallel()
	for _, words := range []int{0, 11, 13, 27, -12, 3, 25, 48} {
		m, err := NewMnemonic(words)
		if m != nil {
			t.Errorf("NewMnemonic(%d) returned a mnemonic", words)
		}
		me := wantMnemonicError(t, err, ErrWordCount)
		if me.Words != words {
			t.Errorf("NewMnemonic(%d): MnemonicError.Words = %d", words, me.Words)
		}
	}
}

func TestParseMnemonicBadInput(t *testing.T) {
	t.Parallel()
	abandon11 := strings.Repeat("abandon ", 11)
	tests := []struct {
		name      string
		phrase    string
		want      error
		wantIndex int
		wantWords int
	}{
		{"checksum abandon x12", strings.TrimSpace(strings.Repeat("abandon ", 12)), ErrChecksum, -1, 12},
		{"checksum abandon x11 zoo", abandon11 + "zoo", ErrChecksum, -1, 12},
		{"checksum 24 words", strings.Repeat("abandon ", 23) + "about", ErrChecksum, -1, 24},
		{"checksum swapped words", "legal winner thank year wave sausage worth useful legal winner yellow thank", ErrChecksum, -1, 12},
		{"unknown word abandonx last", abandon11 + "abandonx", ErrUnknownWord, 11, 12},
		{"unknown word About last", abandon11 + "About", ErrUnknownWord, 11, 12},
		{"unknown word ABOUT last", abandon11 + "ABOUT", ErrUnknownWord, 11, 12},
		{"unknown word first", "abandonx " + strings.TrimSpace(abandon11[:len(abandon11)-len("abandon ")]) + " about", ErrUnknownWord, 0, 12},
		{"unknown word with punctuation", abandon11 + "about.", ErrUnknownWord, 11, 12},
		{"unknown non-ASCII word", abandon11 + "ab\u00f3ut", ErrUnknownWord, 11, 12},
		{"11 words", strings.TrimSpace(abandon11), ErrWordCount, -1, 11},
		{"13 words", abandon11 + "abandon about", ErrWordCount, -1, 13},
		{"empty", "", ErrWordCount, -1, 0},
		{"only whitespace", " \t\n ", ErrWordCount, -1, 0},
		{"1 word", "about", ErrWordCount, -1, 1},
		{"25 words", strings.Repeat("abandon ", 24) + "art", ErrWordCount, -1, 25},
		{"27 words", strings.Repeat("abandon ", 26) + "art", ErrWordCount, -1, 27},
		{"23 words with unknown word", strings.Repeat("abandonx ", 23), ErrWordCount, -1, 23},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseMnemonic([]byte(tc.phrase))
			if m != nil {
				t.Errorf("ParseMnemonic returned a mnemonic")
			}
			me := wantMnemonicError(t, err, tc.want)
			if me.Index != tc.wantIndex {
				t.Errorf("Index = %d, want %d", me.Index, tc.wantIndex)
			}
			if me.Words != tc.wantWords {
				t.Errorf("Words = %d, want %d", me.Words, tc.wantWords)
			}
			// The message must not echo the offending words.
			msg := err.Error()
			for _, w := range []string{"abandonx", "About", "ABOUT", "about.", "zoo", "yellow"} {
				if strings.Contains(tc.phrase, w) && strings.Contains(msg, w) {
					t.Errorf("error message %q contains the word %q", msg, w)
				}
			}
		})
	}
}

func TestParseMnemonicWhitespace(t *testing.T) {
	t.Parallel()
	canonical := bip39Vectors[4].phrase
	words := strings.Fields(canonical)
	want := mustSeed(t, mustParseMnemonic(t, canonical), nil).Bytes()
	variants := map[string]string{
		"tabs":                strings.Join(words, "\t"),
		"newlines":            strings.Join(words, "\n"),
		"CRLF":                strings.Join(words, "\r\n"),
		"multiple spaces":     strings.Join(words, "   "),
		"surrounding":         "  \n\t" + canonical + " \n",
		"mixed":               strings.Join(words[:6], " \t ") + "\n\n" + strings.Join(words[6:], "  "),
		"vertical tab and ff": strings.Join(words, "\v\f"),
		"unicode spaces":      strings.Join(words, "\u00a0\u2003"),
	}
	for name, phrase := range variants {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := mustParseMnemonic(t, phrase)
			if got := string(m.Phrase()); got != canonical {
				t.Errorf("Phrase() = %q, want canonical %q", got, canonical)
			}
			if m.Words() != 12 {
				t.Errorf("Words() = %d, want 12", m.Words())
			}
			if got := mustSeed(t, m, nil).Bytes(); !bytes.Equal(got, want) {
				t.Errorf("seed of the %s variant differs from the canonical phrase's", name)
			}
		})
	}
}

func TestParseMnemonicMaxLength(t *testing.T) {
	t.Parallel()
	pad := func(n int) []byte {
		b := []byte(abandonPhrase)
		return append(b, bytes.Repeat([]byte(" "), n-len(b))...)
	}
	atLimit := pad(MaxMnemonicLength)
	if len(atLimit) != MaxMnemonicLength {
		t.Fatalf("test bug: padded phrase is %d bytes", len(atLimit))
	}
	m, err := ParseMnemonic(atLimit)
	if err != nil {
		t.Fatalf("ParseMnemonic(%d bytes, the limit): %v", len(atLimit), err)
	}
	if got := string(m.Phrase()); got != abandonPhrase {
		t.Errorf("Phrase() = %q", got)
	}
	over := pad(MaxMnemonicLength + 1)
	_, err = ParseMnemonic(over)
	wantMnemonicError(t, err, ErrWordCount)
	// Also a long phrase with the padding in front.
	over = append(bytes.Repeat([]byte("\t"), MaxMnemonicLength+1-len(abandonPhrase)), abandonPhrase...)
	_, err = ParseMnemonic(over)
	wantMnemonicError(t, err, ErrWordCount)
	huge := bytes.Repeat([]byte("zoo "), 1<<16)
	_, err = ParseMnemonic(huge)
	wantMnemonicError(t, err, ErrWordCount)
}

func TestParseMnemonicDoesNotRetainInput(t *testing.T) {
	t.Parallel()
	in := []byte(abandonPhrase)
	m, err := ParseMnemonic(in)
	if err != nil {
		t.Fatal(err)
	}
	clear(in)
	if got := string(m.Phrase()); got != abandonPhrase {
		t.Errorf("Phrase() after wiping the input = %q", got)
	}
	p := m.Phrase()
	clear(p)
	if got := string(m.Phrase()); got != abandonPhrase {
		t.Errorf("Phrase() after wiping a returned copy = %q", got)
	}
}

func TestMnemonicDestroy(t *testing.T) {
	t.Parallel()
	m := mustParseMnemonic(t, abandonPhrase)
	m.Destroy()
	if p := m.Phrase(); p != nil {
		t.Errorf("Phrase() after Destroy = %q, want nil", p)
	}
	if _, err := m.Seed(nil); !errors.Is(err, ErrDestroyed) {
		t.Errorf("Seed after Destroy: %v, want ErrDestroyed", err)
	}
	m.Destroy() // idempotent
	var nilM *Mnemonic
	nilM.Destroy()
	if nilM.Phrase() != nil {
		t.Errorf("nil Mnemonic has a phrase")
	}
	if _, err := nilM.Seed(nil); !errors.Is(err, ErrDestroyed) {
		t.Errorf("nil Mnemonic Seed: %v, want ErrDestroyed", err)
	}
}

func TestNewSeed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n  int
		ok bool
	}{{0, false}, {15, false}, {16, true}, {32, true}, {64, true}, {65, false}} {
		b := bytes.Repeat([]byte{0x5a}, tc.n)
		s, err := NewSeed(b)
		if tc.ok != (err == nil) {
			t.Errorf("NewSeed(%d bytes): err = %v, want ok=%v", tc.n, err, tc.ok)
			continue
		}
		if !tc.ok {
			if !errors.Is(err, ErrInvalidSeed) {
				t.Errorf("NewSeed(%d bytes): %v, want ErrInvalidSeed", tc.n, err)
			}
			continue
		}
		clear(b)
		got := s.Bytes()
		if !bytes.Equal(got, bytes.Repeat([]byte{0x5a}, tc.n)) {
			t.Errorf("NewSeed(%d bytes) did not copy its input", tc.n)
		}
		clear(got)
		if s.Bytes()[0] != 0x5a {
			t.Errorf("Seed.Bytes does not return a copy")
		}
		s.Destroy()
		if s.Bytes() != nil {
			t.Errorf("Bytes after Destroy is not nil")
		}
		s.Destroy()
	}
}

// entropyOf recovers the entropy of a valid phrase (the inverse of MnemonicFromEntropy),
// independently of ParseMnemonic.
func entropyOf(t *testing.T, phrase []byte) []byte {
	t.Helper()
	words := bytes.Fields(phrase)
	var bits []byte // one byte per bit
	for _, w := range words {
		i := slices.Index(wordList(), string(w))
		if i < 0 {
			t.Fatalf("entropyOf: unknown word in an accepted phrase")
		}
		for k := 10; k >= 0; k-- {
			bits = append(bits, byte(i>>k)&1)
		}
	}
	n := len(words) * 4 / 3
	out := make([]byte, n)
	for i := range n * 8 {
		out[i/8] |= bits[i] << (7 - i%8)
	}
	return out
}

func FuzzParseMnemonic(f *testing.F) {
	for _, v := range bip39Vectors {
		f.Add([]byte(v.phrase))
		f.Add([]byte(" \t" + strings.ReplaceAll(v.phrase, " ", "\n  ") + "\r\n"))
	}
	abandon11 := strings.Repeat("abandon ", 11)
	for _, s := range []string{
		"", " ", "about", abandon11 + "about", abandon11 + "abandon", abandon11 + "zoo",
		abandon11 + "abandonx", abandon11 + "About", strings.TrimSpace(abandon11),
		abandon11 + "abandon about", strings.Repeat("zoo ", 24), strings.Repeat("abandon ", 26) + "art",
		abandon11 + "ab\u00f3ut", abandon11 + "\xff\xfe", strings.Repeat(" ", MaxMnemonicLength+1),
		strings.Join(strings.Fields(bip39Vectors[4].phrase), "\u00a0"),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, phrase []byte) {
		in := bytes.Clone(phrase)
		m, err := ParseMnemonic(phrase)
		if !bytes.Equal(in, phrase) {
			t.Fatalf("ParseMnemonic modified its input")
		}
		if err != nil {
			if m != nil {
				t.Fatalf("ParseMnemonic returned both a mnemonic and %v", err)
			}
			if !errors.Is(err, ErrInvalidMnemonic) {
				t.Fatalf("error %v does not match ErrInvalidMnemonic", err)
			}
			var me *MnemonicError
			if !errors.As(err, &me) {
				t.Fatalf("error %T is not a *MnemonicError", err)
			}
			if errors.Is(err, ErrUnknownWord) != (me.Index >= 0) {
				t.Fatalf("Index %d inconsistent with %v", me.Index, err)
			}
			return
		}
		if len(phrase) > MaxMnemonicLength {
			t.Fatalf("accepted a %d-byte phrase", len(phrase))
		}
		canonical := m.Phrase()
		if want := bytes.Join(bytes.Fields(phrase), []byte(" ")); !bytes.Equal(canonical, want) {
			t.Fatalf("Phrase() = %q, want %q", canonical, want)
		}
		if !validWordCount(m.Words()) || m.Words() != len(bytes.Fields(canonical)) {
			t.Fatalf("Words() = %d for %q", m.Words(), canonical)
		}
		again, err := ParseMnemonic(canonical)
		if err != nil {
			t.Fatalf("re-parsing Phrase() %q: %v", canonical, err)
		}
		if !bytes.Equal(again.Phrase(), canonical) || again.Words() != m.Words() {
			t.Fatalf("re-parsed phrase %q differs from %q", again.Phrase(), canonical)
		}
		fromEntropy, err := MnemonicFromEntropy(entropyOf(t, canonical))
		if err != nil {
			t.Fatalf("MnemonicFromEntropy: %v", err)
		}
		if !bytes.Equal(fromEntropy.Phrase(), canonical) {
			t.Fatalf("MnemonicFromEntropy(entropy of %q) = %q", canonical, fromEntropy.Phrase())
		}
	})
}
