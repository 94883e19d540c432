package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	bip39 "github.com/cosmos/go-bip39"
	"golang.org/x/crypto/argon2"

	"github.com/alknet/alknet/vault"
)

// Metric keys of the vault benchmark, for -only and profile labels.
const (
	metricSeed     = "seed"
	metricMnemonic = "mnemonic"
	metricSeal     = "seal-open"
	metricKeystore = "keystore"
)

// vaultMetrics lists the metric keys in table order.
var vaultMetrics = []string{metricSeed, metricMnemonic, metricSeal, metricKeystore}

// The fixed inputs: a 24-word Trezor BIP39 test vector, and the seed it gives with the
// passphrase "TREZOR".
const (
	benchPhrase     = "void come effort suffer camp survey warrior heavy shoot primary clutch crush open amazing screen patrol group space point ten exist slush involve unfold"
	benchBIP39Pass  = "TREZOR"
	benchSeedHex    = "01f5bced59dec48e362f2c45b5de68b9fd6c92c6634f44d6d40aab69056506f0e35524a518034ddc1192e1dacd32c1ed3eaa3c3b131c88ed8e7e54c49a5d0998"
	benchKeystorePW = "correct horse battery staple"
	// sealSize is the plaintext size of the seal + open row.
	sealSize = 1 << 10
)

// The keystore file layout the baseline arm reads (vault/keystore.go, version 1):
// magic(8) version(1) kdf(1) time(4) memory(4) threads(1) salt(16) nonce(12), then the
// AES-GCM ciphertext with the 47-byte header as associated data.
const (
	keystoreSaltOff    = 19
	keystoreNonceOff   = keystoreSaltOff + 16
	keystoreHeaderSize = keystoreNonceOff + 12
)

type vaultOptions struct {
	runOptions
	unlocks int
}

func runVault(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := vaultOptions{}
	fs := newFlagSet("vault", "Compares the alknet vault with go-bip39 and hand-written stdlib/x/crypto code:\n"+
		"mnemonic to seed, mnemonic generation, sealing secrets, keystore unlock.", stderr)
	o.sharedFlags(fs, orderPair, vaultMetrics, nil, "arm, metric")
	fs.DurationVar(&o.duration, "duration", time.Second, "length of one round per arm of the seed, mnemonic and seal-open metrics")
	fs.IntVar(&o.unlocks, "unlocks", 10, "keystore unlocks per round per arm, after 2 untimed ones (each about 0.1 s)")
	help, err := parseFlags(fs, args, stderr, "smoke run: 1 round, 200ms, 1 unlock (flags given explicitly win)", map[string]func(){
		"rounds":   func() { o.rounds = 1 },
		"duration": func() { o.duration = 200 * time.Millisecond },
		"unlocks":  func() { o.unlocks = 1 },
	})
	if help || err != nil {
		return err
	}
	if err := o.validate(atLeast1("-unlocks", o.unlocks)); err != nil {
		return err
	}
	selected, err := selectMetrics(o.only, vaultMetrics)
	if err != nil {
		return err
	}

	loadBefore := loadAverage()
	f, err := newVaultFixture(selected[metricKeystore])
	if err != nil {
		return err
	}
	defer f.close()
	if err := f.check(selected); err != nil {
		return err
	}
	active := selectedOf(f.metrics(o), selected)

	// Between arms: collect the garbage of the last one (the keystore arms leave 64 MiB
	// per unlock), so it is not charged to the next.
	settle := func(ctx context.Context) error {
		runtime.GC()
		return ctx.Err()
	}
	warm := o
	warm.duration = min(o.duration, 200*time.Millisecond)
	warm.unlocks = 1
	if err := warmUp(ctx, f.metrics(warm), selected, settle); err != nil {
		return err
	}
	other, err := runRounds(ctx, o.rounds, active, settle, o.cpuprofile, stderr)
	if err != nil {
		return err
	}
	if err := writeAllocProfile(o.memprofile); err != nil {
		return err
	}
	machine := machineInfo(time.Now(),
		library{"cosmos/go-bip39", "github.com/cosmos/go-bip39"},
		library{"golang.org/x/crypto", "golang.org/x/crypto"})
	reportHeader(stdout, "vault", machine, loadBefore, other, fmt.Sprintf(
		"a warm-up pass, then %d rounds (arms interleaved alknet, baseline), %s per round and arm for seed, mnemonic and seal-open, %d unlocks per round and arm for keystore (after %d untimed ones); one goroutine per arm (Argon2id runs its 4 lanes in parallel), GOMAXPROCS=%d; medians, ratio = alknet/baseline (higher is better)",
		o.rounds, o.duration, o.unlocks, primeUnlocks, runtime.GOMAXPROCS(0)))
	reportTables(stdout, active, "whole process")
	_, err = io.WriteString(stdout, judgeGoals(vaultGoalLine(active), other))
	return err
}

