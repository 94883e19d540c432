package vault

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// slip10Seed1 is the seed of SLIP-0010 test vector 1 (vault.md §9.2).
const slip10Seed1 = "000102030405060708090a0b0c0d0e0f"

// slip10Vector is one depth of SLIP-0010 test vector 1 for ed25519; pub carries the
// leading 00 byte of the published vector.
type slip10Vector struct {
	path, canonical, cc, priv, pub string
}

var slip10Vector1 = []slip10Vector{
	{"m", "m",
		"90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb",
		"2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7",
		"00a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed"},
	{"m/0H", "m/0'",
		"8b59aa11380b624e81507a27fedda59fea6d0b779a778918a2fd3590e16e9c69",
		"68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3",
		"008c8a13df77a28f3445213a0f432fde644acaa215fc72dcdf300d5efaa85d350c"},
	{"m/0H/1H", "m/0'/1'",
		"a320425f77d1b5c2505a6b1b27382b37368ee640e3557c315416801243552f14",
		"b1d0bad404bf35da785a64ca1ac54b2617211d2777696fbffaf208f746ae84f2",
		"001932a5270f335bed617d5b935c80aedb1a35bd9fc1e31acafd5372c30f5c1187"},
	{"m/0H/1H/2H", "m/0'/1'/2'",
		"2e69929e00b5ab250f49c3fb1c12f252de4fed2c1db88387094a0f8c4c9ccd6c",
		"92a5b23c0b8a99e37d07df3fb9966917f5d06e02ddbd909c7e184371463e9fc9",
		"00ae98736566d30ed0e9d2f4486a64bc95740d89c7db33f52121f8ea8f76ff0fc1"},
	{"m/0H/1H/2H/2H", "m/0'/1'/2'/2'",
		"8f6d87f93d750e0efccda017d662a1b31a266e4a6f5993b15f5c1f07f74dd5cc",
		"30d1dc7e5fc04c31219ab25a27ae00b50f6fd66622f6e9c913253d6511d1e662",
		"008abae2d66361c879b900d204ad2cc4984fa2aa344dd7ddc46007329ac76c429c"},
	{"m/0H/1H/2H/2H/1000000000H", "m/0'/1'/2'/2'/1000000000'",
		"68789923a0cac2cd5a29172a475fe9e0fb14cd6adb5ad98a3fa70333e7afa230",
		"8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793",
		"003c24da049451555d51a7014a37337aa4e12d41e485abccfa46b47dfb2af54b7a"},
}

// mustSeed1 returns the SLIP-0010 vector 1 seed.
func mustSeed1(t testing.TB) *Seed {
	t.Helper()
	s, err := NewSeed(mustHex(t, slip10Seed1))
	if err != nil {
		t.Fatalf("NewSeed: %v", err)
	}
	return s
}

// mustDerive derives path from seed or fails the test.
func mustDerive(t testing.TB, seed *Seed, path string) *ExtendedKey {
	t.Helper()
	k, err := DeriveEd25519(seed, path)
	if err != nil {
		t.Fatalf("DeriveEd25519(%q): %v", path, err)
	}
	return k
}

// wantPathError checks that err matches ErrInvalidPath, is a *PathError, and matches
// ErrNotHardened exactly when notHardened is set.
func wantPathError(t *testing.T, err error, notHardened bool) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want a path error")
	}
	if !errors.Is(err, ErrInvalidPath) {
		t.Errorf("errors.Is(%v, ErrInvalidPath) = false", err)
	}
	if got := errors.Is(err, ErrNotHardened); got != notHardened {
		t.Errorf("errors.Is(%v, ErrNotHardened) = %v, want %v", err, got, notHardened)
	}
	var pe *PathError
	if !errors.As(err, &pe) {
		t.Errorf("error %T is not a *PathError", err)
	}
}

