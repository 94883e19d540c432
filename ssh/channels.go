package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/core"
)

// session is one authenticated SSH connection.
type session struct {
	srv       *Server
	cfg       *Config
	conn      *gossh.ServerConn
	id        core.Identity
	transport string
	log       *slog.Logger
	wg        sync.WaitGroup

	mu       sync.Mutex
	forwards map[string]net.Listener // tcpip-forward listeners by requested "addr:port"
	closed   bool
}

// channel dispatches one channel open request; every failure is that channel's only.
func (s *session) channel(ctx context.Context, nch gossh.NewChannel) {
	switch nch.ChannelType() {
	case "session":
		ch, reqs, err := nch.Accept()
		if err != nil {
			return
		}
		s.wg.Go(func() { s.serveSession(ctx, ch, reqs) })
	case "direct-tcpip":
		s.wg.Go(func() { s.directTCPIP(ctx, countedChannel{nch, &s.srv.stats.direct}) })
	default:
		_ = nch.Reject(gossh.UnknownChannelType, "unknown channel type")
	}
}

// serveSession answers a session channel's requests: exec and subsystem under their
// hooks, env for GIT_PROTOCOL alone (passed on in ExecRequest.Env); shell, pty, x11,
// agent forwarding, other env and everything else refused, with the channel (and the
// connection) kept up.
func (s *session) serveSession(ctx context.Context, ch gossh.Channel, reqs <-chan *gossh.Request) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var running sync.WaitGroup
	started := false
	var env []string
	for req := range reqs {
		if req.Type == "env" && !started {
			v, ok := acceptedEnv(req.Payload)
			if ok && len(env) < 4 {
				env = append(env, v)
			}
			if req.WantReply {
				_ = req.Reply(ok, nil)
			}
			continue
		}
		var run func()
		var refusal string
		if !started {
			switch req.Type {
			case "exec":
				run, refusal = s.startExec(ctx, ch, req, env)
			case "subsystem":
				run, refusal = s.startSubsystem(ctx, ch, req)
			}
		}
		switch {
		case started:
		case req.Type == "exec":
			s.srv.stats.exec.count(run != nil)
		case req.Type == "subsystem":
			s.srv.stats.subsystem.count(run != nil)
		}
		if run == nil && refusal != "" {
			// As OpenSSH's ForceCommand wrappers do: the request is taken, the reason
			// goes to the client's stderr and the "command" exits 126 (OpenSSH's client
			// drops what arrives with a failure reply, so a refusal would be silent).
			run = func() { s.refuse(ch, refusal) }
		}
		ok := run != nil
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
		switch {
		case ok:
			// Only after the reply: run closes the channel when the command ends.
			started = true
			running.Go(run)
		case !started && (req.Type == "exec" || req.Type == "subsystem"):
			// OpenSSH gives up on a refused command; close so it does not wait.
			_ = ch.Close()
		}
	}
	cancel()
	running.Wait()
	_ = ch.Close()
}

// startExec starts an exec request and returns what waits for it and reports its
// exit status; nil refuses the request: with a reason, the client is told it and the
// session ends with exit status RefusedExitStatus; without one (a malformed request) the
// request fails.
func (s *session) startExec(ctx context.Context, ch gossh.Channel, req *gossh.Request, env []string) (func(), string) {
	if s.cfg.Exec == nil {
		return nil, "exec refused: this server runs no commands"
	}
	var p struct{ Command string }
	if gossh.Unmarshal(req.Payload, &p) != nil {
		return nil, "" // malformed: a failure reply alone
	}
	wait, err := s.cfg.Exec.Start(ctx, ExecRequest{
		Identity: s.id.Clone(), User: s.conn.User(), Command: p.Command, Env: env,
		Stdin: ch, Stdout: ch, Stderr: ch.Stderr(),
	})
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelInfo, "exec refused", slog.String("identity", s.id.ID), slog.String("reason", err.Error()))
		return nil, "exec refused: " + execRefusal(err)
	}
	return func() {
		status := wait()
		_ = ch.CloseWrite()
		_, _ = ch.SendRequest("exit-status", false, gossh.Marshal(struct{ Status uint32 }{status}))
		_ = ch.Close()
	}, ""
}

