package vault

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

const examplePhrase = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"

func ExampleParseMnemonic() {
	m, err := ParseMnemonic([]byte(examplePhrase))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Destroy()
	fmt.Println(m.Words())
	fmt.Println(m) // secrets never print

	_, err = ParseMnemonic([]byte("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon About"))
	var me *MnemonicError
	if errors.As(err, &me) && errors.Is(err, ErrUnknownWord) {
		fmt.Println("unknown word at index", me.Index)
	}
	// Output:
	// 12
	// [REDACTED]
	// unknown word at index 11
}

func ExampleVault() {
	v := New()
	if err := v.Unlock([]byte(examplePhrase), nil); err != nil {
		fmt.Println(err)
		return
	}
	defer v.Lock()

	id, err := v.DeriveEd25519(PathIdentity)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer id.Destroy()
	fmt.Println(hex.EncodeToString(id.PublicKey()))
	fmt.Println(id.Type(), id.Path())
	// Output:
	// e78c2766a792f09bfccb51493968ac322283e8d021a30063784d806929762ecc
	// ed25519 m/74'/0'/0'/0'
}

func ExampleVault_Encrypt() {
	v := New()
	if err := v.Unlock([]byte(examplePhrase), nil); err != nil {
		fmt.Println(err)
		return
	}
	defer v.Lock()

	blob, err := v.Encrypt([]byte("sk-test-123"), CurrentKeyVersion)
	if err != nil {
		fmt.Println(err)
		return
	}
	stored, err := json.Marshal(blob) // what the caller writes to its config or storage
	if err != nil {
		fmt.Println(err)
		return
	}

	parsed, err := ParseEncryptedData(stored)
	if err != nil {
		fmt.Println(err)
		return
	}
	plaintext, err := v.Decrypt(parsed)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(parsed.KeyVersion, string(plaintext))
	// Output:
	// 2 sk-test-123
}

func ExampleVault_Decrypt() {
	v := New()
	if err := v.Unlock([]byte(examplePhrase), nil); err != nil {
		fmt.Println(err)
		return
	}
	defer v.Lock()

	blob, err := ParseEncryptedData([]byte(`{"key_version":2,"salt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","iv":"DA0ODxAREhMUFRYX","data":"w1j3EjEFq6LZ4xgwGr8Sn8luZSNPyTF9G+Ot"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	plaintext, err := v.Decrypt(blob)
	fmt.Printf("%s %v\n", plaintext, err)

	blob.Data = blob.Data[:len(blob.Data)-1] + "s" // one tag bit flipped
	_, err = v.Decrypt(blob)
	fmt.Println(errors.Is(err, ErrDecrypt))
	// Output:
	// sk-test-123 <nil>
	// true
}

func ExampleVault_Rotate() {
	v := New()
	if err := v.Unlock([]byte(examplePhrase), nil); err != nil {
		fmt.Println(err)
		return
	}
	defer v.Lock()

	old, err := v.Encrypt([]byte("token"), 2)
	if err != nil {
		fmt.Println(err)
		return
	}
	rotated, err := v.Rotate(old, 3)
	if err != nil {
		fmt.Println(err)
		return
	}
	pt, err := v.Decrypt(rotated)
	fmt.Println(rotated.KeyVersion, string(pt), err)
	// Output:
	// 3 token <nil>
}

func ExampleDeriveEd25519() {
	// SLIP-0010 test vector 1.
	b, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f")
	seed, err := NewSeed(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer seed.Destroy()

	k, err := DeriveEd25519(seed, "m/0H")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer k.Destroy()
	fmt.Println(hex.EncodeToString(k.PublicKey()))

	_, err = DeriveEd25519(seed, "m/0")
	fmt.Println(errors.Is(err, ErrNotHardened))
	// Output:
	// 8c8a13df77a28f3445213a0f432fde644acaa215fc72dcdf300d5efaa85d350c
	// true
}

func ExampleParsePath() {
	p, err := ParsePath("m/74h/0h/0h/0h")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p, len(p), p.Hardened(), p.String() == PathIdentity)

	_, err = ParsePath("m/0h'")
	fmt.Println(errors.Is(err, ErrInvalidPath))
	// Output:
	// m/74'/0'/0'/0' 4 true true
	// true
}

func ExampleEncryptionPath() {
	for _, v := range []uint32{2, 3, 1} {
		p, err := EncryptionPath(v)
		fmt.Println(v, p, errors.Is(err, ErrUnsupportedKeyVersion))
	}
	// Output:
	// 2 m/74'/2'/0'/0' false
	// 3 m/74'/2'/0'/1' false
	// 1  true
}
