package msg

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Key bundle errors.
var (
	// ErrBundleSignature: the bundle's signature does not verify under the owner's key.
	ErrBundleSignature = errors.New("msg: key bundle signature does not verify")
	// ErrBundleExpired: the bundle's not_after has passed.
	ErrBundleExpired = errors.New("msg: key bundle expired")
	// ErrNotEd25519: a key or signer is not Ed25519.
	ErrNotEd25519 = errors.New("msg: not an Ed25519 key")
)

// KeyBundle is a mailbox owner's published encryption key: an X25519 public key, the
// time after which senders must not use it, and the owner's Ed25519 signature over
// both. Senders seal to the X25519 key only after [VerifyBundle] accepted the bundle for
// the recipient's identity key.
//
// The signature covers "alknet-msg-bundle-v1" ‖ owner Ed25519 key (32 bytes) ‖ X25519
// key (32 bytes) ‖ not_after (Unix seconds, 8 bytes big-endian). Its JSON form is
// {"x25519":"<32 bytes>","not_after":<Unix seconds>,"sig":"<64 bytes>"}, byte fields in
// unpadded base64url, decoded strictly.
type KeyBundle struct {
	X25519   []byte    // the X25519 public key, 32 bytes
	NotAfter time.Time // whole seconds; senders refuse the bundle from then on
	Sig      []byte    // Ed25519 signature, 64 bytes
}

type bundleWire struct {
	X25519   string `json:"x25519"`
	NotAfter int64  `json:"not_after"`
	Sig      string `json:"sig"`
}

// NewKeyBundle signs a bundle for the X25519 key pub with the owner's Ed25519 signer,
// valid until notAfter (truncated to whole seconds).
func NewKeyBundle(owner crypto.Signer, pub *ecdh.PublicKey, notAfter time.Time) (KeyBundle, error) {
	ownerPub, ok := owner.Public().(ed25519.PublicKey)
	if !ok || len(ownerPub) != ed25519.PublicKeySize {
		return KeyBundle{}, fmt.Errorf("key bundle: owner: %w", ErrNotEd25519)
	}
	if pub == nil || pub.Curve() != ecdh.X25519() {
		return KeyBundle{}, errors.New("msg: key bundle: the encryption key is not X25519")
	}
	b := KeyBundle{X25519: pub.Bytes(), NotAfter: time.Unix(notAfter.Unix(), 0)}
	sig, err := owner.Sign(rand.Reader, b.signedBytes(ownerPub), crypto.Hash(0))
	if err != nil {
		return KeyBundle{}, fmt.Errorf("msg: key bundle: sign: %w", err)
	}
	b.Sig = sig
	return b, nil
}

// signedBytes is the domain-separated encoding the bundle's signature covers.
func (b KeyBundle) signedBytes(owner ed25519.PublicKey) []byte {
	m := make([]byte, 0, len(bundleDomain)+32+32+8)
	m = append(m, bundleDomain...)
	m = append(m, owner...)
	m = append(m, b.X25519...)
	return binary.BigEndian.AppendUint64(m, uint64(b.NotAfter.Unix()))
}

// VerifyBundle checks that b is signed by owner and not expired at now: an error wrapping
// [ErrMalformed] for wrong key or signature sizes or an X25519 key that is not a valid
// point encoding, [ErrBundleSignature] for a bad signature, [ErrBundleExpired] when now
// is at or after b.NotAfter.
func VerifyBundle(owner ed25519.PublicKey, b KeyBundle, now time.Time) error {
	if len(owner) != ed25519.PublicKeySize {
		return fmt.Errorf("key bundle: owner: %w", ErrNotEd25519)
	}
	if len(b.X25519) != 32 || len(b.Sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: key bundle: x25519 key of %d bytes, signature of %d", ErrMalformed, len(b.X25519), len(b.Sig))
	}
	if _, err := ecdh.X25519().NewPublicKey(b.X25519); err != nil {
		return fmt.Errorf("%w: key bundle: x25519 key: %w", ErrMalformed, err)
	}
	if !ed25519.Verify(owner, b.signedBytes(owner), b.Sig) {
		return ErrBundleSignature
	}
	if !now.Before(b.NotAfter) {
		return fmt.Errorf("%w: not_after %s", ErrBundleExpired, b.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// MarshalJSON encodes b in its wire form.
func (b KeyBundle) MarshalJSON() ([]byte, error) {
	return json.Marshal(bundleWire{X25519: b64.EncodeToString(b.X25519), NotAfter: b.NotAfter.Unix(), Sig: b64.EncodeToString(b.Sig)})
}

// UnmarshalJSON decodes the wire form strictly (sizes are checked, the signature is
// not: that is [VerifyBundle]'s job).
func (b *KeyBundle) UnmarshalJSON(data []byte) error {
	ms, err := readObject(data)
	if err != nil {
		return fmt.Errorf("key bundle: %w", err)
	}
	f, err := fields("key bundle", ms, "x25519", "not_after", "sig")
	if err != nil {
		return err
	}
	for _, k := range []string{"x25519", "not_after", "sig"} {
		if f[k] == nil {
			return fmt.Errorf("%w: key bundle: missing %q", ErrMalformed, k)
		}
	}
	notAfter, err := jsonInt("key bundle not_after (Unix seconds)", f["not_after"], 1, 1<<40)
	if err != nil {
		return err
	}
	xs, err := jsonString("key bundle x25519", f["x25519"])
	if err != nil {
		return err
	}
	x, err := decodeB64("key bundle x25519", xs, 32, 0)
	if err != nil {
		return err
	}
	ss, err := jsonString("key bundle sig", f["sig"])
	if err != nil {
		return err
	}
	sig, err := decodeB64("key bundle sig", ss, ed25519.SignatureSize, 0)
	if err != nil {
		return err
	}
	*b = KeyBundle{X25519: x, NotAfter: time.Unix(notAfter, 0), Sig: sig}
	return nil
}

// NewX25519Key parses a raw 32-byte X25519 private key (from a key file or the vault)
// and clears raw, so that the caller's copy of the secret does not outlive the call.
// The returned key is what [Open] takes.
func NewX25519Key(raw []byte) (*ecdh.PrivateKey, error) {
	defer clear(raw)
	k, err := ecdh.X25519().NewPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("msg: X25519 private key: %w", err)
	}
	return k, nil
}