// RefusedExitStatus is the exit status of a refused exec or subsystem request, as a
// shell reports a command it may not run (126), distinct from a command's own failure.
const RefusedExitStatus = 126

// refuse ends a session whose exec or subsystem request was refused: reason on
// stderr, exit status RefusedExitStatus, the channel closed.
func (s *session) refuse(ch gossh.Channel, reason string) {
	_, _ = io.WriteString(ch.Stderr(), reason+"\n")
	_ = ch.CloseWrite()
	_, _ = ch.SendRequest("exit-status", false, gossh.Marshal(struct{ Status uint32 }{RefusedExitStatus}))
	_ = ch.Close()
}

// execRefusal is what the client is told of an executor's refusal: the reason of an
// ErrExecDenied (which names no path, program location or system error; a program
// that failed to start is said to be so), else a generic text.
func execRefusal(err error) string {
	if !errors.Is(err, ErrExecDenied) {
		return "command not allowed"
	}
	reason, ok := strings.CutPrefix(err.Error(), ErrExecDenied.Error()+": ")
	switch {
	case !ok || reason == "" || reason == "exec refused":
		return "command not allowed"
	case strings.HasPrefix(reason, "start:"):
		return "the program could not be started"
	}
	return reason
}

// startSubsystem returns what serves a subsystem request; nil refuses it, as
// startExec does.
func (s *session) startSubsystem(ctx context.Context, ch gossh.Channel, req *gossh.Request) (func(), string) {
	var p struct{ Name string }
	if gossh.Unmarshal(req.Payload, &p) != nil {
		return nil, "" // malformed: a failure reply alone
	}
	h := s.cfg.Subsystems[p.Name]
	if h == nil {
		return nil, fmt.Sprintf("subsystem %q refused: not served here", clipName(p.Name))
	}
	return func() {
		var status uint32
		if err := h(ctx, ch, s.id.Clone()); err != nil {
			status = 1
			s.log.LogAttrs(ctx, slog.LevelDebug, "subsystem ended", slog.String("subsystem", p.Name), slog.String("err", err.Error()))
		}
		_ = ch.CloseWrite()
		// Like OpenSSH's sshd: clients such as scp check the exit status.
		_, _ = ch.SendRequest("exit-status", false, gossh.Marshal(struct{ Status uint32 }{status}))
		_ = ch.Close()
	}, ""
}