// vaultGoalRatio is issue 20's goal for the vault: seal+open at least this fraction of
// the stdlib baseline's rate.
const vaultGoalRatio = 0.95

// vaultGoalLine states whether seal+open met vaultGoalRatio ("" when it did not run).
func vaultGoalLine(ms []*metric) string {
	for _, m := range ms {
		if m.key != metricSeal || m.baseline.median() == 0 {
			continue
		}
		r := m.alknet.median() / m.baseline.median()
		verdict := "not met"
		if r >= vaultGoalRatio {
			verdict = "met"
		}
		return fmt.Sprintf("\ngoal: seal + open ≥ %.2f× the stdlib baseline (AES-256-GCM + JSON) — %s (%.2f×)\n", vaultGoalRatio, verdict, r)
	}
	return ""
}

// vaultFixture holds the inputs of both arms, prepared once.
type vaultFixture struct {
	phrase    []byte // benchPhrase, for the vault
	bip39Pass []byte

	// seal-open: an unlocked vault, and the baseline's AES-256-GCM under the same key
	// (the vault's key of CurrentKeyVersion), so either arm can open the other's blobs.
	v         *vault.Vault
	baseGCM   cipher.AEAD
	plaintext []byte

	// keystore: one file sealed with the default parameters, and its passphrase.
	keystore   []byte
	keystorePW []byte
}

func newVaultFixture(withKeystore bool) (*vaultFixture, error) {
	f := &vaultFixture{
		phrase:     []byte(benchPhrase),
		bip39Pass:  []byte(benchBIP39Pass),
		plaintext:  make([]byte, sealSize),
		keystorePW: []byte(benchKeystorePW),
		v:          vault.New(),
	}
	for i := range f.plaintext {
		f.plaintext[i] = byte('a' + i%26) // UTF-8, as the format expects
	}
	if err := f.v.Unlock(f.phrase, f.bip39Pass); err != nil {
		return nil, err
	}
	key, err := f.v.EncryptionKeyForVersion(vault.CurrentKeyVersion)
	if err != nil {
		f.close()
		return nil, err
	}
	raw := key.PrivateKey()
	key.Destroy()
	f.baseGCM, err = newAESGCM(raw)
	clear(raw)
	if err != nil {
		f.close()
		return nil, err
	}
	if withKeystore {
		m, err := vault.ParseMnemonic(f.phrase)
		if err != nil {
			f.close()
			return nil, err
		}
		f.keystore, err = vault.SealKeystore(m, f.bip39Pass, f.keystorePW, vault.DefaultKeystoreParams())
		m.Destroy()
		if err != nil {
			f.close()
			return nil, err
		}
	}
	return f, nil
}

func (f *vaultFixture) close() { f.v.Lock() }