func TestDeriveEd25519SLIP10Vector1(t *testing.T) {
	t.Parallel()
	seed := mustSeed1(t)
	for _, v := range slip10Vector1 {
		t.Run(v.path, func(t *testing.T) {
			t.Parallel()
			k := mustDerive(t, seed, v.path)
			if got := hex.EncodeToString(k.ChainCode()); got != v.cc {
				t.Errorf("chain code = %s, want %s", got, v.cc)
			}
			if got := hex.EncodeToString(k.Key()); got != v.priv {
				t.Errorf("private key = %s, want %s", got, v.priv)
			}
			wantPub, ok := strings.CutPrefix(v.pub, "00")
			if !ok {
				t.Fatalf("test bug: vector public key %s lacks the 00 prefix", v.pub)
			}
			if got := hex.EncodeToString(k.PublicKey()); got != wantPub {
				t.Errorf("public key = %s, want %s", got, wantPub)
			}
			fromSeed := ed25519.NewKeyFromSeed(mustHex(t, v.priv))
			if got := hex.EncodeToString(fromSeed.Public().(ed25519.PublicKey)); got != wantPub {
				t.Errorf("ed25519.NewKeyFromSeed(priv).Public() = %s, want %s", got, wantPub)
			}
			if !bytes.Equal(k.PrivateKey(), fromSeed) {
				t.Errorf("PrivateKey() differs from ed25519.NewKeyFromSeed(priv)")
			}
			if got := k.Path().String(); got != v.canonical {
				t.Errorf("Path() = %s, want %s", got, v.canonical)
			}
			msg := []byte("alknet")
			if !ed25519.Verify(k.PublicKey(), msg, ed25519.Sign(k.PrivateKey(), msg)) {
				t.Errorf("signature with the derived key does not verify")
			}
		})
	}
}

func TestDeriveEd25519Deterministic(t *testing.T) {
	t.Parallel()
	seed := mustSeed1(t)
	seen := map[string]string{}
	for _, v := range slip10Vector1 {
		a := mustDerive(t, seed, v.path)
		b := mustDerive(t, seed, v.canonical)
		if !bytes.Equal(a.Key(), b.Key()) || !bytes.Equal(a.ChainCode(), b.ChainCode()) {
			t.Errorf("%s: two derivations differ", v.path)
		}
		key := hex.EncodeToString(a.Key())
		if other, dup := seen[key]; dup {
			t.Errorf("%s and %s give the same key", v.path, other)
		}
		seen[key] = v.path
	}
	// The suffix spellings are the same index.
	want := mustDerive(t, seed, "m/0'/1'").Key()
	for _, p := range []string{"m/0h/1h", "m/0H/1H", "m/0'/1h", "m/00'/01H"} {
		if got := mustDerive(t, seed, p).Key(); !bytes.Equal(got, want) {
			t.Errorf("DeriveEd25519(%q) differs from m/0'/1'", p)
		}
	}
	// Another seed gives other keys.
	other, err := NewSeed(bytes.Repeat([]byte{1}, 16))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(mustDerive(t, other, "m/0'").Key(), mustDerive(t, seed, "m/0'").Key()) {
		t.Errorf("different seeds give the same key")
	}
}

func TestDeriveEd25519RejectsUnhardened(t *testing.T) {
	t.Parallel()
	seed := mustSeed1(t)
	for _, p := range []string{"m/0", "m/0'/1", "m/44'/60'/0'/0/0", PathEthereum, "m/2147483647"} {
		k, err := DeriveEd25519(seed, p)
		if k != nil {
			t.Errorf("DeriveEd25519(%q) returned a key", p)
		}
		wantPathError(t, err, true)
	}
}

func TestDeriveEd25519RejectsInvalidPath(t *testing.T) {
	t.Parallel()
	seed := mustSeed1(t)
	for _, p := range invalidPaths {
		k, err := DeriveEd25519(seed, p)
		if k != nil {
			t.Errorf("DeriveEd25519(%q) returned a key", p)
		}
		wantPathError(t, err, false)
	}
}

func TestDeriveEd25519DestroyedSeed(t *testing.T) {
	t.Parallel()
	seed := mustSeed1(t)
	seed.Destroy()
	if _, err := DeriveEd25519(seed, "m/0'"); !errors.Is(err, ErrDestroyed) {
		t.Errorf("derive from a destroyed seed: %v, want ErrDestroyed", err)
	}
	if _, err := DeriveEd25519(nil, "m/0'"); !errors.Is(err, ErrDestroyed) {
		t.Errorf("derive from a nil seed: %v, want ErrDestroyed", err)
	}
}

