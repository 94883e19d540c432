package msg

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Limits of the sealed inner message.
const (
	// MaxBodySize is the largest body Seal accepts: 1 MiB. Whether a node accepts an
	// envelope that large depends on its frame cap (Config.MaxFrameBytes): with the
	// default 256 KiB cap the largest deliverable body is MaxBodyForFrame(256 KiB),
	// about 127 KiB; see [MaxBodyForFrame] and [FrameSizeForBody].
	MaxBodySize = 1 << 20
	// MaxContentTypeLen is the longest content type: 255 bytes of printable ASCII.
	MaxContentTypeLen = 255
)

// Errors of Seal and Open.
var (
	// ErrDecrypt: HPKE could not open the ciphertext (wrong key, or the envelope was
	// changed on the way).
	ErrDecrypt = errors.New("msg: envelope does not decrypt (wrong key or tampered)")
	// ErrWrongRecipient: the envelope's "to" is not the opener's mailbox.
	ErrWrongRecipient = errors.New("msg: envelope is addressed to another mailbox")
	// ErrForwarded: the signed inner recipient, id or time differ from the envelope's:
	// a message re-sealed (forwarded) by someone other than its signer.
	ErrForwarded = errors.New("msg: inner recipient, id or time do not match the envelope")
	// ErrBadSignature: the sender's signature over the inner message does not verify.
	ErrBadSignature = errors.New("msg: sender signature does not verify")
	// ErrTooLarge: a body or content type over its limit.
	ErrTooLarge = errors.New("msg: too large")
)

// Sizes of the inner message (see Seal for the layout).
const (
	innerVersion   = 1
	innerFixedSize = 1 + 32 + 32 + IDSize + 8 + ed25519.SignatureSize // 153
	aeadTagSize    = 16
	// maxVariableSize is the largest variable part: content type and body with
	// their length fields.
	maxVariableSize = 1 + MaxContentTypeLen + 4 + MaxBodySize
)

// paddingBuckets are the sizes the variable part is padded to; above the last one it is
// padded to a multiple of it.
var paddingBuckets = [...]int{256, 1 << 10, 4 << 10, 16 << 10, 64 << 10}

// paddedSize returns the bucket n bytes are padded to.
func paddedSize(n int) int {
	for _, b := range paddingBuckets {
		if n <= b {
			return b
		}
	}
	last := paddingBuckets[len(paddingBuckets)-1]
	return (n + last - 1) / last * last
}

// envelopeJSONOverhead bounds the JSON of an envelope besides its ct characters, and
// deliverOverhead the deliver request around it.
const (
	envelopeJSONOverhead = 256
	deliverOverhead      = 64
)

// FrameSizeForBody returns the deliver frame size (bytes of JSON) that a body of n bytes
// with a content type of ctypeLen bytes needs, at most: what a node's frame cap must
// allow for it. For MaxBodySize it is about 1.42 MiB.
func FrameSizeForBody(n, ctypeLen int) int {
	ct := innerFixedSize + paddedSize(1+ctypeLen+4+n) + aeadTagSize
	return b64.EncodedLen(ct) + envelopeJSONOverhead + deliverOverhead
}

// MaxBodyForFrame returns the largest body (with a content type of ctypeLen bytes) whose
// deliver request fits a frame cap of frameBytes, or -1 when none does. With the
// default cap (256 KiB) and a short content type it is 128 KiB minus the content type
// and 5 bytes.
func MaxBodyForFrame(frameBytes, ctypeLen int) int {
	best := -1
	top := paddedSize(1 + ctypeLen + 4 + MaxBodySize)
	// Within a bucket the sealed size is constant: try each bucket's largest body.
	for bucket := paddingBuckets[0]; bucket <= top; bucket = paddedSize(bucket + 1) {
		n := min(bucket-1-ctypeLen-4, MaxBodySize)
		if n < 0 {
			continue
		}
		if FrameSizeForBody(n, ctypeLen) > frameBytes {
			break
		}
		best = n
	}
	return best
}