// check runs each selected metric's arms once, untimed, and fails unless they agree:
// the same seed (the published one), valid mnemonics, blobs each arm can open from the
// other, and the stored mnemonic out of the keystore.
func (f *vaultFixture) check(selected map[string]bool) error {
	if selected[metricSeed] {
		m, err := vault.ParseMnemonic(f.phrase)
		if err != nil {
			return fmt.Errorf("check seed: %w", err)
		}
		s, err := m.Seed(f.bip39Pass)
		m.Destroy()
		if err != nil {
			return fmt.Errorf("check seed: %w", err)
		}
		alk := s.Bytes()
		s.Destroy()
		base, err := bip39.NewSeedWithErrorChecking(benchPhrase, benchBIP39Pass)
		if err != nil {
			return fmt.Errorf("check seed: go-bip39: %w", err)
		}
		if !bytes.Equal(alk, base) {
			return fmt.Errorf("check seed: the arms disagree: alknet %x, go-bip39 %x", alk, base)
		}
		if got := hex.EncodeToString(alk); got != benchSeedHex {
			return fmt.Errorf("check seed: got %s, want the published %s", got, benchSeedHex)
		}
	}
	if selected[metricMnemonic] {
		if err := f.alknetMnemonic(); err != nil {
			return fmt.Errorf("check mnemonic: alknet: %w", err)
		}
		if err := baselineMnemonic(); err != nil {
			return fmt.Errorf("check mnemonic: go-bip39: %w", err)
		}
	}
	if selected[metricSeal] {
		alk, err := f.alknetSeal()
		if err != nil {
			return fmt.Errorf("check seal-open: alknet: %w", err)
		}
		base, err := f.baselineSeal()
		if err != nil {
			return fmt.Errorf("check seal-open: baseline: %w", err)
		}
		// Cross-check: each arm opens the other's blob, so both write the same format.
		if pt, err := f.baselineOpen(alk); err != nil || !bytes.Equal(pt, f.plaintext) {
			return fmt.Errorf("check seal-open: the baseline cannot open the vault's blob: %v", err)
		}
		ed, err := vault.ParseEncryptedData(base)
		if err != nil {
			return fmt.Errorf("check seal-open: the vault cannot parse the baseline's blob: %w", err)
		}
		if pt, err := f.v.Decrypt(ed); err != nil || !bytes.Equal(pt, f.plaintext) {
			return fmt.Errorf("check seal-open: the vault cannot open the baseline's blob: %v", err)
		}
	}
	if selected[metricKeystore] {
		m, pass, err := vault.OpenKeystore(f.keystore, f.keystorePW, vault.DefaultKeystoreLimits())
		if err != nil {
			return fmt.Errorf("check keystore: alknet: %w", err)
		}
		phrase := m.Phrase()
		m.Destroy()
		if string(phrase) != benchPhrase || string(pass) != benchBIP39Pass {
			return errors.New("check keystore: alknet: the keystore does not hold the mnemonic and passphrase it was sealed with")
		}
		payload, err := f.baselineUnlock()
		if err != nil {
			return fmt.Errorf("check keystore: baseline: %w", err)
		}
		if !bytes.Contains(payload, []byte(benchPhrase)) {
			return errors.New("check keystore: baseline: the payload does not hold the mnemonic")
		}
	}
	return nil
}

func (f *vaultFixture) metrics(o vaultOptions) []*metric {
	d := o.duration
	return []*metric{
		{
			key: metricSeed, label: "mnemonic → seed (BIP39 PBKDF2-HMAC-SHA512 ×2048), seeds/s", unit: "seed", baseName: "go-bip39",
			alknet:   newArm("alknet", func(ctx context.Context) (sample, error) { return timedRound(ctx, d, f.alknetSeed) }),
			baseline: newArm("baseline", func(ctx context.Context) (sample, error) { return timedRound(ctx, d, f.baselineSeed) }),
		},
		{
			key: metricMnemonic, label: "generate 24-word mnemonic + validate, ops/s", unit: "mnemonic", baseName: "go-bip39",
			alknet:   newArm("alknet", func(ctx context.Context) (sample, error) { return timedRound(ctx, d, f.alknetMnemonic) }),
			baseline: newArm("baseline", func(ctx context.Context) (sample, error) { return timedRound(ctx, d, baselineMnemonic) }),
		},
		{
			key: metricSeal, label: "seal + open 1 KiB EncryptedData (key cached), ops/s", unit: "seal+open", baseName: "stdlib AES-GCM + JSON",
			alknet: newArm("alknet", func(ctx context.Context) (sample, error) {
				return timedRound(ctx, d, func() error { _, err := f.alknetSeal(); return err })
			}),
			baseline: newArm("baseline", func(ctx context.Context) (sample, error) {
				return timedRound(ctx, d, func() error { _, err := f.baselineSeal(); return err })
			}),
		},
		{
			key: metricKeystore, label: "keystore unlock (Argon2id t=3 m=64MiB p=4), unlocks/s", unit: "unlock", baseName: "x/crypto/argon2 + AES-GCM",
			alknet:   unlockArm("alknet", o.unlocks, f.alknetUnlock),
			baseline: unlockArm("baseline", o.unlocks, f.baselineUnlockWiped),
		},
	}
}