// clipName shortens a client-chosen name echoed back in a refusal to 64 bytes.
func clipName(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// directTCPIP serves a direct-tcpip channel under the forwarding policy. The
// destination is never logged: a refusal logs the deciding rule and the identity.
func (s *session) directTCPIP(ctx context.Context, nch gossh.NewChannel) {
	var p struct {
		Host       string
		Port       uint32
		OriginAddr string
		OriginPort uint32
	}
	if err := gossh.Unmarshal(nch.ExtraData(), &p); err != nil || p.Port > 65535 {
		_ = nch.Reject(gossh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	resolver := s.cfg.Resolver
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	d, err := s.cfg.Forwarding.Check(ctx, resolver, &s.id, s.transport, p.Host, uint16(p.Port))
	switch {
	case err != nil && errors.Is(err, ErrResolve):
		// Only a name the policy allows, or a lookup cut short: a refused name that
		// does not resolve is refused below, like a refused address.
		_ = nch.Reject(gossh.ConnectionFailed, "name resolution failed")
		return
	case err != nil:
		_ = nch.Reject(gossh.ConnectionFailed, "invalid destination")
		return
	case d.Reserved:
		s.log.LogAttrs(ctx, slog.LevelInfo, "forwarding denied", slog.String("identity", s.id.ID), slog.String("reason", "reserved destination"))
		_ = nch.Reject(gossh.Prohibited, "reserved destination")
		return
	case !d.Allowed:
		s.log.LogAttrs(ctx, slog.LevelInfo, "forwarding denied", slog.String("identity", s.id.ID), slog.Int("rule", d.Rule))
		_ = nch.Reject(gossh.Prohibited, "forwarding denied by policy")
		return
	}
	addrs := d.Addrs
	if d.Unresolved {
		// Allowed whatever the name's addresses: resolve it only now, to dial it.
		addrs, err = LookupDestination(ctx, resolver, p.Host)
		if err != nil {
			_ = nch.Reject(gossh.ConnectionFailed, "name resolution failed")
			return
		}
	}
	c, err := s.dial(ctx, addrs, uint16(p.Port))
	if err != nil {
		_ = nch.Reject(gossh.ConnectionFailed, "connect failed")
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		_ = c.Close()
		return
	}
	go gossh.DiscardRequests(reqs)
	// When the SSH connection ends, so does the forwarded one (a quiet destination
	// would otherwise hold the copy, and ServeConn, forever).
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	pipe(ch, c)
}

// dialer returns the Dialer of direct-tcpip channels: Config.Dialer, else a
// net.Dialer with DefaultDialTimeout.
func (c *Config) dialer() Dialer {
	if c.Dialer != nil {
		return c.Dialer
	}
	return &net.Dialer{Timeout: DefaultDialTimeout}
}

// dial connects to the first of addrs that answers.
func (s *session) dial(ctx context.Context, addrs []netip.Addr, port uint16) (net.Conn, error) {
	d := s.cfg.dialer()
	err := errors.New("no address")
	for _, a := range addrs {
		var c net.Conn
		c, err = d.DialContext(ctx, "tcp", netip.AddrPortFrom(a, port).String())
		if err == nil {
			return c, nil
		}
	}
	return nil, err
}

// globalRequests answers the connection's global requests: tcpip-forward and
// cancel-tcpip-forward for identities with ScopeRemoteForward and loopback binds;
// everything else refused.
func (s *session) globalRequests(ctx context.Context, reqs <-chan *gossh.Request) {
	for req := range reqs {
		var ok bool
		var reply []byte
		switch req.Type {
		case "tcpip-forward":
			ok, reply = s.remoteForward(ctx, req.Payload)
			s.srv.stats.remote.count(ok)
		case "cancel-tcpip-forward":
			ok = s.cancelForward(req.Payload)
		}
		if req.WantReply {
			_ = req.Reply(ok, reply)
		}
	}
}

// forwardRequest is the payload of tcpip-forward and cancel-tcpip-forward.
type forwardRequest struct {
	BindAddr string
	BindPort uint32
}

// remoteForward opens a loopback listener whose connections come back to the client
// as forwarded-tcpip channels.
func (s *session) remoteForward(ctx context.Context, payload []byte) (bool, []byte) {
	var p forwardRequest
	if gossh.Unmarshal(payload, &p) != nil || p.BindPort > 65535 {
		return false, nil
	}
	if !s.id.HasScope(ScopeRemoteForward) {
		s.log.LogAttrs(ctx, slog.LevelInfo, "remote forward denied", slog.String("identity", s.id.ID), slog.String("reason", "missing scope "+ScopeRemoteForward))
		return false, nil
	}
	host, ok := loopbackBind(p.BindAddr)
	if !ok {
		s.log.LogAttrs(ctx, slog.LevelInfo, "remote forward denied", slog.String("identity", s.id.ID), slog.String("reason", "not a loopback address"))
		return false, nil
	}
	max := s.cfg.MaxRemoteForwards
	if max <= 0 {
		max = DefaultMaxRemoteForwards
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.forwards) >= max {
		return false, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(int(p.BindPort))))
	if err != nil {
		return false, nil
	}
	port := uint32(ln.Addr().(*net.TCPAddr).Port)
	// Keyed by the port actually bound: a cancel of a port-0 request names that one.
	key := net.JoinHostPort(p.BindAddr, strconv.Itoa(int(port)))
	if s.forwards[key] != nil {
		_ = ln.Close()
		return false, nil
	}
	s.forwards[key] = ln
	s.wg.Go(func() { s.acceptForwarded(ctx, ln, p.BindAddr, port) })
	var reply []byte
	if p.BindPort == 0 {
		reply = gossh.Marshal(struct{ Port uint32 }{port})
	}
	return true, reply
}

// acceptEach runs handle in its own goroutine for every connection ln accepts, until
// ln fails (is closed); it returns once every handle has returned.
func acceptEach(ln net.Listener, handle func(net.Conn)) {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		conns.Go(func() { handle(c) })
	}
}

// acceptForwarded hands each connection of ln to the client.
func (s *session) acceptForwarded(ctx context.Context, ln net.Listener, bindAddr string, port uint32) {
	acceptEach(ln, func(c net.Conn) {
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		defer stop()
		origin, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		payload := gossh.Marshal(struct {
			Addr       string
			Port       uint32
			OriginAddr string
			OriginPort uint32
		}{bindAddr, port, origin.Addr().String(), uint32(origin.Port())})
		ch, reqs, err := s.conn.OpenChannel("forwarded-tcpip", payload)
		if err != nil {
			_ = c.Close()
			return
		}
		go gossh.DiscardRequests(reqs)
		pipe(ch, c)
	})
}

// cancelForward closes the listener of an earlier tcpip-forward.
func (s *session) cancelForward(payload []byte) bool {
	var p forwardRequest
	if gossh.Unmarshal(payload, &p) != nil {
		return false
	}
	key := net.JoinHostPort(p.BindAddr, strconv.Itoa(int(p.BindPort)))
	s.mu.Lock()
	ln := s.forwards[key]
	delete(s.forwards, key)
	s.mu.Unlock()
	if ln == nil {
		return false
	}
	_ = ln.Close()
	return true
}

// closeForwards closes every remote-forward listener (the connection ended).
func (s *session) closeForwards() {
	s.mu.Lock()
	s.closed = true
	lns := s.forwards
	s.forwards = map[string]net.Listener{}
	s.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
}

// loopbackBind maps a tcpip-forward bind address to the address to listen on; ok is
// false unless it is a loopback address or "localhost".
func loopbackBind(addr string) (string, bool) {
	if addr == "localhost" {
		return "127.0.0.1", true
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Unmap().IsLoopback() {
		return "", false
	}
	return a.Unmap().String(), true
}

// halfCloser is a connection whose write side can be closed alone.
type halfCloser interface{ CloseWrite() error }

// pipe copies a and b into each other until both directions end, half-closing each
// side's write when its source is done, then closes both.
func pipe(a, b io.ReadWriteCloser) {
	var wg sync.WaitGroup
	cp := func(dst, src io.ReadWriteCloser) {
		_, _ = io.Copy(dst, src)
		if hc, ok := dst.(halfCloser); ok {
			_ = hc.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Go(func() { cp(a, b) })
	wg.Go(func() { cp(b, a) })
	wg.Wait()
	_ = a.Close()
	_ = b.Close()
}

// MaxEnvValue bounds the value of an accepted env request.
const MaxEnvValue = 64

// acceptedEnv returns the env request payload as NAME=value when the server accepts it:
// GIT_PROTOCOL with a value of at most MaxEnvValue bytes of [A-Za-z0-9=:._-].
func acceptedEnv(payload []byte) (string, bool) {
	var p struct{ Name, Value string }
	if gossh.Unmarshal(payload, &p) != nil || p.Name != "GIT_PROTOCOL" || len(p.Value) > MaxEnvValue {
		return "", false
	}
	for i := 0; i < len(p.Value); i++ {
		c := p.Value[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '=' || c == ':' || c == '.' || c == '_' || c == '-') {
			return "", false
		}
	}
	return p.Name + "=" + p.Value, true
}