// SealOption adjusts Seal.
type SealOption func(*sealOptions)

type sealOptions struct {
	now time.Time
	ttl time.Duration
}

// WithTTL sets the envelope's lifetime (whole seconds, at least one); without it the
// envelope carries no ttl and the recipient's node applies its default (7 days unless
// configured). Nodes clamp it to their maximum (30 days by default).
func WithTTL(d time.Duration) SealOption { return func(o *sealOptions) { o.ttl = d } }

// WithTime sets the sealing time (default: time.Now): the envelope's ts and the time
// the key bundle must still be valid at.
func WithTime(t time.Time) SealOption { return func(o *sealOptions) { o.now = t } }

// Seal encrypts body for the owner of recipient, whose key bundle is bundle, and signs it
// as sender (an Ed25519 crypto.Signer: an ed25519.PrivateKey or a signer backed by a
// vault). It refuses a bundle that [VerifyBundle] refuses (bad signature, expired), a
// body over [MaxBodySize] and a content type over [MaxContentTypeLen] bytes or not
// printable ASCII.
//
// The inner plaintext is sign-then-encrypt: version (1 byte) ‖ sender key (32) ‖
// recipient key (32) ‖ id (16) ‖ ts (8, Unix ms) ‖ signature (64), then the variable part
// content-type length (1) ‖ content type ‖ body length (4) ‖ body, padded with zeros to
// the next bucket (256 B, 1 KiB, 4 KiB, 16 KiB, 64 KiB, then multiples of 64 KiB). The
// Ed25519 signature covers "alknet-msg-sig-v1" ‖ sender ‖ recipient ‖ id ‖ ts ‖
// content type (with its length) ‖ body length ‖ SHA-256(body): the recipient is signed,
// so a recipient cannot re-seal a message to a third party as if the sender had sent it
// to them. It is then sealed with HPKE base mode, suite [SuiteX25519ChaCha20], info
// "alknet-msg-v1" ‖ bundle X25519 key, and the encoded outer header as associated data.
func Seal(sender crypto.Signer, recipient ed25519.PublicKey, bundle KeyBundle, body []byte, contentType string, opts ...SealOption) (*Envelope, error) {
	o := sealOptions{}
	for _, f := range opts {
		f(&o)
	}
	if o.now.IsZero() {
		o.now = time.Now()
	}
	senderPub, ok := sender.Public().(ed25519.PublicKey)
	if !ok || len(senderPub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("seal: sender: %w", ErrNotEd25519)
	}
	if err := VerifyBundle(recipient, bundle, o.now); err != nil {
		return nil, fmt.Errorf("seal: recipient's %w", err)
	}
	if len(body) > MaxBodySize {
		return nil, fmt.Errorf("seal: %w: body of %d bytes (limit %d)", ErrTooLarge, len(body), MaxBodySize)
	}
	if err := checkContentType(contentType); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	ttl := int64(0)
	if o.ttl != 0 {
		ttl = int64(o.ttl / time.Second)
		if ttl < 1 {
			return nil, fmt.Errorf("seal: ttl %s: want at least one second", o.ttl)
		}
	}
	env := &Envelope{V: Version, To: Mailbox(recipient), TS: o.now.UnixMilli(), TTL: ttl, Suite: SuiteX25519ChaCha20}
	if _, err := rand.Read(env.ID[:]); err != nil {
		return nil, fmt.Errorf("seal: id: %w", err)
	}

	sig, err := sender.Sign(rand.Reader, signedInner(senderPub, recipient, env.ID, env.TS, contentType, body), crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("seal: sign: %w", err)
	}
	variable := 1 + len(contentType) + 4 + len(body)
	pt := make([]byte, 0, innerFixedSize+paddedSize(variable))
	pt = append(pt, innerVersion)
	pt = append(pt, senderPub...)
	pt = append(pt, recipient...)
	pt = append(pt, env.ID[:]...)
	pt = binary.BigEndian.AppendUint64(pt, uint64(env.TS))
	pt = append(pt, sig...)
	pt = append(pt, byte(len(contentType)))
	pt = append(pt, contentType...)
	pt = binary.BigEndian.AppendUint32(pt, uint32(len(body)))
	pt = append(pt, body...)
	pt = pt[:cap(pt)] // zero padding (make zeroed it)
	defer clear(pt)

	pk, err := hpke.DHKEM(ecdh.X25519()).NewPublicKey(bundle.X25519)
	if err != nil {
		return nil, fmt.Errorf("seal: recipient's X25519 key: %w", err)
	}
	enc, s, err := hpke.NewSender(pk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), hpkeInfo(bundle.X25519))
	if err != nil {
		return nil, fmt.Errorf("seal: hpke: %w", err)
	}
	if env.CT, err = s.Seal(env.header(), pt); err != nil {
		return nil, fmt.Errorf("seal: hpke: %w", err)
	}
	env.Enc = enc
	return env, nil
}

