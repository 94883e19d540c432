package git

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/pktline"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
)

// Scheme is the URL scheme this package's documentation installs a Transport under:
// alknet://HOST:PORT/org/name.git.
const Scheme = "alknet"

// DefaultClientIdleTimeout is how long a Transport session waits for its stream to
// carry a byte when Transport.IdleTimeout is zero: twice the server's default idle
// limit, so that the server's own timeout (and its message) normally comes first.
const DefaultClientIdleTimeout = 2 * time.Minute

// drainLimit is how much of an unread answer Close reads, waiting for the server to
// end its side before the connection is closed; past it Close just closes.
const drainLimit = 64 << 10

// DialFunc connects to the alknet node at addr ("host:port", from the URL) for the
// ALPN alknet/git. The Transport owns the connection it returns and closes it when the
// session ends.
type DialFunc func(ctx context.Context, addr string) (*core.Connection, error)

// Dialer returns a DialFunc that dials with endpoint.Dial, asking for ALPN, with opts:
// opts.TLS.Certificate is the identity the node authorises (the scopes git:read:<glob>
// and git:write:<glob> of its peer entry), opts.TLS.Pin (or CA verification) the node
// the client trusts.
func Dialer(opts endpoint.DialOptions) DialFunc {
	return func(ctx context.Context, addr string) (*core.Connection, error) {
		return endpoint.Dial(ctx, addr, ALPN, opts)
	}
}

// Transport is a go-git v5 client transport (transport.Transport) over the raw ALPN
// alknet/git, so that go-git clones, fetches, lists and pushes reach an alknet node
// as the identity of a TLS client certificate.
//
// go-git picks a transport by URL scheme from one process-wide table, so a program
// installs it once, in main (this package never does):
//
//	client.InstallProtocol(git.Scheme, git.NewTransport(git.Dialer(opts)))
//
// and then uses URLs of the form alknet://HOST:PORT/org/name.git (the port is
// required; "/org/name", "org/name.git" and "~/org/name.git" name the same repository).
// Each session (one clone, fetch, ls-remote or push) dials its own connection and
// runs on one QUIC stream of it; Close ends both. The context go-git passes
// (CloneContext, FetchContext, PushContext) bounds the dial and the whole session:
// cancelling it closes the stream and the operation returns an error wrapping the
// context's error. An AuthMethod is refused (transport.ErrInvalidAuthMethod): the
// identity is the certificate the DialFunc presents.
//
// Errors the node sends before the session starts ("ERR <message>") are *RemoteError
// values; errors.Is matches transport.ErrRepositoryNotFound and ErrNotFound for a
// missing or unreadable repository, transport.ErrAuthorizationFailed and ErrReadOnly
// for a push without write access, transport.ErrAuthenticationRequired and
// ErrUnauthenticated for an unknown certificate. A Transport is safe for concurrent
// use; its fields must not change once it is in use.
type Transport struct {
	// Dial connects to a node. Required.
	Dial DialFunc
	// IdleTimeout ends a session whose stream carried no byte either way for this
	// long, with an error wrapping ErrIdleTimeout (0: DefaultClientIdleTimeout;
	// negative: none, only the context bounds a session).
	IdleTimeout time.Duration
}

// NewTransport returns a Transport that connects with dial.
func NewTransport(dial DialFunc) *Transport {
	return &Transport{Dial: dial}
}

// RemoteError is an error line ("ERR <message>") a node sent instead of, or in the
// middle of, a pack session.
type RemoteError struct {
	// URL is the repository URL the session was for.
	URL string
	// Message is the node's text, without the "ERR " prefix.
	Message string
}

// Error names the URL and quotes the node.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("alknet/git %s: remote: %s", e.URL, e.Message)
}

// Unwrap returns the go-git and package sentinels matching Message, so that
// errors.Is(err, transport.ErrRepositoryNotFound) and errors.Is(err, ErrNotFound)
// both hold for a missing repository.
func (e *RemoteError) Unwrap() []error {
	m := e.Message
	switch {
	case strings.HasPrefix(m, ErrNotFound.Error()):
		return []error{transport.ErrRepositoryNotFound, ErrNotFound}
	case strings.HasPrefix(m, ErrReadOnly.Error()):
		return []error{transport.ErrAuthorizationFailed, ErrReadOnly}
	case strings.HasPrefix(m, ErrUnauthenticated.Error()):
		return []error{transport.ErrAuthenticationRequired, ErrUnauthenticated}
	case strings.HasPrefix(m, ErrTooManyOperations.Error()):
		return []error{ErrTooManyOperations}
	case strings.HasPrefix(m, ErrPackTooLarge.Error()):
		return []error{ErrPackTooLarge}
	case strings.HasPrefix(m, ErrIdleTimeout.Error()):
		return []error{ErrIdleTimeout}
	case strings.HasPrefix(m, ErrTimeout.Error()):
		return []error{ErrTimeout}
	}
	return nil
}

