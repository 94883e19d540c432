package core_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
)

// pipeStream is one end of an in-memory duplex made of two io.Pipes. Unlike net.Pipe
// it has a real half-close: CloseWrite makes the peer read io.EOF while this end can go
// on reading what the peer writes.
type pipeStream struct {
	r      *io.PipeReader
	w      *io.PipeWriter
	closes atomic.Int32
}

func (p *pipeStream) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeStream) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeStream) CloseWrite() error           { return p.w.Close() }
func (p *pipeStream) Close() error {
	p.closes.Add(1)
	_ = p.w.Close()
	return p.r.Close()
}

var _ core.BiStream = (*pipeStream)(nil)

// newDuplex returns the two ends of an in-memory bidirectional stream.
func newDuplex() (a, b *pipeStream) {
	ar, bw := io.Pipe()
	br, aw := io.Pipe()
	return &pipeStream{r: ar, w: aw}, &pipeStream{r: br, w: bw}
}

// writeAsync writes p to w in a goroutine (io.Pipe writes block until read) and
// returns a channel with the result.
func writeAsync(w io.Writer, p []byte) <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write(p)
		errc <- err
	}()
	return errc
}

// readN reads exactly n bytes from r.
func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return string(buf)
}

// fakeSource is a BidiStreamSource that records what the Connection forwards to it.
type fakeSource struct {
	stream core.BiStream
	remote net.Addr
	err    error

	mu          sync.Mutex
	calls       []string
	ctxValues   []any
	closeCode   uint32
	closeReason string
}

type ctxKey struct{}

func (f *fakeSource) record(ctx context.Context, call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	if ctx != nil {
		f.ctxValues = append(f.ctxValues, ctx.Value(ctxKey{}))
	}
}

func (f *fakeSource) AcceptBi(ctx context.Context) (core.BiStream, error) {
	f.record(ctx, "AcceptBi")
	return f.stream, f.err
}

func (f *fakeSource) OpenBi(ctx context.Context) (core.BiStream, error) {
	f.record(ctx, "OpenBi")
	return f.stream, f.err
}

func (f *fakeSource) RemoteAddr() net.Addr {
	f.record(nil, "RemoteAddr")
	return f.remote
}

func (f *fakeSource) Close(code uint32, reason string) {
	f.record(nil, "Close")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closeCode, f.closeReason = code, reason
}

func (f *fakeSource) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// seededKey returns a deterministic Ed25519 key.
func seededKey(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

// fpOf returns the fingerprint of a seeded key.
func fpOf(b byte) string {
	return core.FingerprintFromPublicKey(seededKey(b).Public().(ed25519.PublicKey))
}

var (
	sha256FPRe  = regexp.MustCompile(`^SHA256:[0-9a-f]{64}$`)
	ed25519FPRe = regexp.MustCompile(`^ed25519:[0-9a-f]{64}$`)
	tokenHashRe = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// selfSignedDER returns a self-signed certificate for pub signed by priv.
func selfSignedDER(t testing.TB, pub, priv any) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "core-test"},
		NotBefore:    time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	return der
}

// testKeys holds one key of each kind, generated once per test binary (RSA is slow
// under -race).
type testKeys struct {
	ed  ed25519.PrivateKey
	ec  *ecdsa.PrivateKey
	rsa *rsa.PrivateKey
}

var keysOnce = sync.OnceValues(func() (*testKeys, error) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return &testKeys{ed: seededKey(9), ec: ec, rsa: rk}, nil
})

func keys(t testing.TB) *testKeys {
	t.Helper()
	k, err := keysOnce()
	if err != nil {
		t.Fatalf("generate test keys: %v", err)
	}
	return k
}

func spkiDER(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatalf("marshal SPKI: %v", err)
	}
	return der
}
