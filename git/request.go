package git

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Services a request may name.
const (
	ServiceUploadPack    = "git-upload-pack"
	ServiceReceivePack   = "git-receive-pack"
	ServiceUploadArchive = "git-upload-archive"
)

// MaxPktLine is the largest pkt-line git allows (length prefix included).
const MaxPktLine = 65520

// Request is a parsed git-daemon request line.
type Request struct {
	// Service is ServiceUploadPack, ServiceReceivePack or ServiceUploadArchive.
	Service string
	// Path is the repository path as sent, before resolution.
	Path string
	// Host is the host=<h> parameter ("" when absent).
	Host string
	// Version is the protocol version asked for in the extra parameters (0 or 2).
	Version int
}

// readPkt reads one pkt-line payload of at most limit bytes; a flush packet is a nil
// payload. The length is checked before anything is allocated.
func readPkt(r io.Reader, limit int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
	if err != nil {
		return nil, fmt.Errorf("%w: pkt-line length %q", ErrBadRequest, hdr[:])
	}
	switch {
	case n == 0:
		return nil, nil
	case n < 4:
		return nil, fmt.Errorf("%w: pkt-line length %d", ErrBadRequest, n)
	case int(n)-4 > limit:
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrRequestTooLong, n-4, limit)
	}
	buf := make([]byte, n-4)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// pkt encodes payload as one pkt-line.
func pkt(payload string) []byte {
	return []byte(fmt.Sprintf("%04x%s", len(payload)+4, payload))
}

// ReadRequest reads and parses the request pkt-line that starts an alknet/git stream;
// a line longer than limit bytes is refused before it is read.
func ReadRequest(r io.Reader, limit int) (Request, error) {
	line, err := readPkt(r, limit)
	if err != nil {
		return Request{}, err
	}
	if line == nil {
		return Request{}, fmt.Errorf("%w: flush packet instead of a request", ErrBadRequest)
	}
	return ParseRequest(line)
}

// ParseRequest parses a git-daemon request line (the pkt-line payload):
// "<service> <path>\x00[host=<h>\x00][\x00<param>\x00...]". The only extra parameter
// acted on is "version=2".
func ParseRequest(line []byte) (Request, error) {
	var req Request
	cmd, rest, ok := bytes.Cut(line, []byte{0})
	if !ok {
		cmd, rest = bytes.TrimSuffix(line, []byte("\n")), nil
	}
	service, p, ok := strings.Cut(string(cmd), " ")
	if !ok {
		return req, fmt.Errorf("%w: no path", ErrBadRequest)
	}
	switch service {
	case ServiceUploadPack, ServiceReceivePack, ServiceUploadArchive:
	default:
		return req, fmt.Errorf("%w: unknown service", ErrBadRequest)
	}
	if p == "" {
		return req, fmt.Errorf("%w: empty path", ErrBadRequest)
	}
	req.Service, req.Path = service, p
	// host=<h>\0, then optionally \0 and extra parameters each ending in \0.
	if len(rest) > 0 && rest[0] != 0 {
		h, r2, ok := bytes.Cut(rest, []byte{0})
		if !ok || !bytes.HasPrefix(h, []byte("host=")) {
			return req, fmt.Errorf("%w: bad host parameter", ErrBadRequest)
		}
		req.Host, rest = string(h[len("host="):]), r2
	}
	if len(rest) > 0 {
		if rest[0] != 0 {
			return req, fmt.Errorf("%w: bad extra parameters", ErrBadRequest)
		}
		for _, param := range bytes.Split(rest[1:], []byte{0}) {
			if string(param) == "version=2" {
				req.Version = 2
			}
		}
	}
	return req, nil
}

// ParseCommand parses an SSH exec command line strictly: one of the verbs
// git-upload-pack, git-receive-pack, git-upload-archive (or "git upload-pack" etc.),
// one space, and exactly one single-quoted argument without quotes, NUL or control
// characters inside. It returns the service (ServiceUploadPack, ...) and the path.
func ParseCommand(cmd string) (service, path string, err error) {
	if len(cmd) > MaxPktLine {
		return "", "", fmt.Errorf("%w: command too long", ErrBadRequest)
	}
	verb, arg, ok := strings.Cut(cmd, " '")
	if !ok {
		return "", "", fmt.Errorf("%w: want <git-verb> '<path>'", ErrBadRequest)
	}
	switch verb {
	case "git-upload-pack", "git upload-pack":
		service = ServiceUploadPack
	case "git-receive-pack", "git receive-pack":
		service = ServiceReceivePack
	case "git-upload-archive", "git upload-archive":
		service = ServiceUploadArchive
	default:
		return "", "", fmt.Errorf("%w: command not allowed", ErrBadRequest)
	}
	if len(arg) < 2 || !strings.HasSuffix(arg, "'") {
		return "", "", fmt.Errorf("%w: want one single-quoted path", ErrBadRequest)
	}
	path = arg[:len(arg)-1]
	for i := 0; i < len(path); i++ {
		if c := path[i]; c == '\'' || c < 0x20 || c == 0x7f {
			return "", "", fmt.Errorf("%w: want one single-quoted path", ErrBadRequest)
		}
	}
	return service, path, nil
}
