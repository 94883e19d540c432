package msg

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/alknet/alknet/core"
)

// dispatch decodes and runs one request. It returns the op and mailbox (for the log),
// the response or a refusal, and the number of envelopes involved.
func (s *Server) dispatch(ctx context.Context, p *peer, frame []byte) (op, mailbox string, resp any, count int, refusal *Error) {
	req, err := decodeRequest(frame)
	if err != nil {
		return "", "", nil, 0, errorf(CodeBadRequest, "%s", trimPrefix(err))
	}
	switch r := req.(type) {
	case *keysGetRequest:
		resp, refusal = s.keysGet(ctx, r)
		return OpKeysGet, r.Mailbox, resp, 0, refusal
	case *keysPutRequest:
		if p.key != nil {
			mailbox = Mailbox(p.key)
		}
		resp, refusal = s.keysPut(ctx, p, r)
		return OpKeysPut, mailbox, resp, 0, refusal
	case *deliverRequest:
		resp, refusal = s.deliver(ctx, p, r)
		return OpDeliver, r.Envelope.To, resp, 1, refusal
	case *fetchRequest:
		mailbox, refusal = s.owned(p, r.Mailbox)
		if refusal != nil {
			return OpFetch, r.Mailbox, nil, 0, refusal
		}
		fr, refusal := s.fetch(ctx, mailbox, r)
		if refusal != nil {
			return OpFetch, mailbox, nil, 0, refusal
		}
		return OpFetch, mailbox, fr, len(fr.Envelopes), nil
	case *ackRequest:
		mailbox, refusal = s.owned(p, r.Mailbox)
		if refusal != nil {
			return OpAck, r.Mailbox, nil, 0, refusal
		}
		ar, refusal := s.ack(ctx, mailbox, r)
		if refusal != nil {
			return OpAck, mailbox, nil, 0, refusal
		}
		return OpAck, mailbox, ar, ar.Deleted, nil
	}
	return "", "", nil, 0, errorf(CodeInternal, "internal error")
}

// hosts reports whether the server hosts owner's mailbox.
func (s *Server) hosts(owner ed25519.PublicKey) bool {
	if s.hosted[Mailbox(owner)] {
		return true
	}
	if s.hostFunc != nil && s.hostFunc(owner) {
		return true
	}
	if s.peers != nil {
		if id, ok := s.peers.ResolveFromFingerprint(core.FingerprintFromPublicKey(owner)); ok && id.HasScope(ScopeMailbox) {
			return true
		}
	}
	return false
}

// owned resolves the mailbox of an owner-only request: the peer's own (mailbox "" or
// equal to it), hosted here. Anyone else is UNAUTHORIZED, before hosting is revealed.
func (s *Server) owned(p *peer, mailbox string) (string, *Error) {
	if p.key == nil {
		return "", errorf(CodeUnauthorized, "owner only: present the mailbox's Ed25519 key as the TLS client certificate")
	}
	own := Mailbox(p.key)
	if mailbox != "" && mailbox != own {
		return "", errorf(CodeUnauthorized, "owner only: the client certificate's key is not the mailbox key")
	}
	if !s.hosts(p.key) {
		return "", errorf(CodeNotHosted, "this node does not host the mailbox")
	}
	return own, nil
}

// internal logs a store failure and returns the refusal peers see.
func (s *Server) internal(ctx context.Context, op string, err error) *Error {
	if ctx.Err() != nil {
		return errorf(CodeInternal, "request cancelled")
	}
	s.log.LogAttrs(ctx, slog.LevelWarn, "msg store failure", slog.String("op", op), slog.String("error", err.Error()))
	return errorf(CodeInternal, "internal error")
}

func (s *Server) keysGet(ctx context.Context, r *keysGetRequest) (any, *Error) {
	owner, err := ParseMailbox(r.Mailbox)
	if err != nil {
		return nil, errorf(CodeBadRequest, "keys.get: %s", trimPrefix(err))
	}
	if !s.hosts(owner) {
		return nil, errorf(CodeNotHosted, "this node does not host the mailbox")
	}
	raw, err := s.store.GetBundle(ctx, r.Mailbox)
	if errors.Is(err, ErrNotFound) {
		return nil, errorf(CodeNotFound, "the mailbox has no key bundle")
	}
	if err != nil {
		return nil, s.internal(ctx, OpKeysGet, err)
	}
	var b KeyBundle
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, s.internal(ctx, OpKeysGet, err)
	}
	if !s.now().Before(b.NotAfter) {
		return nil, errorf(CodeExpired, "the mailbox's key bundle expired at %s", b.NotAfter.UTC().Format(time.RFC3339))
	}
	s.stats.keysGet.Add(1)
	return keysGetResponse{OK: true, Bundle: b}, nil
}

