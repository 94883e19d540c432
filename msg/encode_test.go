package msg

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"testing"
)

// TestEncodeRequestFrame: a delivery's frame, written in one pass, is byte for byte what
// encoding/json makes of the request, behind a correct length prefix; other requests
// go through encoding/json.
func TestEncodeRequestFrame(t *testing.T) {
	alice, bob := newParty(t), newParty(t)
	for _, size := range []int{0, 1, 1 << 10, 64 << 10} {
		env, err := Seal(alice.sig, bob.pub, bob.bundle, make([]byte, size), "text/plain; charset=\"utf-8\" <&>", WithTime(testNow))
		if err != nil {
			t.Fatal(err)
		}
		for _, req := range []any{deliverRequest{Op: OpDeliver, Envelope: env}, ackRequest{Op: OpAck, IDs: []string{"x"}}} {
			want, err := json.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			frame, err := encodeRequestFrame(req)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := writeFramed(&buf, frame); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			if n := binary.BigEndian.Uint32(got); int(n) != len(got)-frameHeaderSize {
				t.Fatalf("length prefix %d for a %d-byte body", n, len(got)-frameHeaderSize)
			}
			if !bytes.Equal(got[frameHeaderSize:], want) {
				t.Fatalf("%T body differs from encoding/json's:\n%.200q\n%.200q", req, got[frameHeaderSize:], want)
			}
			if _, err := decodeRequest(got[frameHeaderSize:]); err != nil {
				t.Fatalf("%T: the server refuses the frame: %v", req, err)
			}
		}
	}
	if err := writeFramed(&bytes.Buffer{}, make([]byte, frameHeaderSize)); err == nil {
		t.Fatal("writeFramed accepted an empty body")
	}
}

// TestEncodeResponse: responses are whole frames; a fetch response, written in one pass,
// has the body encoding/json makes of it.
func TestEncodeResponse(t *testing.T) {
	alice, bob := newParty(t), newParty(t)
	env, err := Seal(alice.sig, bob.pub, bob.bundle, make([]byte, 3000), "", WithTime(testNow))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := env.MarshalJSON()
	fr := &fetchResponse{OK: true, Envelopes: []fetchedEnvelope{{AcceptedAt: 1, ExpiresAt: 2, Envelope: data}, {AcceptedAt: 3, ExpiresAt: 4, Envelope: data}}, Next: "cur\"<sor>"}
	for _, resp := range []any{fr, &fetchResponse{OK: true, Envelopes: []fetchedEnvelope{}}, errorResponse{Error: errorf(CodeBadRequest, "bad")}} {
		want, err := json.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := writeFramed(&buf, encodeResponse(resp)); err != nil {
			t.Fatal(err)
		}
		got := buf.Bytes()
		if n := binary.BigEndian.Uint32(got); int(n) != len(got)-frameHeaderSize || !bytes.Equal(got[frameHeaderSize:], want) {
			t.Fatalf("%T: frame %.120q, want body %.120q", resp, got, want)
		}
	}
}
