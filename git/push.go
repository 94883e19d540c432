package git

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"sync"
)

const zeroID = "0000000000000000000000000000000000000000"

// refCommand is one "<old> <new> <ref>" line of a push.
type refCommand struct {
	old, new, ref string
	refused       string // the rule that refuses it, or ""
}

// pushGuard sits between the client and the engine of a receive-pack: it reads the
// ref commands, checks them against the rules, and passes them on only when every
// one is allowed; then it passes the pack on, counting it against the limit.
type pushGuard struct {
	r       *bufio.Reader
	rules   Rules
	maxPack int64

	mu       sync.Mutex
	cmds     []refCommand
	caps     string
	refused  bool
	pending  []byte // commands read, not yet handed on
	checked  bool
	packSeen int64
}

// ErrGuard is not exported: a sentinel for "stop the engine, the guard answers".
var errRefused = fmt.Errorf("%w", ErrPushRefused)

func (g *pushGuard) Read(p []byte) (int, error) {
	if !g.checked {
		if err := g.readCommands(); err != nil {
			return 0, err
		}
		g.checked = true
		if g.refused {
			return 0, errRefused
		}
	}
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	n, err := g.r.Read(p)
	g.packSeen += int64(n)
	if g.maxPack > 0 && g.packSeen > g.maxPack {
		return 0, fmt.Errorf("%w (limit %d bytes)", ErrPackTooLarge, g.maxPack)
	}
	return n, err
}

// readCommands reads the command list (up to its flush packet), keeping its bytes.
func (g *pushGuard) readCommands() error {
	var raw bytes.Buffer
	for i := 0; ; i++ {
		if i > 10000 {
			return fmt.Errorf("%w: too many ref commands", ErrBadRequest)
		}
		line, err := readPkt(g.r, MaxPktLine-4)
		if err != nil {
			if i == 0 && err == io.EOF {
				return io.EOF // nothing to push (git ls-remote, up-to-date push)
			}
			return err
		}
		if line == nil {
			raw.WriteString("0000")
			break
		}
		raw.Write(pkt(string(line)))
		s := strings.TrimSuffix(string(line), "\n")
		if i == 0 {
			s, g.caps, _ = strings.Cut(s, "\x00")
		}
		if strings.HasPrefix(s, "shallow ") || strings.HasPrefix(s, "push-cert") {
			continue
		}
		f := strings.Fields(s)
		if len(f) != 3 || len(f[0]) != 40 || len(f[1]) != 40 {
			return fmt.Errorf("%w: bad ref command", ErrBadRequest)
		}
		c := refCommand{old: f[0], new: f[1], ref: f[2]}
		switch {
		case c.new == zeroID && !g.rules.AllowDeletes:
			c.refused = "deleting refs is not allowed (rule: no ref deletion)"
		case strings.HasPrefix(c.ref, "refs/tags/") && c.old != zeroID && !g.rules.AllowTagOverwrite:
			c.refused = "tags cannot be moved (rule: no tag overwrite)"
		}
		if c.refused != "" {
			g.refused = true
		}
		g.cmds = append(g.cmds, c)
	}
	g.pending = raw.Bytes()
	return nil
}

// hasCap reports whether the client asked for capability c.
func (g *pushGuard) hasCap(c string) bool {
	for _, f := range strings.Fields(g.caps) {
		if f == c {
			return true
		}
	}
	return false
}

// answerRefused reads and discards the pack the client sends (if any command is not
// a deletion), then writes the report-status naming the rule of each refused ref.
func (g *pushGuard) answerRefused(w io.Writer) error {
	needPack := false
	for _, c := range g.cmds {
		if c.new != zeroID {
			needPack = true
		}
	}
	if needPack {
		if err := skipPack(g.r, g.maxPack); err != nil {
			return err
		}
	}
	var rep bytes.Buffer
	rep.Write(pkt("unpack ok\n"))
	for _, c := range g.cmds {
		reason := c.refused
		if reason == "" {
			reason = "another ref of this push was refused"
		}
		rep.Write(pkt("ng " + c.ref + " " + reason + "\n"))
	}
	rep.WriteString("0000")
	if !g.hasCap("report-status") && !g.hasCap("report-status-v2") {
		return nil
	}
	if g.hasCap("side-band-64k") || g.hasCap("side-band") {
		var out bytes.Buffer
		b := rep.Bytes()
		for len(b) > 0 {
			n := min(len(b), 900)
			out.Write(pkt("\x01" + string(b[:n])))
			b = b[n:]
		}
		out.WriteString("0000")
		_, err := w.Write(out.Bytes())
		return err
	}
	_, err := w.Write(rep.Bytes())
	return err
}

// skipPack reads one pack (header, objects, trailer) from r, at most limit bytes.
func skipPack(r *bufio.Reader, limit int64) error {
	cr := &countingReader{r: r, limit: limit}
	br := bufio.NewReader(cr)
	var hdr [12]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return err
	}
	if string(hdr[:4]) != "PACK" {
		return fmt.Errorf("%w: not a pack", ErrBadRequest)
	}
	count := binary.BigEndian.Uint32(hdr[8:])
	for i := uint32(0); i < count; i++ {
		b, err := br.ReadByte()
		if err != nil {
			return err
		}
		typ := (b >> 4) & 7
		for b&0x80 != 0 {
			if b, err = br.ReadByte(); err != nil {
				return err
			}
		}
		switch typ {
		case 6: // ofs-delta: a varint offset
			for {
				if b, err = br.ReadByte(); err != nil {
					return err
				}
				if b&0x80 == 0 {
					break
				}
			}
		case 7: // ref-delta: the base object id
			if _, err := br.Discard(20); err != nil {
				return err
			}
		}
		zr, err := zlib.NewReader(br)
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, zr); err != nil {
			return err
		}
		_ = zr.Close()
	}
	_, err := br.Discard(20)
	return err
}

type countingReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.limit > 0 && c.n > c.limit {
		return n, fmt.Errorf("%w (limit %d bytes)", ErrPackTooLarge, c.limit)
	}
	return n, err
}