func (s *Server) keysPut(ctx context.Context, p *peer, r *keysPutRequest) (any, *Error) {
	if p.key == nil {
		return nil, errorf(CodeUnauthorized, "owner only: present the mailbox's Ed25519 key as the TLS client certificate")
	}
	if !s.hosts(p.key) {
		return nil, errorf(CodeNotHosted, "this node does not host the mailbox")
	}
	if err := VerifyBundle(p.key, *r.Bundle, s.now()); err != nil {
		if errors.Is(err, ErrBundleExpired) {
			return nil, errorf(CodeExpired, "keys.put: %s", trimPrefix(err))
		}
		return nil, errorf(CodeBadRequest, "keys.put: %s", trimPrefix(err))
	}
	raw, err := json.Marshal(r.Bundle)
	if err != nil {
		return nil, s.internal(ctx, OpKeysPut, err)
	}
	if err := s.store.PutBundle(ctx, Mailbox(p.key), raw); err != nil {
		return nil, s.internal(ctx, OpKeysPut, err)
	}
	s.stats.keysPut.Add(1)
	return okResponse{OK: true}, nil
}

func (s *Server) deliver(ctx context.Context, p *peer, r *deliverRequest) (any, *Error) {
	env := r.Envelope
	owner, err := ParseMailbox(env.To)
	if err != nil { // DecodeEnvelope checked it
		return nil, errorf(CodeBadRequest, "deliver: to: %s", trimPrefix(err))
	}
	if !s.hosts(owner) {
		return nil, errorf(CodeNotHosted, "this node does not host the mailbox")
	}
	now := s.now()
	switch {
	case p.identity != nil && p.identity.HasScope(ScopeSend):
		if !s.sendRate.allow("id:"+p.identity.ID, now) {
			return nil, errorf(CodeRateLimited, "more than %d deliveries per minute (sends_per_minute)", s.cfg.SendsPerMinute)
		}
	case s.cfg.AllowAnonymous:
		if !s.anonRate.allow(p.rateKey, now) {
			return nil, errorf(CodeRateLimited, "more than %d anonymous deliveries per minute from this address (anonymous_sends_per_minute)", s.cfg.AnonymousSendsPerMinute)
		}
	default:
		return nil, errorf(CodeUnauthorized, "deliver needs scope %s", ScopeSend)
	}
	ts := time.UnixMilli(env.TS)
	if ts.After(now.Add(MaxClockSkew)) {
		return nil, errorf(CodeBadRequest, "deliver: ts is more than %s in the future", MaxClockSkew)
	}
	ttl := time.Duration(s.cfg.DefaultTTL)
	if env.TTL > 0 { // clamped to max_ttl, compared in seconds so that no ttl overflows
		ttl = time.Duration(min(env.TTL, int64(time.Duration(s.cfg.MaxTTL)/time.Second))) * time.Second
	}
	expires := ts.Add(ttl)
	if limit := now.Add(time.Duration(s.cfg.MaxTTL)); expires.After(limit) {
		expires = limit
	}
	if !expires.After(now) {
		return nil, errorf(CodeExpired, "deliver: the envelope's ttl ended at %s", expires.UTC().Format(time.RFC3339))
	}
	data := env.appendJSON(nil)
	q := Quota{MaxMessages: s.cfg.MaxMailboxMessages, MaxBytes: int64(s.cfg.MaxMailboxBytes)}
	acceptedAt, dup, err := s.store.Put(ctx, StoredEnvelope{ID: env.ID, Mailbox: env.To, AcceptedAt: now, ExpiresAt: expires, Data: data}, q)
	if errors.Is(err, ErrQuotaExceeded) {
		return nil, errorf(CodeQuotaExceeded, "the mailbox is full (max_mailbox_messages %d, max_mailbox_bytes %d)", s.cfg.MaxMailboxMessages, s.cfg.MaxMailboxBytes)
	}
	if err != nil {
		return nil, s.internal(ctx, OpDeliver, err)
	}
	if dup {
		s.stats.duplicates.Add(1)
	} else {
		s.stats.deliveries.Add(1)
	}
	return deliverResponse{OK: true, ID: b64.EncodeToString(env.ID[:]), AcceptedAt: acceptedAt.UnixMilli(), Duplicate: dup}, nil
}

