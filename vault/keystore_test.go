package vault

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const abandonAbout = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"

// identityPubAbandon is the §9.3 public key at PathIdentity for abandonAbout with an
// empty passphrase.
const identityPubAbandon = "e78c2766a792f09bfccb51493968ac322283e8d021a30063784d806929762ecc"

// fastLimits allow cheap Argon2 parameters, for tests that run the KDF many times.
var fastLimits = KeystoreLimits{
	Min: KeystoreParams{Time: 1, MemoryKiB: 8, Threads: 1},
	Max: MaxKeystoreParams(),
}

var fastParams = KeystoreParams{Time: 1, MemoryKiB: 8, Threads: 1}

func mustMnemonic(t testing.TB, phrase string) *Mnemonic {
	t.Helper()
	m, err := ParseMnemonic([]byte(phrase))
	if err != nil {
		t.Fatalf("ParseMnemonic: %v", err)
	}
	return m
}

func keystoreIdentityPub(t *testing.T, v *Vault) string {
	t.Helper()
	k, err := v.DeriveEd25519(PathIdentity)
	if err != nil {
		t.Fatalf("DeriveEd25519: %v", err)
	}
	defer k.Destroy()
	return hex.EncodeToString(k.PublicKey())
}

func TestKeystoreWriteReadUnlock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "vault.keystore")
	m := mustMnemonic(t, abandonAbout)
	if err := WriteKeystore(path, m, nil, []byte("correct horse"), MinKeystoreParams()); err != nil {
		t.Fatalf("WriteKeystore: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the keystore (temp file left behind?)", len(entries))
	}

	got, bip39Pass, err := ReadKeystore(path, []byte("correct horse"))
	if err != nil {
		t.Fatalf("ReadKeystore: %v", err)
	}
	if string(got.Phrase()) != abandonAbout || len(bip39Pass) != 0 {
		t.Errorf("ReadKeystore returned a different mnemonic or a BIP39 passphrase %q", bip39Pass)
	}

	v := New()
	if err := v.UnlockKeystore(path, []byte("correct horse")); err != nil {
		t.Fatalf("UnlockKeystore: %v", err)
	}
	if got := keystoreIdentityPub(t, v); got != identityPubAbandon {
		t.Errorf("identity public key = %s, want %s", got, identityPubAbandon)
	}
	if err := v.UnlockKeystore(path, []byte("correct horse")); !errors.Is(err, ErrAlreadyUnlocked) {
		t.Errorf("second UnlockKeystore = %v, want ErrAlreadyUnlocked", err)
	}
}

func TestKeystoreDefaultParamsRoundTrip(t *testing.T) {
	t.Parallel()
	m := mustMnemonic(t, abandonAbout)
	data, err := SealKeystore(m, []byte("TREZOR"), []byte("pw"), DefaultKeystoreParams())
	if err != nil {
		t.Fatalf("SealKeystore: %v", err)
	}
	off := len(keystoreMagic) + 2
	p := KeystoreParams{binary.BigEndian.Uint32(data[off:]), binary.BigEndian.Uint32(data[off+4:]), data[off+8]}
	if p != (KeystoreParams{Time: 3, MemoryKiB: 64 << 10, Threads: 4}) {
		t.Errorf("header params = %+v, want t=3 m=64MiB p=4", p)
	}
	got, bip39Pass, err := OpenKeystore(data, []byte("pw"), DefaultKeystoreLimits())
	if err != nil {
		t.Fatalf("OpenKeystore: %v", err)
	}
	if string(got.Phrase()) != abandonAbout || string(bip39Pass) != "TREZOR" {
		t.Error("round trip changed the mnemonic or the BIP39 passphrase")
	}
}

