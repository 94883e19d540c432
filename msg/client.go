package msg

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
)

// Client speaks alknet/msg over one connection: every call is one request on a stream
// of its own, so calls may run concurrently and a cancelled ctx abandons only its own.
// The connection's TLS client certificate is the identity the server checks: the
// mailbox owner's key for PutKeys, Fetch and Ack, a peer with scope msg:send (or any,
// where the node allows anonymous delivery) for Deliver and Send.
//
// On a single-stream connection (TCP+TLS) the calls share the one stream, one at a
// time (a long-poll Fetch holds it while it waits), and a call whose ctx ends before its
// answer leaves the stream out of step: the client then fails every later call with an
// error wrapping [ErrClientBroken]; dial again.
type Client struct {
	conn        *core.Connection
	maxResponse int
	single      bool
	turn        chan struct{} // single-stream: held by the running call
	st          core.BiStream // single-stream: the stream, once opened
	broken      error         // single-stream: why the stream is unusable
}

// ErrClientBroken is wrapped by the errors of a single-stream client after a call was
// abandoned half-way.
var ErrClientBroken = errors.New("msg: client stream out of step after an abandoned call")

// NewClient returns a client over conn, a connection that negotiated alknet/msg.
func NewClient(conn *core.Connection) *Client {
	return &Client{conn: conn, maxResponse: MaxFrameBytesLimit + responseSlack, single: conn.SingleStream(), turn: make(chan struct{}, 1)}
}

// Dial connects to a node's alknet/msg service at addr (see endpoint.Dial for opts:
// the server pin, the client certificate, QUIC or TCP) and returns a client; Close it.
func Dial(ctx context.Context, addr string, opts endpoint.DialOptions) (*Client, error) {
	conn, err := endpoint.Dial(ctx, addr, ALPN, opts)
	if err != nil {
		return nil, fmt.Errorf("msg: dial: %w", err)
	}
	return NewClient(conn), nil
}

// Close closes the connection.
func (c *Client) Close() error {
	c.conn.Close(core.CloseNormal, "")
	return nil
}

// Receipt is a node's answer to a delivery.
type Receipt struct {
	ID         [IDSize]byte
	AcceptedAt time.Time // when the node first accepted the envelope
	Duplicate  bool      // the node had it already; AcceptedAt is the first acceptance
}

// FetchOptions select what Fetch returns.
type FetchOptions struct {
	// Mailbox is the mailbox id; "" means the caller's own (the only one it may fetch).
	Mailbox string
	// After is the cursor of the previous page ("" from the start).
	After string
	// Limit is the most envelopes to return (0: MaxFetchLimit, the maximum).
	Limit int
	// Wait, when the mailbox has nothing after the cursor, waits up to this long (at most
	// one minute) for a delivery and returns as soon as one lands.
	Wait time.Duration
}

// Fetched is one envelope of a fetch, with the node's metadata.
type Fetched struct {
	Envelope   *Envelope
	AcceptedAt time.Time
	ExpiresAt  time.Time
}

// FetchResult is one page of a mailbox, in the order the node accepted the envelopes.
type FetchResult struct {
	Envelopes []Fetched
	// Next is the cursor to pass as After for the following page (it stays put when
	// the page is empty).
	Next string
}

// PutKeys publishes the caller's key bundle to the mailbox the node hosts for it.
func (c *Client) PutKeys(ctx context.Context, b KeyBundle) error {
	_, err := c.roundTrip(ctx, keysPutRequest{Op: OpKeysPut, Bundle: &b})
	return err
}

// GetKeys returns the key bundle the owner of mailbox owner published on the node. It
// does not verify it: Seal does (or call VerifyBundle).
func (c *Client) GetKeys(ctx context.Context, owner ed25519.PublicKey) (KeyBundle, error) {
	if len(owner) != ed25519.PublicKeySize {
		return KeyBundle{}, fmt.Errorf("msg: get keys: owner: %w", ErrNotEd25519)
	}
	r, err := c.roundTrip(ctx, keysGetRequest{Op: OpKeysGet, Mailbox: Mailbox(owner)})
	if err != nil {
		return KeyBundle{}, err
	}
	if r.Bundle == nil {
		return KeyBundle{}, fmt.Errorf("%w: keys.get response without a bundle", ErrMalformed)
	}
	return *r.Bundle, nil
}

// Deliver hands env to the node hosting its mailbox. Delivering the same envelope again
// (a retry after a lost answer) is answered with the first acceptance.
func (c *Client) Deliver(ctx context.Context, env *Envelope) (Receipt, error) {
	r, err := c.roundTrip(ctx, deliverRequest{Op: OpDeliver, Envelope: env})
	if err != nil {
		return Receipt{}, err
	}
	return Receipt{ID: env.ID, AcceptedAt: time.UnixMilli(r.AcceptedAt), Duplicate: r.Duplicate}, nil
}

// Fetch returns a page of the caller's mailbox.
func (c *Client) Fetch(ctx context.Context, o FetchOptions) (*FetchResult, error) {
	if o.Wait < 0 || o.Wait > MaxFetchWaitMS*time.Millisecond {
		return nil, fmt.Errorf("msg: fetch: wait %s (want 0 to 1m)", o.Wait)
	}
	r, err := c.roundTrip(ctx, fetchRequest{Op: OpFetch, Mailbox: o.Mailbox, After: o.After, Limit: o.Limit, WaitMS: o.Wait.Milliseconds()})
	if err != nil {
		return nil, err
	}
	res := &FetchResult{Next: r.Next, Envelopes: make([]Fetched, 0, len(r.Envelopes))}
	for _, e := range r.Envelopes {
		res.Envelopes = append(res.Envelopes, Fetched{Envelope: e.Envelope, AcceptedAt: time.UnixMilli(e.AcceptedAt), ExpiresAt: time.UnixMilli(e.ExpiresAt)})
	}
	return res, nil
}

