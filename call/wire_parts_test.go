package call

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/alknet/alknet/core"
)

// An outgoing request carried in parts (a large input) has exactly the envelope and
// the frame of newRequest's, whatever its operation name, token and forwarded
// identity, and the frame limits of appendFrame.
func TestOutRequestParts(t *testing.T) {
	ff := &core.Identity{ID: "alice", Scopes: []string{"a"}}
	for _, size := range []int{requestPartsMin - 1, requestPartsMin, 100 << 10} {
		input := json.RawMessage(`"` + strings.Repeat("é", (size-2)/2) + `"`)
		for _, op := range []string{"ns/op", "/ns/op", `ns/"q"\op`} {
			for _, tok := range [][]byte{nil, []byte("tok")} {
				for _, f := range []*core.Identity{nil, ff} {
					want, err := newRequest("id-1", op, input, tok, f, true)
					if err != nil {
						t.Fatal(err)
					}
					r, err := newOutRequest("id-1", op, input, tok, f, true)
					if err != nil {
						t.Fatal(err)
					}
					if parts := r.head != nil; parts != (len(input) >= requestPartsMin) {
						t.Fatalf("input of %d bytes: in parts %v", len(input), parts)
					}
					if got := r.envelope(); got.Type != want.Type || got.ID != want.ID || !bytes.Equal(got.Payload, want.Payload) {
						t.Fatalf("op %q: envelope %.80q, want %.80q", op, got.Payload, want.Payload)
					}
					wantFrame, err := appendFrame([]byte("x"), want, 0)
					if err != nil {
						t.Fatal(err)
					}
					gotFrame, err := r.appendFrame([]byte("x"), 0)
					if err != nil || !bytes.Equal(gotFrame, wantFrame) {
						t.Fatalf("op %q, %d bytes: frame differs (%v)", op, len(input), err)
					}
					// One byte under the frame's length: refused, dst unchanged.
					limit := len(wantFrame) - 1 - 4 - 1
					if _, err := appendFrame(nil, want, limit); !errors.Is(err, ErrFrameTooLarge) {
						t.Fatalf("appendFrame at limit %d: %v", limit, err)
					}
					got, err := r.appendFrame([]byte("x"), limit)
					if !errors.Is(err, ErrFrameTooLarge) || string(got) != "x" {
						t.Fatalf("parts at limit %d: %q, %v", limit, got, err)
					}
				}
			}
		}
	}
	// Its errors are newRequest's.
	if _, err := newOutRequest("id", "", json.RawMessage(`"`+strings.Repeat("a", requestPartsMin)+`"`), nil, nil, true); !errors.Is(err, ErrPayloadInvalid) {
		t.Fatalf("empty name: %v", err)
	}
	if _, err := newOutRequest("id", "a/b", json.RawMessage(`"`+strings.Repeat("a", requestPartsMin)), nil, nil, true); !errors.Is(err, ErrPayloadInvalid) {
		t.Fatalf("invalid input: %v", err)
	}
	if _, err := newOutRequest("id", "a/b", json.RawMessage(`"`+strings.Repeat("a", requestPartsMin)+`"`), []byte{0xff}, nil, true); !errors.Is(err, ErrPayloadInvalid) {
		t.Fatalf("invalid token: %v", err)
	}
}