func TestKeystoreBIP39PassphraseChangesIdentity(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ks")
	if err := WriteKeystore(path, mustMnemonic(t, abandonAbout), []byte("TREZOR"), []byte("pw"), MinKeystoreParams()); err != nil {
		t.Fatal(err)
	}
	v := New()
	if err := v.UnlockKeystore(path, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	if keystoreIdentityPub(t, v) == identityPubAbandon {
		t.Error("the stored BIP39 passphrase was not applied")
	}
}

func TestKeystoreWrongPassphraseLeavesFileUntouched(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "vault.keystore")
	if err := WriteKeystore(path, mustMnemonic(t, abandonAbout), nil, []byte("right"), MinKeystoreParams()); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	st1, _ := os.Stat(path)
	_, _, err := ReadKeystore(path, []byte("wrong"))
	if !errors.Is(err, ErrKeystorePassphrase) {
		t.Fatalf("ReadKeystore with a wrong passphrase = %v, want ErrKeystorePassphrase", err)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("error %q should name the file and the wrong passphrase", err)
	}
	v := New()
	if err := v.UnlockKeystore(path, []byte("wrong")); !errors.Is(err, ErrKeystorePassphrase) || v.IsUnlocked() {
		t.Errorf("UnlockKeystore with a wrong passphrase = %v (unlocked %v)", err, v.IsUnlocked())
	}
	after, _ := os.ReadFile(path)
	st2, _ := os.Stat(path)
	if !bytes.Equal(before, after) || !st1.ModTime().Equal(st2.ModTime()) || st1.Mode() != st2.Mode() {
		t.Error("opening with a wrong passphrase modified the file")
	}
}

func TestKeystoreRefusesOverwrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "vault.keystore")
	if err := WriteKeystore(path, mustMnemonic(t, abandonAbout), nil, []byte("pw"), MinKeystoreParams()); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	other, _ := NewMnemonic(12)
	err := WriteKeystore(path, other, nil, []byte("pw"), MinKeystoreParams())
	if !errors.Is(err, ErrKeystoreExists) || !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second WriteKeystore = %v, want ErrKeystoreExists and fs.ErrExist", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("the existing keystore was modified")
	}
	// The link step also refuses when the file appears after the first check.
	if err := writeNew(path, []byte("x")); !errors.Is(err, ErrKeystoreExists) {
		t.Errorf("writeNew over an existing file = %v, want ErrKeystoreExists", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries in the directory, want 1 (temporary files must be removed)", len(entries))
	}
}

func TestKeystorePassphraseRules(t *testing.T) {
	t.Parallel()
	m := mustMnemonic(t, abandonAbout)
	if _, err := sealKeystore(m, nil, nil, fastParams, fastLimits); !errors.Is(err, ErrEmptyPassphrase) {
		t.Errorf("empty passphrase: %v, want ErrEmptyPassphrase", err)
	}
	long := bytes.Repeat([]byte("a"), MaxPassphraseLength)
	data, err := sealKeystore(m, long, long, fastParams, fastLimits)
	if err != nil {
		t.Fatalf("passphrases of exactly MaxPassphraseLength: %v", err)
	}
	if _, bp, err := OpenKeystore(data, long, fastLimits); err != nil || !bytes.Equal(bp, long) {
		t.Errorf("OpenKeystore at MaxPassphraseLength: %v", err)
	}
	tooLong := append(long, 'a')
	if _, err := sealKeystore(m, nil, tooLong, fastParams, fastLimits); !errors.Is(err, ErrPassphraseTooLong) {
		t.Error("a passphrase one byte over MaxPassphraseLength was accepted")
	}
	if _, _, err := OpenKeystore(data, tooLong, fastLimits); !errors.Is(err, ErrPassphraseTooLong) {
		t.Errorf("OpenKeystore with an over-long passphrase: %v", err)
	}
	if _, err := sealKeystore(m, tooLong, []byte("pw"), fastParams, fastLimits); !errors.Is(err, ErrPassphraseTooLong) {
		t.Error("a BIP39 passphrase one byte over MaxPassphraseLength was accepted")
	}
	if _, _, err := OpenKeystore(data, nil, fastLimits); !errors.Is(err, ErrEmptyPassphrase) {
		t.Errorf("OpenKeystore with an empty passphrase: %v", err)
	}
}

func TestKeystorePassphraseIsNFKDNormalised(t *testing.T) {
	t.Parallel()
	composed := []byte("caf\u00e9")    // é as one code point
	decomposed := []byte("cafe\u0301") // e + combining acute accent
	data, err := sealKeystore(mustMnemonic(t, abandonAbout), nil, composed, fastParams, fastLimits)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenKeystore(data, decomposed, fastLimits); err != nil {
		t.Errorf("the decomposed form of the passphrase did not open the keystore: %v", err)
	}
}

