package msg

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// party is a test identity: an Ed25519 identity key and an X25519 encryption key with
// its signed bundle.
type party struct {
	sig    ed25519.PrivateKey
	pub    ed25519.PublicKey
	x      *ecdh.PrivateKey
	bundle KeyBundle
}

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newParty(t testing.TB) *party {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKeyBundle(priv, x.PublicKey(), testNow.Add(30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return &party{sig: priv, pub: pub, x: x, bundle: b}
}

func seal(t testing.TB, from, to *party, body string) *Envelope {
	t.Helper()
	env, err := Seal(from.sig, to.pub, to.bundle, []byte(body), "text/plain", WithTime(testNow))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return env
}

func TestSealOpenRoundTrip(t *testing.T) {
	alice, bob := newParty(t), newParty(t)
	for _, body := range []string{"", "hello bob", strings.Repeat("x", 70_000)} {
		env, err := Seal(alice.sig, bob.pub, bob.bundle, []byte(body), "text/plain; charset=utf-8", WithTime(testNow), WithTTL(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if env.V != Version || env.Suite != SuiteX25519ChaCha20 || env.To != Mailbox(bob.pub) || env.TTL != 3600 || env.TS != testNow.UnixMilli() || len(env.Enc) != 32 {
			t.Fatalf("envelope header %+v", env)
		}
		// Through its JSON form, as it travels.
		raw, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeEnvelope(raw)
		if err != nil {
			t.Fatalf("DecodeEnvelope: %v", err)
		}
		m, err := Open(bob.x, bob.pub, got)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if string(m.Body) != body || !m.From.Equal(alice.pub) || !m.To.Equal(bob.pub) || m.ID != env.ID ||
			!m.Time.Equal(testNow) || m.ContentType != "text/plain; charset=utf-8" {
			t.Fatalf("opened %+v", m)
		}
	}
}

func TestEnvelopeJSONShape(t *testing.T) {
	alice, bob := newParty(t), newParty(t)
	env := seal(t, alice, bob, "hi")
	raw, _ := json.Marshal(env)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"v", "id", "to", "ts", "suite", "enc", "ct"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q missing from %s", k, raw)
		}
	}
	if _, ok := m["ttl"]; ok {
		t.Errorf("ttl present without WithTTL: %s", raw)
	}
	if !strings.Contains(string(raw), `"suite":[32,1,3]`) || strings.ContainsAny(string(raw), "=+/") {
		t.Errorf("suite or base64url form wrong: %s", raw)
	}
	if id, _ := m["id"].(string); len(id) != 22 {
		t.Errorf("id %q is not 16 bytes of unpadded base64url", id)
	}
}

// TestOpenTamperedEnvelope flips every byte of the encoded envelope in turn: either the
// result no longer decodes, or Open refuses it.
func TestOpenTamperedEnvelope(t *testing.T) {
	alice, bob := newParty(t), newParty(t)
	env, err := Seal(alice.sig, bob.pub, bob.bundle, []byte("x"), "t", WithTime(testNow), WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(env)
	for i := range raw {
		for _, mask := range []byte{0x01, 0x20} {
			b := bytes.Clone(raw)
			b[i] ^= mask
			got, err := DecodeEnvelope(b)
			if err != nil {
				continue
			}
			if m, err := Open(bob.x, bob.pub, got); err == nil {
				t.Fatalf("byte %d ^%#x (%q): Open accepted the changed envelope: %q", i, mask, b[max(0, i-8):min(len(b), i+8)], m.Body)
			}
		}
	}
	// And every byte of the raw enc and ct, and each header field.
	for i := range env.Enc {
		e := *env
		e.Enc = bytes.Clone(env.Enc)
		e.Enc[i] ^= 1
		if _, err := Open(bob.x, bob.pub, &e); err == nil {
			t.Fatalf("enc byte %d flipped: opened", i)
		}
	}
	for i := range env.CT {
		e := *env
		e.CT = bytes.Clone(env.CT)
		e.CT[i] ^= 0x80
		if _, err := Open(bob.x, bob.pub, &e); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("ct byte %d flipped: %v, want ErrDecrypt", i, err)
		}
	}
	for name, change := range map[string]func(e *Envelope){
		"id":    func(e *Envelope) { e.ID[3] ^= 1 },
		"ts":    func(e *Envelope) { e.TS++ },
		"ttl":   func(e *Envelope) { e.TTL++ },
		"ttl 0": func(e *Envelope) { e.TTL = 0 },
	} {
		e := *env
		change(&e)
		if _, err := Open(bob.x, bob.pub, &e); !errors.Is(err, ErrDecrypt) {
			t.Errorf("header %s changed: %v, want ErrDecrypt", name, err)
		}
	}
	e := *env
	e.Suite.AEAD = 1
	if _, err := Open(bob.x, bob.pub, &e); !errors.Is(err, ErrUnknownSuite) {
		t.Errorf("suite changed: %v, want ErrUnknownSuite", err)
	}
	e = *env
	e.V = 2
	if _, err := Open(bob.x, bob.pub, &e); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("version changed: %v, want ErrUnknownVersion", err)
	}
}

func TestOpenWrongRecipient(t *testing.T) {
	alice, bob, carol := newParty(t), newParty(t), newParty(t)
	env := seal(t, alice, bob, "for bob")
	// Carol's X25519 key with Bob's identity: HPKE fails.
	if _, err := Open(carol.x, bob.pub, env); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong X25519 key: %v, want ErrDecrypt", err)
	}
	// Carol opening as herself: the envelope is not addressed to her.
	if _, err := Open(carol.x, carol.pub, env); !errors.Is(err, ErrWrongRecipient) {
		t.Fatalf("wrong mailbox: %v, want ErrWrongRecipient", err)
	}
}