// fetch lists the mailbox after the cursor, waiting up to r.WaitMS for a delivery when
// there is nothing; the response stays within the frame cap (at least one envelope).
func (s *Server) fetch(ctx context.Context, mailbox string, r *fetchRequest) (*fetchResponse, *Error) {
	limit := r.Limit
	if limit == 0 {
		limit = MaxFetchLimit
	}
	var timer *time.Timer
	if r.WaitMS > 0 {
		timer = time.NewTimer(time.Duration(r.WaitMS) * time.Millisecond)
		defer timer.Stop()
	}
	waited := false
	for {
		var (
			wake    <-chan struct{}
			release = func() {}
		)
		if timer != nil && !waited {
			// Subscribe before listing, so a delivery between the two still wakes us.
			ch, rel, err := s.store.Notify(ctx, mailbox)
			if err != nil {
				return nil, s.internal(ctx, OpFetch, err)
			}
			wake, release = ch, rel
		}
		items, next, refusal := s.list(ctx, mailbox, Cursor(r.After), limit)
		if refusal != nil || len(items) > 0 || wake == nil {
			release()
			if refusal != nil {
				return nil, refusal
			}
			return s.fetchResponse(items, next, r.After), nil
		}
		select {
		case <-wake:
		case <-timer.C:
			waited = true // one last look, then answer
		case <-ctx.Done():
		}
		release()
		if ctx.Err() != nil {
			return nil, errorf(CodeInternal, "request cancelled")
		}
	}
}

// fetchEnvelopeOverhead is what a fetch response adds to each envelope's JSON (its
// accepted_at and expires_at fields and the punctuation), an upper bound.
const fetchEnvelopeOverhead = 64

// list reads up to limit envelopes whose JSON together fits the frame cap (at least one).
// The store gets the frame cap as its byte budget, so it reads about what fits; only when
// the per-envelope overhead tips a page over the cap does list ask again for fewer.
func (s *Server) list(ctx context.Context, mailbox string, after Cursor, limit int) ([]StoredEnvelope, Cursor, *Error) {
	for {
		items, next, err := s.store.List(ctx, mailbox, after, limit, int64(s.cfg.MaxFrameBytes), s.now())
		if errors.Is(err, ErrInvalidCursor) {
			return nil, "", errorf(CodeBadRequest, "fetch: after: not a cursor this node made")
		}
		if err != nil {
			return nil, "", s.internal(ctx, OpFetch, err)
		}
		fit, total := 0, 0
		for _, it := range items {
			total += len(it.Data) + fetchEnvelopeOverhead
			if fit > 0 && total > int(s.cfg.MaxFrameBytes) {
				break
			}
			fit++
		}
		if fit == len(items) || limit == 1 {
			return items, next, nil
		}
		// Too big for one response: list again up to what fits, for the right cursor.
		limit = fit
	}
}

func (s *Server) fetchResponse(items []StoredEnvelope, next Cursor, after string) *fetchResponse {
	fr := &fetchResponse{OK: true, Envelopes: make([]fetchedEnvelope, 0, len(items)), Next: string(next)}
	if fr.Next == "" {
		fr.Next = after
	}
	for _, it := range items {
		fr.Envelopes = append(fr.Envelopes, fetchedEnvelope{
			AcceptedAt: it.AcceptedAt.UnixMilli(), ExpiresAt: it.ExpiresAt.UnixMilli(), Envelope: json.RawMessage(it.Data),
		})
	}
	s.stats.fetches.Add(1)
	s.stats.fetched.Add(uint64(len(items)))
	return fr
}

func (s *Server) ack(ctx context.Context, mailbox string, r *ackRequest) (*ackResponse, *Error) {
	ids := make([][IDSize]byte, 0, len(r.IDs))
	for _, e := range r.IDs {
		b, err := decodeB64("ack id", e, IDSize, 0)
		if err != nil {
			return nil, errorf(CodeBadRequest, "%s", trimPrefix(err))
		}
		ids = append(ids, [IDSize]byte(bytes.Clone(b)))
	}
	n, err := s.store.Delete(ctx, mailbox, ids)
	if err != nil {
		return nil, s.internal(ctx, OpAck, err)
	}
	s.stats.acks.Add(1)
	s.stats.acked.Add(uint64(n))
	return &ackResponse{OK: true, Deleted: n}, nil
}