func TestKeystoreParameterLimits(t *testing.T) {
	t.Parallel()
	m := mustMnemonic(t, abandonAbout)
	lo := MinKeystoreParams()
	for name, p := range map[string]KeystoreParams{
		"time":    {Time: lo.Time - 1, MemoryKiB: lo.MemoryKiB, Threads: lo.Threads},
		"memory":  {Time: lo.Time, MemoryKiB: lo.MemoryKiB - 1, Threads: lo.Threads},
		"threads": {Time: lo.Time, MemoryKiB: lo.MemoryKiB, Threads: lo.Threads - 1},
		"ceiling": {Time: lo.Time, MemoryKiB: MaxKeystoreParams().MemoryKiB + 1, Threads: lo.Threads},
	} {
		if _, err := SealKeystore(m, nil, []byte("pw"), p); !errors.Is(err, ErrKeystoreWeak) {
			t.Errorf("SealKeystore with %s outside the limits: %v, want ErrKeystoreWeak", name, err)
		}
	}

	// A file whose header was weakened below the floor is refused before the KDF runs;
	// one at the floor opens.
	data, err := sealKeystore(m, nil, []byte("pw"), lo, DefaultKeystoreLimits())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenKeystore(data, []byte("pw"), DefaultKeystoreLimits()); err != nil {
		t.Fatalf("keystore at the floor: %v", err)
	}
	off := len(keystoreMagic) + 2
	for name, mutate := range map[string]func([]byte){
		"time below floor":      func(b []byte) { binary.BigEndian.PutUint32(b[off:], lo.Time-1) },
		"memory below floor":    func(b []byte) { binary.BigEndian.PutUint32(b[off+4:], lo.MemoryKiB-1) },
		"threads below floor":   func(b []byte) { b[off+8] = 0 },
		"memory above ceiling":  func(b []byte) { binary.BigEndian.PutUint32(b[off+4:], 1<<31) },
		"time above ceiling":    func(b []byte) { binary.BigEndian.PutUint32(b[off:], MaxKeystoreParams().Time+1) },
		"threads above ceiling": func(b []byte) { b[off+8] = MaxKeystoreParams().Threads + 1 },
	} {
		b := bytes.Clone(data)
		mutate(b)
		if _, _, err := OpenKeystore(b, []byte("pw"), DefaultKeystoreLimits()); !errors.Is(err, ErrKeystoreWeak) {
			t.Errorf("%s: %v, want ErrKeystoreWeak", name, err)
		}
	}
}

