package vault

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
)

// A node's start-up: the keystore written by "alknet vault init" (or recover) is opened
// with the operator's passphrase, and the identity key and sealed credentials come out
// of the unlocked vault.
func ExampleVault_UnlockKeystore() {
	dir, err := os.MkdirTemp("", "vault-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "vault.keystore")
	passphrase := []byte("correct horse battery staple")

	// Once, at setup: seal the mnemonic into the keystore file (mode 0600).
	m, err := ParseMnemonic([]byte("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"))
	if err != nil {
		log.Fatal(err)
	}
	// MinKeystoreParams keeps the example fast; nodes use DefaultKeystoreParams.
	if err := WriteKeystore(path, m, nil, passphrase, MinKeystoreParams()); err != nil {
		log.Fatal(err)
	}
	m.Destroy()

	// At every start.
	v := New()
	defer v.Lock()
	if err := v.UnlockKeystore(path, passphrase); err != nil {
		log.Fatal(err)
	}
	id, err := v.DeriveEd25519(PathIdentity)
	if err != nil {
		log.Fatal(err)
	}
	nodeKey, err := id.Ed25519()
	if err != nil {
		log.Fatal(err)
	}
	id.Destroy()
	fmt.Println("node fingerprint: ed25519:" + hex.EncodeToString(nodeKey.Public().(ed25519.PublicKey)))

	blob, err := v.Encrypt([]byte("sk-live-123"), CurrentKeyVersion)
	if err != nil {
		log.Fatal(err)
	}
	js, err := json.Marshal(blob)
	if err != nil {
		log.Fatal(err)
	}
	back, err := ParseEncryptedData(js)
	if err != nil {
		log.Fatal(err)
	}
	plain, err := v.Decrypt(back)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(plain))
	// Output:
	// node fingerprint: ed25519:e78c2766a792f09bfccb51493968ac322283e8d021a30063784d806929762ecc
	// sk-live-123
}
