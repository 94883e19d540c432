package ssh

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// MaxForwardSpecLength is the longest spec ParseForwardSpec accepts, in bytes;
// it is checked before anything else.
const MaxForwardSpecLength = 1024

// maxSpecErrorText bounds the spec text an ErrInvalidSpec error quotes.
const maxSpecErrorText = 200

// ErrInvalidSpec is wrapped by every error of ParseForwardSpec. Such an error's
// message is exactly "invalid spec " followed by the spec (clipped to 200 bytes),
// optionally followed by ": " and the reason.
var ErrInvalidSpec = errors.New("invalid spec")

// ForwardSpec is a -L or -R forward: listen on BindHost:BindPort and connect each
// accepted connection to Host:Port (on the other side of the SSH connection).
type ForwardSpec struct {
	// BindHost is the address to listen on, such as "localhost" or "::1" (kept
	// without brackets).
	BindHost string
	// BindPort is the port to listen on; 0 asks for any free port.
	BindPort uint16
	// Host is the destination host name or IP literal (kept without brackets).
	Host string
	// Port is the destination port.
	Port uint16
}

// ParseForwardSpec parses the -L/-R syntax "bind_addr:bind_port:host:port":
// exactly four ':'-separated parts, non-empty hosts of printable ASCII of at most
// MaxHostLength bytes, and ports in decimal (the bind port 0..65535, 0 for any free
// port; the destination port 1..65535; digits only: no sign, no
// spaces). An IP literal may be written in brackets, as IPv6 must be:
// "[::1]:8080:[::1]:80"; the brackets are not kept. Every error wraps
// ErrInvalidSpec.
func ParseForwardSpec(s string) (ForwardSpec, error) {
	if len(s) > MaxForwardSpecLength {
		return ForwardSpec{}, &specError{spec: s, reason: "longer than " + strconv.Itoa(MaxForwardSpecLength) + " bytes"}
	}
	parts, reason := splitForwardSpec(s)
	if reason != "" {
		return ForwardSpec{}, &specError{spec: s, reason: reason}
	}
	var f ForwardSpec
	var ok bool
	if f.BindHost, reason = specHost(parts[0]); reason != "" {
		return ForwardSpec{}, &specError{spec: s, reason: "bind address: " + reason}
	}
	if f.BindPort, ok = specPort(parts[1]); !ok {
		return ForwardSpec{}, &specError{spec: s, reason: "bind port: want a decimal port 0..65535"}
	}
	if f.Host, reason = specHost(parts[2]); reason != "" {
		return ForwardSpec{}, &specError{spec: s, reason: "host: " + reason}
	}
	if f.Port, ok = specPort(parts[3]); !ok || f.Port == 0 {
		return ForwardSpec{}, &specError{spec: s, reason: "port: want a decimal port 1..65535"}
	}
	return f, nil
}

// String returns the spec in the syntax ParseForwardSpec parses back to f, with
// brackets around IPv6 literals.
func (f ForwardSpec) String() string {
	return bracketHost(f.BindHost) + ":" + strconv.Itoa(int(f.BindPort)) + ":" + bracketHost(f.Host) + ":" + strconv.Itoa(int(f.Port))
}

// BindAddress returns BindHost:BindPort as net.JoinHostPort writes it, ready for
// net.Listen.
func (f ForwardSpec) BindAddress() string {
	return net.JoinHostPort(f.BindHost, strconv.Itoa(int(f.BindPort)))
}

// TargetAddress returns Host:Port as net.JoinHostPort writes it.
func (f ForwardSpec) TargetAddress() string {
	return net.JoinHostPort(f.Host, strconv.Itoa(int(f.Port)))
}

// specPart is one ':'-separated part of a spec; bracketed reports "[...]".
type specPart struct {
	text      string
	bracketed bool
}

// splitForwardSpec splits s into exactly four parts; ':' inside brackets does not
// separate. reason is empty on success.
func splitForwardSpec(s string) (parts [4]specPart, reason string) {
	const want = "want bind_addr:bind_port:host:port"
	n := 0
	rest := s
	for {
		if n == len(parts) {
			return parts, want
		}
		var p specPart
		if strings.HasPrefix(rest, "[") {
			j := strings.IndexByte(rest, ']')
			if j < 0 {
				return parts, "unbalanced brackets"
			}
			p = specPart{text: rest[1:j], bracketed: true}
			rest = rest[j+1:]
			if rest != "" && rest[0] != ':' {
				return parts, "text after ']'"
			}
		} else if j := strings.IndexByte(rest, ':'); j >= 0 {
			p, rest = specPart{text: rest[:j]}, rest[j:]
		} else {
			p, rest = specPart{text: rest}, ""
		}
		parts[n] = p
		n++
		if rest == "" {
			break
		}
		rest = rest[1:] // the ':'
	}
	if n != len(parts) {
		return parts, want
	}
	return parts, ""
}

// specHost validates a host part; reason is empty on success.
func specHost(p specPart) (string, string) {
	if p.text == "" {
		return "", "empty"
	}
	if len(p.text) > MaxHostLength {
		return "", "longer than " + strconv.Itoa(MaxHostLength) + " bytes"
	}
	for i := 0; i < len(p.text); i++ {
		if c := p.text[i]; c <= ' ' || c >= 0x7f || c == '[' || c == ']' {
			return "", "space, control, non-ASCII byte or stray bracket"
		}
	}
	if p.bracketed {
		if _, err := netip.ParseAddr(p.text); err != nil {
			return "", "brackets around something other than an IP address"
		}
	}
	return p.text, ""
}

// specPort parses a port part, which may not be bracketed.
func specPort(p specPart) (uint16, bool) {
	if p.bracketed {
		return 0, false
	}
	return parsePort(p.text)
}

// bracketHost puts an IPv6 literal (any host holding ':') in brackets.
func bracketHost(h string) string {
	if strings.IndexByte(h, ':') >= 0 {
		return "[" + h + "]"
	}
	return h
}

// specError is ParseForwardSpec's error: "invalid spec <spec>[: reason]".
type specError struct {
	spec, reason string
}

// Error returns "invalid spec <spec>", followed by ": reason" when there is one.
func (e *specError) Error() string {
	msg := "invalid spec " + clipText(e.spec, maxSpecErrorText)
	if e.reason != "" {
		msg += ": " + e.reason
	}
	return msg
}

// Is reports whether target is ErrInvalidSpec.
func (e *specError) Is(target error) bool { return target == ErrInvalidSpec }