func TestExtendedKeyAccessorsReturnCopies(t *testing.T) {
	t.Parallel()
	k := mustDerive(t, mustSeed1(t), "m/0'")
	clear(k.Key())
	clear(k.ChainCode())
	clear(k.PrivateKey())
	p := k.Path()
	p[0] = 7
	if got := hex.EncodeToString(k.Key()); got != slip10Vector1[1].priv {
		t.Errorf("Key() after wiping returned copies = %s", got)
	}
	if got := hex.EncodeToString(k.ChainCode()); got != slip10Vector1[1].cc {
		t.Errorf("ChainCode() after wiping returned copies = %s", got)
	}
	if got := k.Path().String(); got != "m/0'" {
		t.Errorf("Path() after modifying a returned copy = %s", got)
	}
}

func TestExtendedKeyDestroy(t *testing.T) {
	t.Parallel()
	k := mustDerive(t, mustSeed1(t), "m/0'")
	k.Destroy()
	if k.Key() != nil || k.ChainCode() != nil || k.PrivateKey() != nil || k.PublicKey() != nil {
		t.Errorf("accessors after Destroy return key material")
	}
	k.Destroy() // idempotent
	var nilKey *ExtendedKey
	nilKey.Destroy()
	if nilKey.Key() != nil || nilKey.PublicKey() != nil {
		t.Errorf("nil ExtendedKey returns key material")
	}
}

func TestParsePathAccepts(t *testing.T) {
	t.Parallel()
	const h = HardenedOffset
	tests := []struct {
		in        string
		want      Path
		canonical string
	}{
		{"m", Path{}, "m"},
		{"m/0'", Path{h}, "m/0'"},
		{"m/0h", Path{h}, "m/0'"},
		{"m/0H", Path{h}, "m/0'"},
		{"m/0", Path{0}, "m/0"},
		{"m/1/2", Path{1, 2}, "m/1/2"},
		{PathIdentity, Path{h + 74, h, h, h}, PathIdentity},
		{"m/74h/0h/0h/0h", Path{h + 74, h, h, h}, PathIdentity},
		{PathSSHHost, Path{h + 74, h, h + 1, h}, PathSSHHost},
		{PathEncryptionV2, Path{h + 74, h + 2, h, h}, PathEncryptionV2},
		{PathEthereum, Path{h + 44, h + 60, h, 0, 0}, PathEthereum},
		{"m/2147483647'", Path{math.MaxUint32}, "m/2147483647'"},
		{"m/2147483647", Path{h - 1}, "m/2147483647"},
		{"m/007'", Path{h + 7}, "m/7'"},
		{"m/0000000000000000000001h", Path{h + 1}, "m/1'"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePath(tc.in)
			if err != nil {
				t.Fatalf("ParsePath(%q): %v", tc.in, err)
			}
			if got == nil || !slices.Equal(got, tc.want) {
				t.Errorf("ParsePath(%q) = %#v, want %#v", tc.in, got, tc.want)
			}
			if s := got.String(); s != tc.canonical {
				t.Errorf("String() = %q, want %q", s, tc.canonical)
			}
			if again, err := ParsePath(got.String()); err != nil || !slices.Equal(again, got) {
				t.Errorf("re-parse of %q = %v, %v", got.String(), again, err)
			}
		})
	}
}

// invalidPaths are malformed paths: each must give ErrInvalidPath and not ErrNotHardened.
var invalidPaths = []string{
	"",
	"74'/0'",
	"/0'",
	"mfoo/0'",
	"m0'",
	"M/0'",
	"n/0'",
	" m/0'",
	"m/0' ",
	"m/",
	"m//0'",
	"m/0'/",
	"m/0'//1'",
	"m/x'",
	"m/'",
	"m/h",
	"m/H",
	"m/-1'",
	"m/+1'",
	"m/-0",
	"m/2147483648'",
	"m/2147483648",
	"m/4294967295'",
	"m/4294967296",
	"m/99999999999999999999999'",
	"m/0h'",
	"m/0''",
	"m/0hh",
	"m/0'h",
	"m/1.5'",
	"m/0x1'",
	"m/1e3'",
	"m/ 1'",
	"m/1 '",
	"m\\0'",
	"m/\u0663'",
	"m/\uff11'",
	"m/0\x00'",
	"m/0p",
}

