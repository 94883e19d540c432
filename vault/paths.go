package vault

import (
	"fmt"
	"strconv"
)

// The fixed derivation paths (coin type 74'). They are frozen: changing one changes every
// key derived from existing mnemonics.
const (
	// PathIdentity is the node identity key: its Ed25519 public key is the node's TLS and
	// SSH identity (fingerprint ed25519:<hex>). It equals DevicePath(0).
	PathIdentity = "m/74'/0'/0'/0'"
	// PathSSHHost is the SSH host key.
	PathSSHHost = "m/74'/0'/1'/0'"
	// PathEncryptionV2 is the AES-256-GCM key of EncryptedData key version 2.
	PathEncryptionV2 = "m/74'/2'/0'/0'"
	// PathMsgX25519 is the X25519 private key of the msg service (the key a node's or a
	// client's published msg key bundle names): the 32 private key bytes derived at this
	// path as a KeyTypeAES256GCM key (DeriveEncryptionKey), used as an X25519 scalar. It
	// sits on the encryption branch beside EncryptionPath's keys, apart from every
	// Ed25519 key: it is never converted from the identity key.
	PathMsgX25519 = "m/74'/2'/1'/0'"
	// PathEthereum is the secp256k1 (BIP32) Ethereum signing path. This build does not
	// derive secp256k1 keys: Derive with KeyTypeSecp256k1 returns ErrUnsupportedKeyType.
	PathEthereum = "m/44'/60'/0'/0/0"
)

// CurrentKeyVersion is the key version new EncryptedData should be written with.
const CurrentKeyVersion uint32 = 2

// minKeyVersion is the first key version this vault can derive; 1 belongs to the
// TypeScript predecessor and 0 is invalid.
const minKeyVersion uint32 = 2

// maxKeyVersion is the last key version whose path index (v-2) fits in 31 bits.
const maxKeyVersion = uint32(minKeyVersion + HardenedOffset - 1)

// DevicePath returns the identity path of device (or worker) n: m/74'/0'/0'/{n}'.
// DevicePath(0) is PathIdentity. n must be below 2^31; a larger n gives a path that
// derivation refuses with ErrInvalidPath.
func DevicePath(n uint32) string {
	return "m/74'/0'/0'/" + strconv.FormatUint(uint64(n), 10) + "'"
}

// EncryptionPath returns the AES key path of EncryptedData key version v:
// m/74'/2'/0'/{v-2}'. Versions 0 and 1, and versions whose index v-2 does not fit in 31
// bits, give ErrUnsupportedKeyVersion.
func EncryptionPath(v uint32) (string, error) {
	if err := checkKeyVersion(v); err != nil {
		return "", err
	}
	if v == minKeyVersion {
		return PathEncryptionV2, nil // the common case, without building the string
	}
	return "m/74'/2'/0'/" + strconv.FormatUint(uint64(v-minKeyVersion), 10) + "'", nil
}

// checkKeyVersion returns nil when v can be derived.
func checkKeyVersion(v uint32) error {
	switch {
	case v == 1:
		return fmt.Errorf("%w: key version 1 is the TypeScript predecessor's PBKDF2 scheme, which this vault does not decrypt", ErrUnsupportedKeyVersion)
	case v < minKeyVersion:
		return fmt.Errorf("%w: key version %d", ErrUnsupportedKeyVersion, v)
	case v > maxKeyVersion:
		return fmt.Errorf("%w: key version %d is too large (its path index must fit in 31 bits)", ErrUnsupportedKeyVersion, v)
	}
	return nil
}