// NewUploadPackSession starts a clone, fetch or ls-remote session with ep. Nothing is
// dialed before the first call that takes a context.
func (t *Transport) NewUploadPackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.UploadPackSession, error) {
	return t.newSession(ServiceUploadPack, ep, auth)
}

// NewReceivePackSession starts a push session with ep. Nothing is dialed before the
// first call that takes a context.
func (t *Transport) NewReceivePackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.ReceivePackSession, error) {
	return t.newSession(ServiceReceivePack, ep, auth)
}

func (t *Transport) newSession(service string, ep *transport.Endpoint, auth transport.AuthMethod) (*session, error) {
	if auth != nil {
		return nil, fmt.Errorf("alknet/git: %w: the identity is the TLS client certificate", transport.ErrInvalidAuthMethod)
	}
	if t.Dial == nil {
		return nil, errors.New("alknet/git: Transport.Dial is nil")
	}
	if ep.Port <= 0 {
		return nil, fmt.Errorf("alknet/git: the URL of host %q has no port (want %s://HOST:PORT/org/name.git)", ep.Host, Scheme)
	}
	if ep.Path == "" || ep.Path == "/" || strings.ContainsAny(ep.Path, "\x00\n") {
		return nil, fmt.Errorf("alknet/git: %w: want a repository path such as /org/name.git", ErrBadRequest)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(ep.Host, "["), "]")
	addr := net.JoinHostPort(host, strconv.Itoa(ep.Port))
	line := service + " " + ep.Path + "\x00host=" + addr + "\x00"
	if len(line)+4 > MaxPktLine {
		return nil, fmt.Errorf("alknet/git: %w: %d bytes (limit %d)", ErrRequestTooLong, len(line)+4, MaxPktLine)
	}
	idle := t.IdleTimeout
	if idle == 0 {
		idle = DefaultClientIdleTimeout
	}
	// The URL in errors carries no user information (a password must not be logged).
	url := Scheme + "://" + addr + ep.Path
	if !strings.HasPrefix(ep.Path, "/") {
		url = Scheme + "://" + addr + "/" + ep.Path
	}
	return &session{dial: t.Dial, service: service, url: url, addr: addr, request: line, idle: idle}, nil
}

// session is one operation on one stream of its own connection. go-git drives it from
// one goroutine; a context or the idle timer may abort it from another.
type session struct {
	dial    DialFunc
	service string
	url     string
	addr    string
	request string
	idle    time.Duration

	conn  *core.Connection
	st    core.BiStream
	r     *bufio.Reader // the stream, through the session's Read
	adv   *packp.AdvRefs
	ran   bool // a pack request was sent
	ended bool // the server's side ended (io.EOF read)

	mu     sync.Mutex
	stops  []func() bool
	timer  *time.Timer
	closed bool

	cause atomic.Pointer[error] // why the session was aborted
}

// AdvertisedReferences is AdvertisedReferencesContext without a deadline.
func (s *session) AdvertisedReferences() (*packp.AdvRefs, error) {
	return s.AdvertisedReferencesContext(context.Background())
}

// AdvertisedReferencesContext dials, sends the request line and reads the references
// the node advertises (once per session). A repository without references is
// transport.ErrEmptyRemoteRepository for a fetch and an empty list for a push.
func (s *session) AdvertisedReferencesContext(ctx context.Context) (*packp.AdvRefs, error) {
	if s.adv != nil {
		return s.adv, nil
	}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	ar := packp.NewAdvRefs()
	if err := ar.Decode(s.r); err != nil {
		switch {
		case errors.Is(err, packp.ErrEmptyAdvRefs) && s.service == ServiceReceivePack:
		case errors.Is(err, packp.ErrEmptyAdvRefs):
			s.adv = ar // a flush answers the flush Close sends
			return nil, transport.ErrEmptyRemoteRepository
		case errors.Is(err, packp.ErrEmptyInput):
			return nil, s.fail("read references", io.ErrUnexpectedEOF)
		default:
			return nil, s.fail("read references", err)
		}
	}
	if s.service == ServiceUploadPack && ar.IsEmpty() {
		s.adv = ar
		return nil, transport.ErrEmptyRemoteRepository
	}
	transport.FilterUnsupportedCapabilities(ar.Capabilities)
	s.adv = ar
	return ar, nil
}