func TestKeystoreCorruption(t *testing.T) {
	t.Parallel()
	data, err := sealKeystore(mustMnemonic(t, abandonAbout), nil, []byte("pw"), fastParams, fastLimits)
	if err != nil {
		t.Fatal(err)
	}
	off := len(keystoreMagic) + 2
	flip := func(i int) []byte { b := bytes.Clone(data); b[i] ^= 1; return b }
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrKeystoreFormat},
		{"magic", flip(0), ErrKeystoreFormat},
		{"version", flip(len(keystoreMagic)), ErrKeystoreVersion},
		{"kdf", flip(len(keystoreMagic) + 1), ErrKeystoreVersion},
		{"time (authenticated)", func() []byte { b := bytes.Clone(data); b[off+3] = 2; return b }(), ErrKeystorePassphrase},
		{"salt", flip(off + 9), ErrKeystorePassphrase},
		{"nonce", flip(off + 9 + keystoreSaltSize), ErrKeystorePassphrase},
		{"ciphertext", flip(keystoreHeaderSize), ErrKeystorePassphrase},
		{"tag", flip(len(data) - 1), ErrKeystorePassphrase},
		{"truncated header", data[:keystoreHeaderSize-1], ErrKeystoreFormat},
		{"header only", data[:keystoreHeaderSize], ErrKeystoreFormat},
		{"truncated tag", data[:len(data)-1], ErrKeystorePassphrase},
		{"appended byte", append(bytes.Clone(data), 0), ErrKeystorePassphrase},
		{"magic only", []byte(keystoreMagic), ErrKeystoreFormat},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := OpenKeystore(tc.data, []byte("pw"), fastLimits)
			if !errors.Is(err, tc.want) {
				t.Errorf("OpenKeystore = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestKeystoreSizeLimit(t *testing.T) {
	t.Parallel()
	big := make([]byte, MaxKeystoreSize+1)
	copy(big, keystoreMagic)
	big[len(keystoreMagic)] = keystoreVersion
	big[len(keystoreMagic)+1] = keystoreKDFArgon2
	_, _, err := OpenKeystore(big, []byte("pw"), fastLimits)
	if !errors.Is(err, ErrKeystoreFormat) || !strings.Contains(err.Error(), "more than") {
		t.Errorf("a file one byte over MaxKeystoreSize: %v, want the size error", err)
	}
	// At exactly the limit the file is parsed (and fails authentication, not the size
	// check). Its header carries the fast parameters.
	atLimit := big[:MaxKeystoreSize]
	off := len(keystoreMagic) + 2
	binary.BigEndian.PutUint32(atLimit[off:], fastParams.Time)
	binary.BigEndian.PutUint32(atLimit[off+4:], fastParams.MemoryKiB)
	atLimit[off+8] = fastParams.Threads
	if _, _, err := OpenKeystore(atLimit, []byte("pw"), fastLimits); !errors.Is(err, ErrKeystorePassphrase) {
		t.Errorf("a file of exactly MaxKeystoreSize: %v, want ErrKeystorePassphrase", err)
	}

	// ReadKeystore reads at most MaxKeystoreSize+1 bytes of a huge file.
	path := filepath.Join(t.TempDir(), "huge")
	if err := os.WriteFile(path, make([]byte, 4*MaxKeystoreSize), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadKeystore(path, []byte("pw")); !errors.Is(err, ErrKeystoreFormat) {
		t.Errorf("ReadKeystore of a huge file: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	_, _, err = ReadKeystore(missing, []byte("pw"))
	if !errors.Is(err, fs.ErrNotExist) || strings.Count(err.Error(), missing) != 1 {
		t.Errorf("ReadKeystore of a missing file: %v, want fs.ErrNotExist naming the file once", err)
	}
}

func TestKeystoreBadPayload(t *testing.T) {
	t.Parallel()
	field := func(b []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...) }
	bad12 := strings.Repeat("abandon ", 11) + "abandon" // checksum mismatch
	cases := map[string][]byte{
		"empty":            nil,
		"one byte":         {0},
		"phrase too short": {0, 200, 'a'},
		"no passphrase":    field([]byte(abandonAbout)),
		"trailing byte":    append(append(field([]byte(abandonAbout)), field(nil)...), 0),
		"invalid mnemonic": append(field([]byte(bad12)), field(nil)...),
		"over-long phrase": append(field(bytes.Repeat([]byte(" "), MaxMnemonicLength+1)), field(nil)...),
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			data, err := sealKeystorePayload(payload, []byte("pw"), fastParams)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = OpenKeystore(data, []byte("pw"), fastLimits)
			if !errors.Is(err, ErrKeystoreFormat) {
				t.Errorf("OpenKeystore = %v, want ErrKeystoreFormat", err)
			}
		})
	}
	data, _ := sealKeystorePayload(append(field([]byte(bad12)), field(nil)...), []byte("pw"), fastParams)
	if _, _, err := OpenKeystore(data, []byte("pw"), fastLimits); !errors.Is(err, ErrChecksum) {
		t.Errorf("a stored mnemonic with a bad checksum: %v, want it to wrap ErrChecksum", err)
	}
}

// FuzzOpenKeystore feeds arbitrary files to OpenKeystore (with cheap KDF limits so that
// inputs reaching the KDF stay fast): it must never panic, and whatever it accepts must
// be a valid mnemonic.
func FuzzOpenKeystore(f *testing.F) {
	good, err := sealKeystore(mustMnemonic(f, abandonAbout), []byte("TREZOR"), []byte("pw"), fastParams, fastLimits)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, []byte("pw"))
	f.Add(good, []byte("wrong"))
	f.Add(good[:keystoreHeaderSize], []byte("pw"))
	f.Add([]byte(keystoreMagic), []byte("pw"))
	f.Add([]byte{}, []byte{})
	f.Add(append(bytes.Clone(good), 0), []byte("pw"))
	lim := KeystoreLimits{Min: KeystoreParams{Time: 1, MemoryKiB: 8, Threads: 1}, Max: KeystoreParams{Time: 2, MemoryKiB: 64, Threads: 2}}
	f.Fuzz(func(t *testing.T, data, pass []byte) {
		m, bp, err := OpenKeystore(data, pass, lim)
		if err != nil {
			if m != nil || bp != nil {
				t.Fatal("an error came with results")
			}
			return
		}
		if _, err := ParseMnemonic(m.Phrase()); err != nil {
			t.Fatalf("accepted keystore holds an invalid mnemonic: %v", err)
		}
		if len(bp) > MaxPassphraseLength {
			t.Fatal("accepted keystore holds an over-long BIP39 passphrase")
		}
	})
}
