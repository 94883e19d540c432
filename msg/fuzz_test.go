package msg

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"testing"
)

// FuzzFrameDecode feeds arbitrary bytes to the server's request path (the frame reader
// and the strict request decoder) and to the client's response decoder. Neither may panic, a frame is never longer than its
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
		_, _ = decodeClientResponse(frame) // the client's side: no panic either
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

// FuzzStrictJSON checks the strict reader against encoding/json: whatever it accepts is
// valid JSON, and an object it reads has the members encoding/json sees.
func FuzzStrictJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":[true,false,null,"x\u00e9\n"],"c":{"d":-0.5e+3}}`,
		`{"v":1,"v":2}`, `{"A":1}`, `[1,2`, `{"a":"\ud800"}`, `"s"`, `{}`, `{"a":01}`, ` {"a" : [ ] } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := checkJSON(data); err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("strict reader accepted invalid JSON %q", data)
		}
		ms, err := readObject(data)
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil || len(m) != len(ms) {
			t.Fatalf("%q: encoding/json sees %d members (%v), the reader %d", data, len(m), err, len(ms))
		}
		for _, mb := range ms {
			if !bytes.Equal(bytes.TrimSpace(m[mb.key]), mb.val) {
				t.Fatalf("%q: member %q is %q, encoding/json says %q", data, mb.key, mb.val, m[mb.key])
			}
			if mb.val[0] == '"' {
				var want string
				_ = json.Unmarshal(mb.val, &want)
				if got, err := jsonString("f", mb.val); err != nil || got != want {
					t.Fatalf("%q: string %q decodes to %q (%v), want %q", data, mb.val, got, err, want)
				}
			}
		}
	})
}