// hpkeInfo is the HPKE info: "alknet-msg-v1" ‖ recipient X25519 key.
func hpkeInfo(x25519 []byte) []byte {
	return append([]byte(infoDomain), x25519...)
}

// signedInner is the encoding the sender's signature covers.
func signedInner(sender, recipient ed25519.PublicKey, id [IDSize]byte, ts int64, contentType string, body []byte) []byte {
	sum := sha256.Sum256(body)
	m := make([]byte, 0, len(signDomain)+32+32+IDSize+8+1+len(contentType)+4+len(sum))
	m = append(m, signDomain...)
	m = append(m, sender...)
	m = append(m, recipient...)
	m = append(m, id[:]...)
	m = binary.BigEndian.AppendUint64(m, uint64(ts))
	m = append(m, byte(len(contentType)))
	m = append(m, contentType...)
	m = binary.BigEndian.AppendUint32(m, uint32(len(body)))
	return append(m, sum[:]...)
}

// checkContentType enforces MaxContentTypeLen and printable ASCII.
func checkContentType(ct string) error {
	if len(ct) > MaxContentTypeLen {
		return fmt.Errorf("%w: content type of %d bytes (limit %d)", ErrTooLarge, len(ct), MaxContentTypeLen)
	}
	for i := range len(ct) {
		if c := ct[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: content type has a byte 0x%02x that is not printable ASCII", ErrMalformed, c)
		}
	}
	return nil
}

// Message is an opened, verified envelope.
type Message struct {
	ID          [IDSize]byte      // the envelope id
	From        ed25519.PublicKey // the sender's verified identity key
	To          ed25519.PublicKey // the recipient (the opener's key)
	Time        time.Time         // the signed sealing time
	ContentType string            // as the sender signed it ("" when unspecified)
	Body        []byte
}