func TestParsePathRejects(t *testing.T) {
	t.Parallel()
	for _, in := range invalidPaths {
		t.Run(strconv.Quote(in), func(t *testing.T) {
			t.Parallel()
			p, err := ParsePath(in)
			if p != nil {
				t.Errorf("ParsePath(%q) = %v, want nil", in, p)
			}
			wantPathError(t, err, false)
		})
	}
}

func TestParsePathLimits(t *testing.T) {
	t.Parallel()
	// Length: "m/" followed by zeros is one index 0.
	atLen := "m/" + strings.Repeat("0", MaxPathLength-2)
	if len(atLen) != MaxPathLength {
		t.Fatalf("test bug: %d bytes", len(atLen))
	}
	if p, err := ParsePath(atLen); err != nil || !slices.Equal(p, Path{0}) {
		t.Errorf("ParsePath(%d bytes, the limit) = %v, %v", len(atLen), p, err)
	}
	_, err := ParsePath(atLen + "0")
	wantPathError(t, err, false)
	var pe *PathError
	if errors.As(err, &pe) && len(pe.Path) > 64 {
		t.Errorf("PathError.Path of an over-long path is %d bytes, want it truncated", len(pe.Path))
	}
	_, err = ParsePath(strings.Repeat("m/0'", 1<<14))
	wantPathError(t, err, false)

	// Depth.
	atDepth := "m" + strings.Repeat("/1'", MaxPathDepth)
	p, err := ParsePath(atDepth)
	if err != nil || len(p) != MaxPathDepth {
		t.Errorf("ParsePath(depth %d, the limit) = %v, %v", MaxPathDepth, p, err)
	}
	_, err = ParsePath(atDepth + "/1'")
	wantPathError(t, err, false)
	seed := mustSeed1(t)
	if _, err := DeriveEd25519(seed, atDepth); err != nil {
		t.Errorf("DeriveEd25519 at the depth limit: %v", err)
	}
	_, err = DeriveEd25519(seed, atDepth+"/1'")
	wantPathError(t, err, false)
}

func TestPathHardened(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p    Path
		want bool
	}{
		{Path{}, true},
		{Path{HardenedOffset}, true},
		{Path{HardenedOffset, 0}, false},
		{Path{HardenedOffset - 1}, false},
		{Path{math.MaxUint32}, true},
	} {
		if got := tc.p.Hardened(); got != tc.want {
			t.Errorf("%v.Hardened() = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestFixedPaths(t *testing.T) {
	t.Parallel()
	if DevicePath(0) != PathIdentity {
		t.Errorf("DevicePath(0) = %q, want PathIdentity %q", DevicePath(0), PathIdentity)
	}
	if got := DevicePath(5); got != "m/74'/0'/0'/5'" {
		t.Errorf("DevicePath(5) = %q", got)
	}
	if got := DevicePath(HardenedOffset - 1); got != "m/74'/0'/0'/2147483647'" {
		t.Errorf("DevicePath(2^31-1) = %q", got)
	}
	_, err := ParsePath(DevicePath(HardenedOffset))
	wantPathError(t, err, false)
	if CurrentKeyVersion != 2 {
		t.Errorf("CurrentKeyVersion = %d, want 2", CurrentKeyVersion)
	}
	if p, err := EncryptionPath(CurrentKeyVersion); err != nil || p != PathEncryptionV2 {
		t.Errorf("EncryptionPath(CurrentKeyVersion) = %q, %v, want %q", p, err, PathEncryptionV2)
	}
	for _, p := range []string{PathIdentity, PathSSHHost, PathEncryptionV2} {
		parsed, err := ParsePath(p)
		if err != nil || !parsed.Hardened() || parsed.String() != p {
			t.Errorf("fixed path %q: %v, %v", p, parsed, err)
		}
	}
}

func TestEncryptionPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v    uint32
		want string
	}{
		{2, "m/74'/2'/0'/0'"},
		{3, "m/74'/2'/0'/1'"},
		{4, "m/74'/2'/0'/2'"},
		{1000, "m/74'/2'/0'/998'"},
		{maxKeyVersion, "m/74'/2'/0'/2147483647'"},
	}
	for _, tc := range tests {
		got, err := EncryptionPath(tc.v)
		if err != nil || got != tc.want {
			t.Errorf("EncryptionPath(%d) = %q, %v, want %q", tc.v, got, err, tc.want)
			continue
		}
		if p, err := ParsePath(got); err != nil || !p.Hardened() {
			t.Errorf("EncryptionPath(%d) = %q does not parse as a hardened path: %v", tc.v, got, err)
		}
	}
	if maxKeyVersion != 2+HardenedOffset-1 {
		t.Errorf("maxKeyVersion = %d", maxKeyVersion)
	}
	for _, v := range []uint32{0, 1, maxKeyVersion + 1, math.MaxUint32} {
		got, err := EncryptionPath(v)
		if !errors.Is(err, ErrUnsupportedKeyVersion) {
			t.Errorf("EncryptionPath(%d) = %q, %v, want ErrUnsupportedKeyVersion", v, got, err)
		}
		if got != "" {
			t.Errorf("EncryptionPath(%d) returned the path %q with an error", v, got)
		}
	}
}