// Ack deletes the envelopes ids from the caller's mailbox (unknown ids are ignored) and
// returns how many it deleted.
func (c *Client) Ack(ctx context.Context, ids ...[IDSize]byte) (int, error) {
	req := ackRequest{Op: OpAck, IDs: make([]string, len(ids))}
	for i, id := range ids {
		req.IDs[i] = b64.EncodeToString(id[:])
	}
	r, err := c.roundTrip(ctx, req)
	if err != nil {
		return 0, err
	}
	return r.Deleted, nil
}

// Send gets the recipient's key bundle from the node, seals body to it as signer (Seal
// verifies the bundle) and delivers the envelope.
func (c *Client) Send(ctx context.Context, signer crypto.Signer, recipient ed25519.PublicKey, body []byte, contentType string, opts ...SealOption) (Receipt, error) {
	b, err := c.GetKeys(ctx, recipient)
	if err != nil {
		return Receipt{}, fmt.Errorf("msg: send: %w", err)
	}
	env, err := Seal(signer, recipient, b, body, contentType, opts...)
	if err != nil {
		return Receipt{}, fmt.Errorf("msg: send: %w", err)
	}
	r, err := c.Deliver(ctx, env)
	if err != nil {
		return Receipt{}, fmt.Errorf("msg: send: %w", err)
	}
	return r, nil
}

// roundTrip sends req on a new stream and decodes the response; an ok:false response
// is returned as its *Error.
func (c *Client) roundTrip(ctx context.Context, req any) (*clientResponse, error) {
	body, err := encodeRequestFrame(req)
	if err != nil {
		return nil, err
	}
	if c.single {
		frame, err := c.sequenced(ctx, body)
		if err != nil {
			return nil, err
		}
		return decodeResponse(frame)
	}
	st, err := c.conn.OpenBi(ctx)
	if err != nil {
		return nil, fmt.Errorf("msg: open stream: %w", err)
	}
	// A cancelled ctx unblocks the call through a past deadline (Close must not race
	// with Write on QUIC); closing the stream afterwards is how the server learns of it
	// (STOP_SENDING on QUIC).
	nc := core.NetConn(st, nil, nil)
	stop := context.AfterFunc(ctx, func() {
		if err := nc.SetDeadline(time.Unix(1, 0)); errors.Is(err, os.ErrNoDeadline) {
			_ = st.Close() // a stream without deadlines: nothing else unblocks it
		}
	})
	defer func() {
		stop()
		_ = st.Close()
	}()
	if d, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(d)
	}
	werr := writeFramed(st, body)
	if werr == nil {
		werr = st.CloseWrite()
	}
	// Even when the write failed (the server refused an oversized frame and stopped
	// reading), its answer may be waiting.
	frame, _, err := ReadFrame(st, c.maxResponse, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("msg: %w", ctx.Err())
		}
		if werr != nil {
			return nil, werr
		}
		return nil, fmt.Errorf("msg: read response: %w", err)
	}
	return decodeResponse(frame)
}

// encodeRequestFrame returns req as a whole frame: frameHeaderSize bytes for the length
// prefix (filled in by writeFramed), then the JSON body. A delivery is written in one
// pass around the envelope's own encoding: json.Marshal would re-scan and compact it.
func encodeRequestFrame(req any) ([]byte, error) {
	if d, ok := req.(deliverRequest); ok && d.Op == OpDeliver && d.Envelope != nil {
		e := d.Envelope
		b := make([]byte, frameHeaderSize, frameHeaderSize+256+len(e.To)+b64.EncodedLen(len(e.Enc))+b64.EncodedLen(len(e.CT)))
		b = append(b, `{"op":"deliver","envelope":`...)
		b = e.appendJSON(b)
		return append(b, '}'), nil
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("msg: encode request: %w", err)
	}
	return append(make([]byte, frameHeaderSize, frameHeaderSize+len(body)), body...), nil
}

// sequenced runs one request (a whole frame from encodeRequestFrame) on the single
// stream of the connection.
func (c *Client) sequenced(ctx context.Context, body []byte) ([]byte, error) {
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("msg: %w", ctx.Err())
	}
	defer func() { <-c.turn }()
	if c.broken != nil {
		return nil, c.broken
	}
	if c.st == nil {
		st, err := c.conn.OpenBi(ctx)
		if err != nil {
			return nil, fmt.Errorf("msg: open stream: %w", err)
		}
		c.st = st
	}
	nc := core.NetConn(c.st, nil, nil)
	d, _ := ctx.Deadline()
	_ = nc.SetDeadline(d)
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	werr := writeFramed(c.st, body)
	// Even when the write failed (the server refused the frame and hung up), its answer
	// may be waiting.
	frame, _, err := ReadFrame(c.st, c.maxResponse, nil)
	if err != nil && werr != nil {
		err = werr
	}
	if werr != nil && err == nil {
		// Answered, but the server stopped reading: the stream is done.
		c.broken = fmt.Errorf("%w: %w", ErrClientBroken, werr)
		_ = c.st.Close()
	}
	stop()
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		c.broken = fmt.Errorf("%w: %w", ErrClientBroken, err)
		_ = c.st.Close()
		return nil, fmt.Errorf("msg: %w", err)
	}
	return frame, nil
}

// decodeResponse decodes a response frame; ok:false becomes its *Error.
func decodeResponse(frame []byte) (*clientResponse, error) {
	r, err := decodeClientResponse(frame)
	if err != nil {
		return nil, err
	}
	if !r.OK {
		if r.Error == nil {
			return nil, errors.New("msg: the server refused the request without an error")
		}
		return nil, r.Error
	}
	return r, nil
}