// openInner decrypts env as Open does and returns the raw inner plaintext.
func openInner(t *testing.T, p *party, env *Envelope) []byte {
	t.Helper()
	k, _ := hpke.NewDHKEMPrivateKey(p.x)
	r, err := hpke.NewRecipient(env.Enc, k, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), hpkeInfo(p.x.PublicKey().Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := r.Open(env.header(), env.CT)
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

// resealInner seals pt under env's header (which may have been changed) to p's bundle.
func resealInner(t *testing.T, p *party, env *Envelope, pt []byte) *Envelope {
	t.Helper()
	pk, err := hpke.DHKEM(ecdh.X25519()).NewPublicKey(p.bundle.X25519)
	if err != nil {
		t.Fatal(err)
	}
	enc, s, err := hpke.NewSender(pk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), hpkeInfo(p.bundle.X25519))
	if err != nil {
		t.Fatal(err)
	}
	out := *env
	out.Enc = enc
	if out.CT, err = s.Seal(out.header(), pt); err != nil {
		t.Fatal(err)
	}
	return &out
}

// TestOpenForwarded: Bob takes Alice's signed message to him and re-seals it to Carol
// as a new envelope; Carol must not accept it as Alice's message to her.
func TestOpenForwarded(t *testing.T) {
	alice, bob, carol := newParty(t), newParty(t), newParty(t)
	env := seal(t, alice, bob, "for bob only")
	pt := openInner(t, bob, env)
	fwd := *env
	fwd.To = Mailbox(carol.pub)
	if _, err := Open(carol.x, carol.pub, resealInner(t, carol, &fwd, pt)); !errors.Is(err, ErrForwarded) {
		t.Fatalf("forwarded: %v, want ErrForwarded", err)
	}
	// Same recipient, but the outer id or ts swapped for other values.
	for name, change := range map[string]func(e *Envelope){
		"id": func(e *Envelope) { e.ID[0] ^= 1 },
		"ts": func(e *Envelope) { e.TS -= 1000 },
	} {
		e := *env
		change(&e)
		if _, err := Open(bob.x, bob.pub, resealInner(t, bob, &e, pt)); !errors.Is(err, ErrForwarded) {
			t.Errorf("outer %s differs from the signed one: %v, want ErrForwarded", name, err)
		}
	}
}

func TestOpenBadInnerSignature(t *testing.T) {
	alice, bob, mallory := newParty(t), newParty(t), newParty(t)
	env := seal(t, alice, bob, "pay 10")
	pt := openInner(t, bob, env)
	for name, change := range map[string]func(pt []byte){
		"signature": func(pt []byte) { pt[innerFixedSize-1] ^= 1 },
		"body":      func(pt []byte) { pt[innerFixedSize+1+len("text/plain")+4+4] = '9' },
		"sender":    func(pt []byte) { copy(pt[1:33], mallory.pub) },
		"ctype":     func(pt []byte) { pt[innerFixedSize+1] = 'T' },
	} {
		b := bytes.Clone(pt)
		change(b)
		if _, err := Open(bob.x, bob.pub, resealInner(t, bob, env, b)); !errors.Is(err, ErrBadSignature) {
			t.Errorf("inner %s changed: %v, want ErrBadSignature", name, err)
		}
	}
	// Padding and lengths are checked too.
	for name, change := range map[string]func(pt []byte) []byte{
		"non-zero padding": func(pt []byte) []byte { pt[len(pt)-1] = 1; return pt },
		"short padding":    func(pt []byte) []byte { return pt[:len(pt)-1] },
		"body length":      func(pt []byte) []byte { pt[innerFixedSize+1+len("text/plain")+3] = 0xff; return pt },
		"inner version":    func(pt []byte) []byte { pt[0] = 2; return pt },
	} {
		b := change(bytes.Clone(pt))
		if _, err := Open(bob.x, bob.pub, resealInner(t, bob, env, b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("inner %s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestBundle(t *testing.T) {
	alice, bob := newParty(t), newParty(t)
	if err := VerifyBundle(bob.pub, bob.bundle, testNow); err != nil {
		t.Fatalf("VerifyBundle: %v", err)
	}
	// Signed by someone else, or changed after signing.
	if err := VerifyBundle(alice.pub, bob.bundle, testNow); !errors.Is(err, ErrBundleSignature) {
		t.Errorf("other owner: %v", err)
	}
	forged := bob.bundle
	forged.X25519 = alice.bundle.X25519
	if err := VerifyBundle(bob.pub, forged, testNow); !errors.Is(err, ErrBundleSignature) {
		t.Errorf("swapped key: %v", err)
	}
	extended := bob.bundle
	extended.NotAfter = extended.NotAfter.Add(time.Hour)
	if err := VerifyBundle(bob.pub, extended, testNow); !errors.Is(err, ErrBundleSignature) {
		t.Errorf("extended not_after: %v", err)
	}
	// Seal refuses a forged or expired bundle.
	if _, err := Seal(alice.sig, bob.pub, forged, []byte("x"), "", WithTime(testNow)); !errors.Is(err, ErrBundleSignature) {
		t.Errorf("Seal with a forged bundle: %v", err)
	}
	at := bob.bundle.NotAfter
	if err := VerifyBundle(bob.pub, bob.bundle, at.Add(-time.Second)); err != nil {
		t.Errorf("one second before not_after: %v", err)
	}
	if _, err := Seal(alice.sig, bob.pub, bob.bundle, []byte("x"), "", WithTime(at)); !errors.Is(err, ErrBundleExpired) {
		t.Errorf("Seal at not_after: %v, want ErrBundleExpired", err)
	}
	// JSON round trip and strictness.
	raw, _ := json.Marshal(bob.bundle)
	var back KeyBundle
	if err := json.Unmarshal(raw, &back); err != nil || VerifyBundle(bob.pub, back, testNow) != nil {
		t.Fatalf("bundle JSON round trip: %v (%s)", err, raw)
	}
	for _, bad := range []string{
		`{"x25519":"AA","not_after":1,"sig":"AA"}`,
		strings.Replace(string(raw), `"not_after"`, `"extra":1,"not_after"`, 1),
		strings.Replace(string(raw), `{`, `{"sig":"x",`, 1),
		`{"x25519":"` + b64.EncodeToString(bob.bundle.X25519) + `","not_after":0,"sig":"` + b64.EncodeToString(bob.bundle.Sig) + `"}`,
	} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("bundle %s accepted", bad)
		}
	}
}

// TestPaddingBuckets: bodies of 1 and 200 bytes give the same ct length; the bucket
// edges move it.
func TestPaddingBuckets(t *testing.T) {
	alice, bob := newParty(t), newParty(t)
	ctLen := func(n int) int { return len(seal(t, alice, bob, strings.Repeat("a", n)).CT) }
	if a, b := ctLen(1), ctLen(200); a != b {
		t.Fatalf("ct lengths %d (1 byte) and %d (200 bytes) differ", a, b)
	}
	ctype := len("text/plain")
	edge := 256 - 1 - ctype - 4 // the largest body in the first bucket
	if a, b := ctLen(edge), ctLen(edge+1); a == b || a != innerFixedSize+256+aeadTagSize || b != innerFixedSize+1024+aeadTagSize {
		t.Fatalf("bucket edge: %d and %d", a, b)
	}
	for _, c := range []struct{ n, want int }{
		{0, 256}, {256, 256}, {257, 1024}, {4096, 4096}, {65536, 65536}, {65537, 131072}, {maxVariableSize, 17 * 65536},
	} {
		if got := paddedSize(c.n); got != c.want {
			t.Errorf("paddedSize(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

func TestSealLimits(t *testing.T) {
	alice, bob := newParty(t), newParty(t)
	big := make([]byte, MaxBodySize)
	env, err := Seal(alice.sig, bob.pub, bob.bundle, big, strings.Repeat("t", MaxContentTypeLen), WithTime(testNow))
	if err != nil {
		t.Fatalf("body of MaxBodySize: %v", err)
	}
	if len(env.CT) != MaxCiphertextSize {
		t.Errorf("largest ct %d, MaxCiphertextSize %d", len(env.CT), MaxCiphertextSize)
	}
	raw, _ := json.Marshal(env)
	if _, err := DecodeEnvelope(raw); err != nil {
		t.Errorf("largest envelope does not decode: %v", err)
	}
	if n := len(raw) + len(`{"op":"deliver","envelope":}`); n > FrameSizeForBody(MaxBodySize, MaxContentTypeLen) || FrameSizeForBody(MaxBodySize, MaxContentTypeLen) > MaxFrameBytesLimit {
		t.Errorf("deliver frame of %d bytes, FrameSizeForBody %d, MaxFrameBytesLimit %d", n, FrameSizeForBody(MaxBodySize, MaxContentTypeLen), MaxFrameBytesLimit)
	}
	if _, err := Seal(alice.sig, bob.pub, bob.bundle, make([]byte, MaxBodySize+1), "", WithTime(testNow)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("body over MaxBodySize: %v", err)
	}
	if _, err := Seal(alice.sig, bob.pub, bob.bundle, nil, strings.Repeat("t", MaxContentTypeLen+1), WithTime(testNow)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("content type over the limit: %v", err)
	}
	if _, err := Seal(alice.sig, bob.pub, bob.bundle, nil, "a\nb", WithTime(testNow)); !errors.Is(err, ErrMalformed) {
		t.Errorf("content type with a newline: %v", err)
	}
	if _, err := Seal(alice.sig, bob.pub, bob.bundle, nil, "", WithTime(testNow), WithTTL(time.Millisecond)); err == nil {
		t.Error("ttl under a second accepted")
	}
}

// TestMaxBodyForFrame: the largest body for a frame cap seals into a deliver request
// that fits it, and one byte more does not.
func TestMaxBodyForFrame(t *testing.T) {
	alice, bob := newParty(t), newParty(t)
	const ctype = "application/octet-stream"
	for _, frame := range []int{DefaultMaxFrameBytes, 4 << 10, 1536 << 10} {
		n := MaxBodyForFrame(frame, len(ctype))
		if n < 0 {
			t.Fatalf("frame %d: no body fits", frame)
		}
		size := func(n int) int {
			env, err := Seal(alice.sig, bob.pub, bob.bundle, make([]byte, n), ctype, WithTime(testNow), WithTTL(DefaultMaxTTL))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(deliverRequest{Op: OpDeliver, Envelope: env})
			return len(b)
		}
		if got := size(n); got > frame {
			t.Errorf("frame %d: MaxBodyForFrame %d gives a %d-byte request", frame, n, got)
		}
		if n < MaxBodySize {
			if got := size(n + 1); got <= frame {
				t.Errorf("frame %d: a body of %d bytes (one over MaxBodyForFrame) still fits (%d bytes)", frame, n+1, got)
			}
		}
		t.Logf("frame cap %d: largest body %d", frame, n)
	}
	if got := MaxBodyForFrame(1536<<10, 255); got != MaxBodySize {
		t.Errorf("1536 KiB frames carry %d-byte bodies, want MaxBodySize", got)
	}
}

func TestNewX25519KeyClearsInput(t *testing.T) {
	k, _ := ecdh.X25519().GenerateKey(rand.Reader)
	raw := k.Bytes()
	got, err := NewX25519Key(raw)
	if err != nil || !got.Equal(k) {
		t.Fatalf("NewX25519Key: %v", err)
	}
	if !bytes.Equal(raw, make([]byte, 32)) {
		t.Fatal("raw key bytes not cleared")
	}
}

func TestDecodeEnvelopeStrict(t *testing.T) {
	alice, bob := newParty(t), newParty(t)
	env, err := Seal(alice.sig, bob.pub, bob.bundle, []byte("x"), "t", WithTime(testNow), WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(env)
	s := string(raw)
	for name, bad := range map[string]string{
		"unknown field":  strings.Replace(s, `"v":1`, `"v":1,"x":1`, 1),
		"duplicate key":  strings.Replace(s, `"v":1`, `"v":1,"v":1`, 1),
		"uppercase key":  strings.Replace(s, `"v":1`, `"V":1`, 1),
		"version 2":      strings.Replace(s, `"v":1`, `"v":2`, 1),
		"suite":          strings.Replace(s, `[32,1,3]`, `[32,1,1]`, 1),
		"suite of 2":     strings.Replace(s, `[32,1,3]`, `[32,1]`, 1),
		"ttl 0":          strings.Replace(s, `"ttl":3600`, `"ttl":0`, 1),
		"negative ttl":   strings.Replace(s, `"ttl":3600`, `"ttl":-1`, 1),
		"padded base64":  strings.Replace(s, `"enc":"`+b64.EncodeToString(env.Enc), `"enc":"`+b64.EncodeToString(env.Enc)+"=", 1),
		"short id":       strings.Replace(s, `"id":"`+b64.EncodeToString(env.ID[:]), `"id":"AAAA`, 1),
		"bad to":         strings.Replace(s, `"to":"`+env.To, `"to":"`+env.To[:51], 1),
		"upper-case to":  strings.Replace(s, `"to":"`+env.To, `"to":"`+strings.ToUpper(env.To), 1),
		"pk: to":         strings.Replace(s, `"to":"`+env.To, `"to":"pk:`+env.To, 1),
		"trailing value": s + `{}`,
		"no ts":          strings.Replace(s, `"ts":`, `"tz":`, 1),
	} {
		if _, err := DecodeEnvelope([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