// pathGrammar is the path grammar of ParsePath, written independently.
var pathGrammar = regexp.MustCompile(`^m(/[0-9]+['hH]?)*$`)

// referenceParsePath is an independent implementation of the ParsePath grammar.
func referenceParsePath(s string) (Path, bool) {
	if len(s) > MaxPathLength || !pathGrammar.MatchString(s) {
		return nil, false
	}
	segs := strings.Split(s, "/")[1:]
	if len(segs) > MaxPathDepth {
		return nil, false
	}
	p := Path{}
	for _, seg := range segs {
		digits := strings.TrimRight(seg, "'hH")
		v, err := strconv.ParseUint(digits, 10, 64)
		if err != nil || v >= 1<<31 {
			return nil, false
		}
		if digits != seg {
			v += 1 << 31
		}
		p = append(p, uint32(v))
	}
	return p, true
}

func FuzzParsePath(f *testing.F) {
	for _, v := range slip10Vector1 {
		f.Add(v.path)
		f.Add(v.canonical)
	}
	for _, s := range []string{PathIdentity, PathSSHHost, PathEncryptionV2, PathEthereum, DevicePath(7),
		"m/0h", "m/0H", "m/2147483647'", "m/" + strings.Repeat("0", MaxPathLength-2),
		"m" + strings.Repeat("/1'", MaxPathDepth), "m" + strings.Repeat("/1'", MaxPathDepth+1)} {
		f.Add(s)
	}
	for _, s := range invalidPaths {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		want, ok := referenceParsePath(s)
		if err != nil {
			if p != nil {
				t.Fatalf("ParsePath(%q) returned %v with error %v", s, p, err)
			}
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("ParsePath(%q): error %v does not match ErrInvalidPath", s, err)
			}
			if ok {
				t.Fatalf("ParsePath(%q) rejected a path the grammar accepts (%v): %v", s, want, err)
			}
			return
		}
		if !ok {
			t.Fatalf("ParsePath(%q) = %v, but the string does not satisfy the grammar", s, p)
		}
		if !slices.Equal(p, want) {
			t.Fatalf("ParsePath(%q) = %v, want %v", s, p, want)
		}
		canonical := p.String()
		again, err := ParsePath(canonical)
		if err != nil {
			t.Fatalf("re-parse of %q (from %q): %v", canonical, s, err)
		}
		if !slices.Equal(again, p) {
			t.Fatalf("re-parse of %q = %v, want %v", canonical, again, p)
		}
		if again.String() != canonical {
			t.Fatalf("String() is not stable: %q then %q", canonical, again.String())
		}
	})
}