// start dials, opens the stream and sends the request line.
func (s *session) start(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("alknet/git %s: session closed", s.url)
	}
	if s.st != nil {
		return s.fail("start", errors.New("the session failed before"))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("alknet/git %s: %w", s.url, err)
	}
	conn, err := s.dial(ctx, s.addr)
	if err != nil {
		return fmt.Errorf("alknet/git %s: %w", s.url, err)
	}
	if conn == nil {
		return fmt.Errorf("alknet/git %s: the DialFunc returned no connection and no error", s.url)
	}
	st, err := conn.OpenBi(ctx)
	if err != nil {
		conn.Close(core.CloseNormal, "")
		return fmt.Errorf("alknet/git %s: open stream: %w", s.url, err)
	}
	s.mu.Lock()
	s.conn, s.st = conn, st
	s.r = bufio.NewReaderSize(readerFunc(s.read), 64<<10)
	if s.idle > 0 {
		s.timer = time.AfterFunc(s.idle, func() {
			s.abort(fmt.Errorf("%w: no data for %v", ErrIdleTimeout, s.idle))
		})
	}
	s.mu.Unlock()
	s.watch(ctx)
	if _, err := s.write(pkt(s.request)); err != nil {
		return s.fail("send request", err)
	}
	return nil
}

// watch aborts the session when ctx ends, until Close.
func (s *session) watch(ctx context.Context) {
	if ctx.Done() == nil {
		return
	}
	stop := context.AfterFunc(ctx, func() { s.abort(context.Cause(ctx)) })
	s.mu.Lock()
	s.stops = append(s.stops, stop)
	s.mu.Unlock()
}

// abort records why the session ends and unblocks its reads and writes: a deadline
// in the past where the stream has one, then the stream and connection are closed.
func (s *session) abort(cause error) {
	if cause == nil {
		cause = context.Canceled
	}
	if !s.cause.CompareAndSwap(nil, &cause) {
		return
	}
	s.mu.Lock()
	st, conn := s.st, s.conn
	s.mu.Unlock()
	if st != nil {
		if d, ok := st.(interface{ SetDeadline(time.Time) error }); ok {
			_ = d.SetDeadline(time.Unix(1, 0))
		}
		_ = st.Close()
	}
	if conn != nil {
		conn.Close(core.CloseNormal, "git operation aborted")
	}
}

// touch restarts the idle timer.
func (s *session) touch() {
	s.mu.Lock()
	if s.timer != nil && !s.closed {
		s.timer.Reset(s.idle)
	}
	s.mu.Unlock()
}

func (s *session) read(p []byte) (int, error) {
	n, err := s.st.Read(p)
	if n > 0 {
		s.touch()
	}
	if err == io.EOF {
		s.ended = true
	}
	if err != nil && err != io.EOF {
		if c := s.cause.Load(); c != nil {
			err = *c
		}
	}
	return n, err
}

func (s *session) write(p []byte) (int, error) {
	n, err := s.st.Write(p)
	if n > 0 {
		s.touch()
	}
	if err != nil {
		if c := s.cause.Load(); c != nil {
			err = *c
		}
	}
	return n, err
}

// fail wraps err with the URL and what failed, turning an error line into a
// *RemoteError and a read or write cut short by an abort into its cause.
func (s *session) fail(what string, err error) error {
	var el *pktline.ErrorLine
	if errors.As(err, &el) {
		return &RemoteError{URL: s.url, Message: el.Text}
	}
	// A node refusing an unknown certificate may close the connection before its
	// "ERR unauthenticated" line is read.
	var ce *core.CloseError
	if errors.As(err, &ce) && ce.Remote && ce.Code == core.CloseAuthRequired {
		return fmt.Errorf("alknet/git %s: %s: %w (%w)", s.url, what, err, transport.ErrAuthenticationRequired)
	}
	if c := s.cause.Load(); c != nil && !errors.Is(err, *c) {
		err = fmt.Errorf("%w (%w)", *c, err)
	}
	return fmt.Errorf("alknet/git %s: %s: %w", s.url, what, err)
}

