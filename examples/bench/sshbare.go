package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// The bare x/crypto/ssh arm: an SSH server and client written against
// golang.org/x/crypto/ssh alone, as a Go programmer would write them, with no alknet
// type on either side. It is the baseline of alknet's ssh layer.

// bareHandshakeTimeout bounds an SSH handshake of the bare server.
const bareHandshakeTimeout = 10 * time.Second

// directTCPIPPayload is the extra data of a direct-tcpip channel open (RFC 4254 7.2).
type directTCPIPPayload struct {
	Host     string
	Port     uint32
	OrigHost string
	OrigPort uint32
}

// bareSSHServer is an x/crypto/ssh server on a listener: host key and publickey auth
// of one client key, every direct-tcpip channel dialled and copied both ways with
// half-closes, every other channel and request refused.
type bareSSHServer struct {
	cfg   *gossh.ServerConfig
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// newBareSSHServer returns the server of host's key that lets client's key in.
func newBareSSHServer(host, client gossh.Signer) *bareSSHServer {
	clientKey := client.PublicKey().Marshal()
	cfg := &gossh.ServerConfig{
		PublicKeyCallback: func(_ gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
			if !bytes.Equal(key.Marshal(), clientKey) {
				return nil, errors.New("unknown public key")
			}
			return nil, nil
		},
	}
	cfg.AddHostKey(host)
	return &bareSSHServer{cfg: cfg, conns: make(map[net.Conn]struct{})}
}

// serve accepts on ln until close, each connection in its own goroutine labelled as
// the arm name's server in CPU profiles.
func (s *bareSSHServer) serve(ctx context.Context, name string, ln net.Listener) {
	s.ln = ln
	pprof.Do(ctx, pprof.Labels("arm", name, "side", "server"), func(ctx context.Context) {
		s.wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				s.mu.Lock()
				s.conns[c] = struct{}{}
				s.mu.Unlock()
				s.wg.Go(func() {
					s.handle(ctx, c)
					_ = c.Close()
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
				})
			}
		})
	})
}

// handle runs one connection: the handshake within bareHandshakeTimeout, then its
// channels until the client goes.
func (s *bareSSHServer) handle(ctx context.Context, c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(bareHandshakeTimeout))
	sc, chans, reqs, err := gossh.NewServerConn(c, s.cfg)
	if err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	defer sc.Close()
	go gossh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "direct-tcpip" {
			_ = nc.Reject(gossh.UnknownChannelType, "only direct-tcpip")
			continue
		}
		wg.Go(func() { bareDirectTCPIP(ctx, nc) })
	}
	wg.Wait()
}

// bareDirectTCPIP dials the channel's destination and copies both ways, passing each
// side's EOF on as a half-close, then closes both.
func bareDirectTCPIP(ctx context.Context, nc gossh.NewChannel) {
	var p directTCPIPPayload
	if err := gossh.Unmarshal(nc.ExtraData(), &p); err != nil {
		_ = nc.Reject(gossh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, bareHandshakeTimeout)
	tc, err := d.DialContext(dctx, "tcp", net.JoinHostPort(p.Host, strconv.FormatUint(uint64(p.Port), 10)))
	cancel()
	if err != nil {
		_ = nc.Reject(gossh.ConnectionFailed, "connect failed")
		return
	}
	defer tc.Close()
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	go gossh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(tc, ch)
		if hc, ok := tc.(interface{ CloseWrite() error }); ok {
			_ = hc.CloseWrite()
		}
	})
	_, _ = io.Copy(ch, tc)
	_ = ch.CloseWrite()
	wg.Wait()
}

// close stops accepting, closes every connection and waits for their goroutines.
func (s *bareSSHServer) close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// bareSSHClient is an x/crypto/ssh client connection: direct-tcpip channels through
// Client.DialContext.
type bareSSHClient struct{ *gossh.Client }

func (c bareSSHClient) Open(ctx context.Context, host string, port uint16) (net.Conn, error) {
	return c.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
}

// dialBareSSH connects to addr over TCP and logs in as user with signer's key, host's
// key pinned, with x/crypto/ssh alone; ctx bounds the connection and the handshake.
func dialBareSSH(ctx context.Context, addr, user string, signer gossh.Signer, host gossh.PublicKey) (bareSSHClient, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return bareSSHClient{}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	sc, chans, reqs, err := gossh.NewClientConn(nc, addr, &gossh.ClientConfig{
		User:            user,
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.FixedHostKey(host),
	})
	if !stop() && err == nil {
		err = ctx.Err()
		_ = sc.Close()
	}
	if err != nil {
		_ = nc.Close()
		return bareSSHClient{}, err
	}
	_ = nc.SetDeadline(time.Time{})
	return bareSSHClient{gossh.NewClient(sc, chans, reqs)}, nil
}