// Open decrypts and verifies env with the recipient's X25519 private key, self being
// the recipient's Ed25519 identity key. It returns an error wrapping
// [ErrUnknownVersion] or [ErrUnknownSuite] for an envelope it does not implement,
// [ErrWrongRecipient] when env.To is not self's mailbox, [ErrDecrypt] when HPKE fails
// (wrong key, any changed byte of the header, enc or ct), [ErrForwarded] when the signed
// inner recipient, id or time differ from the envelope's, [ErrMalformed] for an inner
// message that does not parse (including non-zero or wrong-sized padding) and
// [ErrBadSignature] when the sender's signature does not verify. The decrypted
// plaintext is cleared before Open returns; the Message holds copies.
//
// Open does not decide whether the sender is welcome: check Message.From against the
// recipient's own policy.
func Open(recipient *ecdh.PrivateKey, self ed25519.PublicKey, env *Envelope) (*Message, error) {
	if env == nil || recipient == nil {
		return nil, errors.New("msg: open: nil envelope or key")
	}
	if env.V != Version {
		return nil, fmt.Errorf("open: %w: v=%d", ErrUnknownVersion, env.V)
	}
	encSize, ok := env.Suite.encSize()
	if !ok {
		return nil, fmt.Errorf("open: %w: %s", ErrUnknownSuite, env.Suite)
	}
	if len(self) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("open: self: %w", ErrNotEd25519)
	}
	if env.To != Mailbox(self) {
		return nil, fmt.Errorf("open: %w", ErrWrongRecipient)
	}
	if len(env.Enc) != encSize || len(env.CT) < innerFixedSize+aeadTagSize {
		return nil, fmt.Errorf("open: %w", ErrDecrypt)
	}
	if recipient.Curve() != ecdh.X25519() {
		return nil, errors.New("msg: open: the recipient key is not X25519")
	}
	k, err := hpke.NewDHKEMPrivateKey(recipient)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	r, err := hpke.NewRecipient(env.Enc, k, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), hpkeInfo(recipient.PublicKey().Bytes()))
	if err != nil {
		return nil, fmt.Errorf("open: %w", ErrDecrypt)
	}
	pt, err := r.Open(env.header(), env.CT)
	if err != nil {
		return nil, fmt.Errorf("open: %w", ErrDecrypt)
	}
	defer clear(pt)
	return parseInner(pt, self, env)
}

// parseInner checks and decodes a decrypted inner message.
func parseInner(pt []byte, self ed25519.PublicKey, env *Envelope) (*Message, error) {
	if len(pt) < innerFixedSize+1+4 || pt[0] != innerVersion {
		return nil, fmt.Errorf("%w: inner message: short or unknown version", ErrMalformed)
	}
	sender := ed25519.PublicKey(bytes.Clone(pt[1:33]))
	to := pt[33:65]
	var id [IDSize]byte
	copy(id[:], pt[65:65+IDSize])
	ts := int64(binary.BigEndian.Uint64(pt[65+IDSize:]))
	sig := pt[65+IDSize+8 : innerFixedSize]
	if !bytes.Equal(to, self) || id != env.ID || ts != env.TS {
		return nil, fmt.Errorf("open: %w", ErrForwarded)
	}
	v := pt[innerFixedSize:]
	ctLen := int(v[0])
	if len(v) < 1+ctLen+4 {
		return nil, fmt.Errorf("%w: inner message: truncated content type", ErrMalformed)
	}
	contentType := string(v[1 : 1+ctLen])
	bodyLen := binary.BigEndian.Uint32(v[1+ctLen:])
	rest := v[1+ctLen+4:]
	if uint64(bodyLen) > uint64(len(rest)) || bodyLen > MaxBodySize {
		return nil, fmt.Errorf("%w: inner message: body length %d beyond the message", ErrMalformed, bodyLen)
	}
	body, pad := rest[:bodyLen], rest[bodyLen:]
	if len(v) != paddedSize(1+ctLen+4+int(bodyLen)) {
		return nil, fmt.Errorf("%w: inner message: padded to %d bytes, not its bucket", ErrMalformed, len(v))
	}
	for _, c := range pad {
		if c != 0 {
			return nil, fmt.Errorf("%w: inner message: non-zero padding", ErrMalformed)
		}
	}
	if err := checkContentType(contentType); err != nil {
		return nil, fmt.Errorf("%w: inner message: %w", ErrMalformed, err)
	}
	if !ed25519.Verify(sender, signedInner(sender, self, id, ts, contentType, body), sig) {
		return nil, fmt.Errorf("open: %w", ErrBadSignature)
	}
	return &Message{
		ID: id, From: sender, To: bytes.Clone(self), Time: time.UnixMilli(ts),
		ContentType: contentType, Body: bytes.Clone(body),
	}, nil
}