// primeUnlocks is how many untimed unlocks precede each measured keystore round. While
// the other rows run with a small heap, the runtime returns the Argon2 memory to the
// OS; the first two unlocks after that re-grow the heap to about three times 64 MiB and
// take about 0.3 s of page faults between them, which would fall on whichever arm runs
// first (always alknet).
const primeUnlocks = 2

// unlockArm is a keystore arm: n unlocks per round, after primeUnlocks untimed ones.
func unlockArm(name string, n int, unlock func() error) *arm {
	a := newArm(name, func(ctx context.Context) (sample, error) { return countedRound(ctx, n, unlock) })
	a.prepare = func(ctx context.Context) error {
		_, err := countedRound(ctx, primeUnlocks, unlock)
		return err
	}
	return a
}

// timedRound repeats op for d (at least once) and returns operations/s.
func timedRound(ctx context.Context, d time.Duration, op func() error) (sample, error) {
	start := time.Now()
	n := 0
	for {
		if err := op(); err != nil {
			return sample{}, err
		}
		n++
		if time.Since(start) >= d {
			break
		}
		if err := ctx.Err(); err != nil {
			return sample{}, err
		}
	}
	return sample{value: float64(n) / time.Since(start).Seconds(), ops: n}, nil
}

// countedRound runs op n times and returns operations/s: for operations too slow to
// fill a fixed duration evenly.
func countedRound(ctx context.Context, n int, op func() error) (sample, error) {
	start := time.Now()
	for range n {
		if err := ctx.Err(); err != nil {
			return sample{}, err
		}
		if err := op(); err != nil {
			return sample{}, err
		}
	}
	return sample{value: float64(n) / time.Since(start).Seconds(), ops: n}, nil
}

// alknetSeed validates the phrase and derives its seed, wiping both.
func (f *vaultFixture) alknetSeed() error {
	m, err := vault.ParseMnemonic(f.phrase)
	if err != nil {
		return err
	}
	defer m.Destroy()
	s, err := m.Seed(f.bip39Pass)
	if err != nil {
		return err
	}
	s.Destroy()
	return nil
}

// baselineSeed is go-bip39's validating seed derivation.
func (f *vaultFixture) baselineSeed() error {
	_, err := bip39.NewSeedWithErrorChecking(benchPhrase, benchBIP39Pass)
	return err
}

// alknetMnemonic generates a 24-word mnemonic and parses (validates) its phrase.
func (f *vaultFixture) alknetMnemonic() error {
	m, err := vault.NewMnemonic(24)
	if err != nil {
		return err
	}
	defer m.Destroy()
	phrase := m.Phrase()
	defer clear(phrase)
	m2, err := vault.ParseMnemonic(phrase)
	if err != nil {
		return err
	}
	m2.Destroy()
	return nil
}

// baselineMnemonic does the same with go-bip39. MnemonicToByteArray checks the words
// and the checksum, as vault.ParseMnemonic does (IsMnemonicValid checks only the words).
func baselineMnemonic() error {
	entropy, err := bip39.NewEntropy(256)
	if err != nil {
		return err
	}
	phrase, err := bip39.NewMnemonic(entropy)
	if err != nil {
		return err
	}
	_, err = bip39.MnemonicToByteArray(phrase)
	return err
}

// alknetSeal encrypts the plaintext with the vault, marshals the blob, parses it back
// and decrypts it. It returns the blob.
func (f *vaultFixture) alknetSeal() ([]byte, error) {
	ed, err := f.v.Encrypt(f.plaintext, vault.CurrentKeyVersion)
	if err != nil {
		return nil, err
	}
	blob, err := json.Marshal(ed)
	if err != nil {
		return nil, err
	}
	ed2, err := vault.ParseEncryptedData(blob)
	if err != nil {
		return nil, err
	}
	pt, err := f.v.Decrypt(ed2)
	if err != nil {
		return nil, err
	}
	if len(pt) != len(f.plaintext) {
		return nil, fmt.Errorf("decrypted %d bytes, sealed %d", len(pt), len(f.plaintext))
	}
	return blob, nil
}

