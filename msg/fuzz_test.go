package msg

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"testing"
)

// FuzzFrameDecode feeds arbitrary bytes to the server's request path: the frame reader
// and the strict request decoder. Neither may panic, a frame is never longer than its
// cap, and a request that decodes re-encodes to one that decodes too.
func FuzzFrameDecode(f *testing.F) {
	for _, s := range []string{
		`{"op":"keys.get","mailbox":"ybndrfg8ejkmcpqxot1uwisza345h769ybndrfg8ejkmcpqxot1u"}`,
		`{"op":"fetch","limit":10,"wait_ms":1000,"after":"abc"}`,
		`{"op":"ack","ids":["AAAAAAAAAAAAAAAAAAAAAA"]}`,
		`{"op":"keys.put","bundle":{"x25519":"AA","not_after":1,"sig":"AA"}}`,
		`{"op":"deliver","envelope":{"v":1,"id":"AAAAAAAAAAAAAAAAAAAAAA","to":"x","ts":1,"suite":[32,1,3],"enc":"","ct":""}}`,
		`{"op":"fetch","op":"ack"}`,
		`{"op":"fetch","Limit":1}`,
	} {
		f.Add(binary.BigEndian.AppendUint32(nil, uint32(len(s))), []byte(s))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, []byte("x"))
	f.Add([]byte{0, 0, 0, 0}, []byte(nil))
	f.Fuzz(func(t *testing.T, prefix, body []byte) {
		const max = 4096
		frame, _, err := ReadFrame(bytes.NewReader(append(prefix, body...)), max, nil)
		if err != nil {
			return
		}
		if len(frame) > max || len(frame) == 0 {
			t.Fatalf("frame of %d bytes under a %d cap", len(frame), max)
		}
		req, err := decodeRequest(frame)
		if err != nil {
			return
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("decoded request does not encode: %v", err)
		}
		if _, err := decodeRequest(again); err != nil {
			t.Fatalf("re-encoded request %s does not decode: %v", again, err)
		}
	})
}

// FuzzOpen feeds arbitrary envelope JSON (seeded with real envelopes) to DecodeEnvelope
// and Open: no panic, and nothing but the genuine envelope opens.
func FuzzOpen(f *testing.F) {
	seed := func(n byte) []byte { return bytes.Repeat([]byte{n}, 32) }
	sender := ed25519.NewKeyFromSeed(seed(1))
	self := ed25519.NewKeyFromSeed(seed(2))
	x, err := ecdh.X25519().NewPrivateKey(seed(3))
	if err != nil {
		f.Fatal(err)
	}
	bundle, err := NewKeyBundle(self, x.PublicKey(), testNow.Add(24*60*60*1e9))
	if err != nil {
		f.Fatal(err)
	}
	selfPub := self.Public().(ed25519.PublicKey)
	bodies := []string{"", "hello", string(bytes.Repeat([]byte("z"), 300))}
	for _, body := range bodies {
		env, err := Seal(sender, selfPub, bundle, []byte(body), "text/plain", WithTime(testNow))
		if err != nil {
			f.Fatal(err)
		}
		raw, _ := json.Marshal(env)
		f.Add(raw)
	}
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := DecodeEnvelope(data)
		if err != nil {
			return
		}
		m, err := Open(x, selfPub, env)
		if err != nil {
			return
		}
		// Only genuine envelopes (the seeds, whatever their whitespace or key order)
		// open: from the sender, with one of the bodies sealed, signed at testNow.
		if !m.From.Equal(sender.Public()) || !m.Time.Equal(testNow) || m.ContentType != "text/plain" {
			t.Fatalf("opened a message from %x at %v (%q)", m.From, m.Time, m.ContentType)
		}
		for _, b := range bodies {
			if string(m.Body) == b {
				return
			}
		}
		t.Fatalf("opened a body that was never sealed: %q", m.Body)
	})
}
