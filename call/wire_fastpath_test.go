package call

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestAppendRespondedFrameMatchesAppendFrame checks that the subscription fast path
// writes the bytes the generic encoder writes, and refuses what it refuses.
func TestAppendRespondedFrameMatchesAppendFrame(t *testing.T) {
	for _, id := range []string{"s-1", "0b9e6c1a-5d4f-4e0e-9a7b-3c2d1f00aa01", `q"uote`, "tab\t", "é", ""} {
		for _, out := range []string{"", "null", `{"seq":1}`, `"x"`, `[1,2,3]`, ` { "a" : 1 } `} {
			want, werr := appendFrame([]byte("prefix"), NewResponded(id, json.RawMessage(out)), 0)
			got, gerr := appendRespondedFrame([]byte("prefix"), respondedFrameHead(id), json.RawMessage(out), 0)
			if werr != nil || gerr != nil || !bytes.Equal(got, want) {
				t.Errorf("id %q out %q: fast path %q (%v), appendFrame %q (%v)", id, out, got, gerr, want, werr)
			}
		}
	}
	// The limit, at its edge: a body of exactly max bytes goes, one more does not.
	base, _ := appendRespondedFrame(nil, respondedFrameHead("id"), json.RawMessage(`""`), 0)
	max := len(base) - 4 + 10
	for _, extra := range []int{10, 11} {
		out := json.RawMessage(`"` + strings.Repeat("x", extra) + `"`)
		got, err := appendRespondedFrame([]byte("p"), respondedFrameHead("id"), out, max)
		_, werr := appendFrame([]byte("p"), NewResponded("id", out), max)
		if (err == nil) != (werr == nil) || (err == nil) != (extra == 10) {
			t.Errorf("body of %d bytes, max %d: fast path %v, appendFrame %v", len(base)-4+extra, max, err, werr)
		}
		if err != nil && (!errors.Is(err, ErrFrameInvalid) || !errors.Is(err, ErrFrameTooLarge) || string(got) != "p") {
			t.Errorf("over the limit: %q, %v; want dst unchanged and ErrFrameTooLarge", got, err)
		}
	}
}