// sealedBlob is the JSON shape of vault.EncryptedData, written out by hand.
type sealedBlob struct {
	KeyVersion uint32 `json:"key_version"`
	Salt       string `json:"salt"`
	IV         string `json:"iv"`
	Data       string `json:"data"`
}

// baselineSeal does what alknetSeal does with the standard library alone: one
// AES-256-GCM built at start-up from a fixed key, a fresh random nonce and salt,
// base64, encoding/json both ways, and gcm.Open.
func (f *vaultFixture) baselineSeal() ([]byte, error) {
	var salt [32]byte
	var iv [12]byte
	_, _ = rand.Read(salt[:])
	_, _ = rand.Read(iv[:])
	ct := f.baseGCM.Seal(nil, iv[:], f.plaintext, nil)
	blob, err := json.Marshal(sealedBlob{
		KeyVersion: vault.CurrentKeyVersion,
		Salt:       base64.StdEncoding.EncodeToString(salt[:]),
		IV:         base64.StdEncoding.EncodeToString(iv[:]),
		Data:       base64.StdEncoding.EncodeToString(ct),
	})
	if err != nil {
		return nil, err
	}
	pt, err := f.baselineOpen(blob)
	if err != nil {
		return nil, err
	}
	if len(pt) != len(f.plaintext) {
		return nil, fmt.Errorf("decrypted %d bytes, sealed %d", len(pt), len(f.plaintext))
	}
	return blob, nil
}

func (f *vaultFixture) baselineOpen(blob []byte) ([]byte, error) {
	var b sealedBlob
	if err := json.Unmarshal(blob, &b); err != nil {
		return nil, err
	}
	if b.KeyVersion != vault.CurrentKeyVersion {
		return nil, fmt.Errorf("key version %d", b.KeyVersion)
	}
	iv, err := base64.StdEncoding.DecodeString(b.IV)
	if err != nil {
		return nil, err
	}
	if len(iv) != f.baseGCM.NonceSize() {
		return nil, fmt.Errorf("iv is %d bytes", len(iv))
	}
	data, err := base64.StdEncoding.DecodeString(b.Data)
	if err != nil {
		return nil, err
	}
	return f.baseGCM.Open(data[:0], iv, data, nil)
}

// alknetUnlock opens the keystore with the vault and wipes what it returns.
func (f *vaultFixture) alknetUnlock() error {
	m, pass, err := vault.OpenKeystore(f.keystore, f.keystorePW, vault.DefaultKeystoreLimits())
	if err != nil {
		return err
	}
	m.Destroy()
	clear(pass)
	return nil
}

// baselineUnlockWiped is baselineUnlock that wipes the payload, as alknetUnlock wipes
// what OpenKeystore returns.
func (f *vaultFixture) baselineUnlockWiped() error {
	payload, err := f.baselineUnlock()
	clear(payload)
	return err
}

// baselineUnlock opens the same file with x/crypto/argon2 and crypto/cipher alone:
// Argon2id with the default parameters over the passphrase and the file's salt, then
// one AES-256-GCM open of the payload with the header as associated data. It returns
// the payload.
func (f *vaultFixture) baselineUnlock() ([]byte, error) {
	p := vault.DefaultKeystoreParams()
	salt := f.keystore[keystoreSaltOff:keystoreNonceOff]
	key := argon2.IDKey(f.keystorePW, salt, p.Time, p.MemoryKiB, p.Threads, 32)
	defer clear(key)
	gcm, err := newAESGCM(key)
	if err != nil {
		return nil, err
	}
	header := f.keystore[:keystoreHeaderSize]
	payload, err := gcm.Open(nil, f.keystore[keystoreNonceOff:keystoreHeaderSize], f.keystore[keystoreHeaderSize:], header)
	if err != nil {
		return nil, err
	}
	return payload, nil
}

func newAESGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
