package openapi

import (
	"bytes"

	"github.com/alknet/alknet/call"
)

// sseEvent is one dispatched server-sent event.
type sseEvent struct {
	event string // the "event:" field, "" for the default
	data  string // the "data:" lines joined with "\n"
}

// sseParser is an incremental parser of the text/event-stream format (WHATWG HTML
// §9.2.6): it is fed chunks as they arrive, cut anywhere, and dispatches an event
// at each blank line that follows at least one data line. Lines end with CRLF, LF
// or CR; a leading UTF-8 BOM is dropped; ":" lines are comments; "id" and "retry"
// are ignored; an event without data lines is not dispatched; an unterminated event
// at the end of the stream is dropped (call finish, which does nothing, or simply
// stop feeding).
type sseParser struct {
	maxLine int
	maxData int

	line    []byte // the current, unterminated line
	started bool   // the BOM check is done
	skipLF  bool   // the last byte was a CR: a following LF belongs to it

	event   string
	data    []byte
	hasData bool
}

// newSSEParser returns a parser refusing lines longer than maxLine bytes and
// events whose data exceeds maxData bytes.
func newSSEParser(maxLine, maxData int) *sseParser {
	return &sseParser{maxLine: maxLine, maxData: maxData}
}

var bom = []byte("\xEF\xBB\xBF")

// feed parses the next chunk, calling dispatch for each complete event; the first
// error, from dispatch or from a limit, is returned and the parser must not be
// fed again.
func (p *sseParser) feed(b []byte, dispatch func(sseEvent) error) error {
	for len(b) > 0 {
		if p.skipLF {
			p.skipLF = false
			if b[0] == '\n' {
				b = b[1:]
				continue
			}
		}
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			if err := p.appendLine(b); err != nil {
				return err
			}
			return nil
		}
		if err := p.appendLine(b[:i]); err != nil {
			return err
		}
		if b[i] == '\r' {
			p.skipLF = true
		}
		b = b[i+1:]
		if !p.started {
			p.started = true
			p.line = bytes.TrimPrefix(p.line, bom)
		}
		err := p.processLine(dispatch)
		if cap(p.line) > 64<<10 {
			p.line = nil
		} else {
			p.line = p.line[:0]
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// appendLine adds b to the current line, enforcing the line limit (which does not
// count a leading BOM).
func (p *sseParser) appendLine(b []byte) error {
	if p.started && len(p.line)+len(b) > p.maxLine {
		return p.lineTooLong()
	}
	p.line = append(p.line, b...)
	if !p.started {
		switch {
		case len(p.line) >= len(bom):
			p.started = true
			p.line = bytes.TrimPrefix(p.line, bom)
		case !bytes.HasPrefix(bom, p.line):
			p.started = true
		}
		if len(p.line) > p.maxLine {
			return p.lineTooLong()
		}
	}
	return nil
}

func (p *sseParser) lineTooLong() error {
	return call.Errorf(call.CodeInternal, "upstream SSE line exceeds the %d-byte limit", p.maxLine)
}

// processLine interprets one complete line.
func (p *sseParser) processLine(dispatch func(sseEvent) error) error {
	line := p.line
	if len(line) == 0 {
		if !p.hasData {
			p.event = ""
			return nil
		}
		data := p.data
		if len(data) > 0 && data[len(data)-1] == '\n' {
			data = data[:len(data)-1]
		}
		ev := sseEvent{event: p.event, data: string(data)}
		p.event, p.data, p.hasData = "", p.data[:0], false
		return dispatch(ev)
	}
	if line[0] == ':' {
		return nil
	}
	field, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		field, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(field) {
	case "data":
		if len(p.data)+len(value)+1 > p.maxData {
			return call.Errorf(call.CodeInternal, "upstream SSE event data exceeds the %d-byte limit", p.maxData)
		}
		p.data = append(p.data, value...)
		p.data = append(p.data, '\n')
		p.hasData = true
	case "event":
		p.event = string(value)
	}
	return nil
}
