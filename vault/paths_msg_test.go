package vault

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// vecMsgX25519 is the key at PathMsgX25519 of the abandon mnemonic (empty BIP39
// passphrase): frozen, since it decrypts every message sealed to a published bundle.
const vecMsgX25519 = "531a21ea739313afeda0219c83788a1b699c3d7fee18d2a84a5e448b45c1bfcb"

func TestPathMsgX25519(t *testing.T) {
	t.Parallel()
	p, err := ParsePath(PathMsgX25519)
	if err != nil || !p.Hardened() || p.String() != PathMsgX25519 {
		t.Fatalf("ParsePath(%q) = %v, %v; want a canonical hardened path", PathMsgX25519, p, err)
	}
	v := unlocked(t)
	defer v.Lock()
	k, err := v.DeriveEncryptionKey(PathMsgX25519)
	if err != nil {
		t.Fatalf("DeriveEncryptionKey: %v", err)
	}
	defer k.Destroy()
	got := k.PrivateKey()
	if hex.EncodeToString(got) != vecMsgX25519 {
		t.Errorf("key at %s = %x, want %s", PathMsgX25519, got, vecMsgX25519)
	}
	// Distinct from every other fixed key of the same seed.
	for _, other := range []string{PathIdentity, PathSSHHost, PathEncryptionV2} {
		o, err := v.DeriveEncryptionKey(other)
		if err != nil {
			t.Fatalf("DeriveEncryptionKey(%s): %v", other, err)
		}
		if bytes.Equal(o.PrivateKey(), got) {
			t.Errorf("the key at %s equals the key at %s", PathMsgX25519, other)
		}
		o.Destroy()
	}
}