// UploadPack sends the wants and haves, then "done", and returns the node's answer:
// its acknowledgements decoded, the pack (still side-band multiplexed when the request
// asked for side-band: go-git demultiplexes it) to be read from the response. Closing
// the response closes the session.
func (s *session) UploadPack(ctx context.Context, req *packp.UploadPackRequest) (*packp.UploadPackResponse, error) {
	if req.IsEmpty() {
		return nil, transport.ErrEmptyUploadPackRequest
	}
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("alknet/git %s: %w", s.url, err)
	}
	if _, err := s.AdvertisedReferencesContext(ctx); err != nil {
		return nil, err
	}
	s.watch(ctx)
	s.ran = true
	w := writerFunc(s.write)
	if err := req.UploadRequest.Encode(w); err != nil {
		return nil, s.fail("send wants", err)
	}
	if err := req.UploadHaves.Encode(w, true); err != nil {
		return nil, s.fail("send haves", err)
	}
	if err := pktline.NewEncoder(w).Encodef("done\n"); err != nil {
		return nil, s.fail("send done", err)
	}
	if err := s.st.CloseWrite(); err != nil {
		return nil, s.fail("send done", err)
	}
	// go-git's decoder takes a stream that ends here for an empty answer.
	if _, err := s.r.Peek(4); err != nil {
		if err == io.EOF {
			err = fmt.Errorf("%w: the node ended the stream without an answer", io.ErrUnexpectedEOF)
		}
		return nil, s.fail("read acknowledgements", err)
	}
	res := packp.NewUploadPackResponse(req)
	if err := res.Decode(sessionReadCloser{s}); err != nil {
		return nil, s.fail("read acknowledgements", err)
	}
	return res, nil
}

// ReceivePack sends the reference updates and the pack, then reads the node's report
// (through side-band when the request asked for it, progress to req.Progress). A
// refused command is the report's error, with the report.
func (s *session) ReceivePack(ctx context.Context, req *packp.ReferenceUpdateRequest) (*packp.ReportStatus, error) {
	if _, err := s.AdvertisedReferencesContext(ctx); err != nil {
		return nil, err
	}
	s.watch(ctx)
	s.ran = true
	if err := req.Encode(writerFunc(s.write)); err != nil {
		return nil, s.fail("send pack", err)
	}
	if err := s.st.CloseWrite(); err != nil {
		return nil, s.fail("send pack", err)
	}
	if !req.Capabilities.Supports(capability.ReportStatus) {
		if _, err := io.Copy(io.Discard, s.r); err != nil {
			return nil, s.fail("read answer", err)
		}
		return nil, nil
	}
	var r io.Reader = s.r
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		d := sideband.NewDemuxer(sideband.Sideband64k, r)
		d.Progress = req.Progress
		r = d
	case req.Capabilities.Supports(capability.Sideband):
		d := sideband.NewDemuxer(sideband.Sideband, r)
		d.Progress = req.Progress
		r = d
	}
	report := packp.NewReportStatus()
	if err := report.Decode(r); err != nil {
		return nil, s.fail("read report", err)
	}
	if err := report.Error(); err != nil {
		return report, fmt.Errorf("alknet/git %s: %w", s.url, err)
	}
	return report, nil
}

// Close ends the session: a session that read the references but sent no request
// says so with a flush packet; then the stream is half-closed, up to drainLimit bytes
// of the answer are read so that the node finishes its side, and the stream and the
// connection are closed. Close is idempotent.
func (s *session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	stops := s.stops
	s.stops = nil
	if s.timer != nil {
		s.timer.Stop()
	}
	st, conn := s.st, s.conn
	s.mu.Unlock()
	if st == nil {
		return nil
	}
	aborted := s.cause.Load() != nil
	if !aborted {
		if !s.ran && s.adv != nil {
			_, _ = s.write(pktline.FlushPkt)
		}
		_ = st.CloseWrite()
		if !s.ended {
			// Bounded by the size and, when the node stays silent, by the contexts
			// still watched and the idle timer, which are stopped only after this.
			s.mu.Lock()
			if s.timer != nil {
				s.timer.Reset(s.idle)
			}
			s.mu.Unlock()
			_, _ = io.CopyN(io.Discard, s.r, drainLimit)
		}
	}
	for _, stop := range stops {
		stop()
	}
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	_ = st.Close()
	conn.Close(core.CloseNormal, "")
	return nil
}

// sessionReadCloser reads the session's stream; closing it closes the session.
type sessionReadCloser struct{ s *session }

func (r sessionReadCloser) Read(p []byte) (int, error) { return r.s.r.Read(p) }
func (r sessionReadCloser) Close() error               { return r.s.Close() }

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
