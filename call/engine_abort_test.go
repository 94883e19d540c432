package call

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/alknet/alknet/core"
)

// engOnlyEnvelopes fails unless the envelopes d wrote with id have exactly the types
// want, in that order.
func engOnlyEnvelopes(t testing.TB, w *engWire, d engDir, id string, want ...string) {
	t.Helper()
	var got []string
	for _, e := range w.with(d, id, "") {
		got = append(got, e.Type)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s wrote %v for id %s, want exactly %v; wire:\n%s", d, got, id, want, w.dump())
	}
}

// §5.9: aborting a running Query cancels the handler's context; the caller sends one
// call.aborted and the handler side answers nothing afterwards.
func TestEngineAbortQuery(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		started := make(chan struct{}, 1)
		handlerErr := make(chan error, 1)
		srv := &Dispatcher{Registry: engRegistry(t, engQuery("job/block", func(ctx context.Context, _ *OpContext, _ json.RawMessage) (json.RawMessage, error) {
			started <- struct{}{}
			<-ctx.Done()
			handlerErr <- ctx.Err()
			// Answer anyway: the engine must not send it, the caller gave up.
			return json.RawMessage(`"too late"`), nil
		}))}
		p := engNewPair(t, mode, srv, &Dispatcher{}, nil, nil)
		ctx, cancel := context.WithCancel(engCtx(t))
		res := engGo(ctx, p.client, "job/block", nil)
		engWait(t, started, "the handler to start")
		id := p.wire.requestID(t, fromClient, "/job/block")
		cancel()
		if err := engWait(t, handlerErr, "the handler's context to end"); !errors.Is(err, context.Canceled) {
			t.Fatalf("handler ctx error = %v, want context.Canceled (the abort, not a deadline)", err)
		}
		if r := engWait(t, res, "the cancelled call to return"); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled call = %s, %v; want context.Canceled", r.out, r.err)
		}
		// The connection is still usable.
		if _, err := p.client.Call(engCtx(t), OpServicesList, nil); err != nil {
			t.Fatalf("call after an abort: %v", err)
		}
		p.closeBoth()
		engOnlyEnvelopes(t, p.wire, fromClient, id, EvRequested, EvAborted)
		engOnlyEnvelopes(t, p.wire, fromServer, id)
	})
}

// §5.9: aborting a subscription stops emission: the handler's emit fails, no further
// frame and no call.completed go out, even when the handler then returns nil.
func TestEngineAbortSubscription(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		emitted := make(chan struct{}, 1)
		emitAfterAbort := make(chan error, 1)
		srv := &Dispatcher{Registry: engRegistry(t, engSub("feed/watch", func(ctx context.Context, _ *OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
			if err := emit(json.RawMessage(`1`)); err != nil {
				return err
			}
			emitted <- struct{}{}
			<-ctx.Done()
			emitAfterAbort <- emit(json.RawMessage(`2`))
			return nil // a natural end: it must not turn into call.completed
		}))}
		p := engNewPair(t, mode, srv, &Dispatcher{}, nil, nil)
		ctx := engCtx(t)
		sub, err := p.client.Subscribe(ctx, "feed/watch", nil)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := sub.Next(ctx); err != nil || string(out) != "1" {
			t.Fatalf("first event = %s, %v", out, err)
		}
		engWait(t, emitted, "the first emit")
		id := p.wire.requestID(t, fromClient, "/feed/watch")
		sub.Close()
		if err := engWait(t, emitAfterAbort, "the handler to see the abort"); err == nil {
			t.Fatal("emit after the abort succeeded")
		}
		if _, err := sub.Next(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Next after Close = %v, want context.Canceled", err)
		}
		p.closeBoth()
		engOnlyEnvelopes(t, p.wire, fromClient, id, EvRequested, EvAborted)
		engOnlyEnvelopes(t, p.wire, fromServer, id, EvResponded)
	})
}

// engTree registers tree/parent → tree/child → tree/grand, each a composing Local
// operation with an authority and a scope, the grandchild blocking until its context
// ends. Every level reports its request id and its context's end.
type engTree struct {
	ids        chan string // one per level, as it starts
	grandReady chan struct{}
	ended      chan error // one per level
}

func newEngTree(t testing.TB) (*engTree, *Registry) {
	tr := &engTree{ids: make(chan string, 3), grandReady: make(chan struct{}, 1), ended: make(chan error, 3)}
	level := func(next string) Handler {
		return func(ctx context.Context, oc *OpContext, in json.RawMessage) (json.RawMessage, error) {
			tr.ids <- oc.RequestID
			defer func() { tr.ended <- ctx.Err() }()
			if next == "" {
				tr.grandReady <- struct{}{}
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return oc.Call(ctx, next, in)
		}
	}
	auth := &CompositionAuthority{Label: "tree", Scopes: []string{"tree"}}
	grand := Registration{Spec: NewSpec("tree/grand", Query), Once: level(""), Authority: auth, Scoped: NewScopedEnv()}
	grand.Spec.Visibility = Internal
	grand.Spec.Access.RequiredScopes = []string{"tree"}
	child := Registration{Spec: NewSpec("tree/child", Query), Once: level("tree/grand"), Authority: auth, Scoped: NewScopedEnv("tree/grand")}
	child.Spec.Visibility = Internal
	r := engRegistry(t,
		Registration{Spec: NewSpec("tree/parent", Query), Once: level("tree/child"), Authority: auth, Scoped: NewScopedEnv("tree/child")},
		child, grand)
	return tr, r
}

// §5.9: cancelling the client's call cancels the whole composed tree on the server,
// and the child ids never appear on the wire (no call.aborted for them either).
func TestEngineAbortTree(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		tr, reg := newEngTree(t)
		p := engNewPair(t, mode, &Dispatcher{Registry: reg}, &Dispatcher{}, nil, nil)
		ctx, cancel := context.WithCancel(engCtx(t))
		res := engGo(ctx, p.client, "tree/parent", nil)
		engWait(t, tr.grandReady, "the grandchild to start")
		var ids []string
		for range 3 {
			ids = append(ids, engWait(t, tr.ids, "the request ids"))
		}
		wireID := p.wire.requestID(t, fromClient, "/tree/parent")
		if ids[0] != wireID {
			t.Fatalf("the parent's RequestID %s is not its wire id %s", ids[0], wireID)
		}
		cancel()
		for i := range 3 {
			if err := engWait(t, tr.ended, "every level to end"); !errors.Is(err, context.Canceled) {
				t.Fatalf("level %d ended with ctx error %v, want context.Canceled", i, err)
			}
		}
		if r := engWait(t, res, "the call to return"); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled call = %v", r.err)
		}
		p.closeBoth()
		engOnlyEnvelopes(t, p.wire, fromClient, wireID, EvRequested, EvAborted)
		engOnlyEnvelopes(t, p.wire, fromServer, wireID)
		for _, d := range []engDir{fromClient, fromServer} {
			for _, e := range p.wire.all(d) {
				if e.ID == ids[1] || e.ID == ids[2] {
					t.Fatalf("a child id went on the wire: %s %s %s", d, e.Type, e.ID)
				}
				if d == fromServer && e.Type == EvAborted {
					t.Fatalf("the server sent call.aborted (id %s)", e.ID)
				}
			}
		}
	})
}

// §5.9: ContinueRunning: a started child survives its aborted parent (its context is
// not cancelled) and a child the aborted parent starts afterwards never runs.
func TestEngineAbortContinueRunning(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		childStarted := make(chan struct{}, 1)
		release := make(chan struct{})
		childCtxErr := make(chan error, 1)
		var lateRan sync.Once
		lateRanCh := make(chan struct{})
		parentSawAbort := make(chan struct{})
		parentResults := make(chan [2]error, 1)
		reg := engRegistry(t,
			engQuery("job/child", func(ctx context.Context, _ *OpContext, _ json.RawMessage) (json.RawMessage, error) {
				childStarted <- struct{}{}
				<-release
				childCtxErr <- ctx.Err()
				return json.RawMessage(`"finished"`), nil
			}),
			engQuery("job/late", func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
				lateRan.Do(func() { close(lateRanCh) })
				return nil, nil
			}),
			Registration{
				Spec: NewSpec("job/parent", Query),
				Once: func(ctx context.Context, oc *OpContext, in json.RawMessage) (json.RawMessage, error) {
					stop := context.AfterFunc(ctx, func() { close(parentSawAbort) })
					defer stop()
					out, cerr := oc.Env.Invoke(ctx, "job", "child", in, oc, ContinueRunning)
					var childErr error
					if cerr != nil {
						childErr = cerr
					} else if string(out) != `"finished"` {
						childErr = errors.New("child output " + string(out))
					}
					<-ctx.Done()
					_, lateErr := oc.Env.Invoke(ctx, "job", "late", nil, oc, ContinueRunning)
					var le error
					if lateErr != nil {
						le = lateErr
					}
					parentResults <- [2]error{childErr, le}
					return nil, ctx.Err()
				},
				Authority: &CompositionAuthority{Label: "jobs"},
				Scoped:    NewScopedEnv("job/child", "job/late"),
			},
		)
		p := engNewPair(t, mode, &Dispatcher{Registry: reg}, &Dispatcher{}, nil, nil)
		ctx, cancel := context.WithCancel(engCtx(t))
		res := engGo(ctx, p.client, "job/parent", nil)
		engWait(t, childStarted, "the child to start")
		cancel()
		engWait(t, parentSawAbort, "the parent's context to be cancelled by the abort")
		close(release)
		if err := engWait(t, childCtxErr, "the child to finish"); err != nil {
			t.Fatalf("the started child's context ended (%v) with its parent", err)
		}
		r := engWait(t, parentResults, "the parent to finish")
		if r[0] != nil {
			t.Fatalf("the started child failed: %v", r[0])
		}
		engWantErr(t, r[1], CodeInternal, "request aborted")
		select {
		case <-lateRanCh:
			t.Fatal("a child of an aborted parent started")
		default:
		}
		if r := engWait(t, res, "the cancelled call"); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled call = %v", r.err)
		}
	})
}

// §5.9, §6: a call.aborted for an id nobody knows is a silent no-op; running requests
// and the connection are unaffected.
func TestEngineAbortUnknownID(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		started := make(chan struct{}, 1)
		release := make(chan struct{})
		p := engNewPair(t, mode, &Dispatcher{Registry: engRegistry(t, engQuery("job/wait", func(ctx context.Context, _ *OpContext, _ json.RawMessage) (json.RawMessage, error) {
			started <- struct{}{}
			select {
			case <-release:
				return json.RawMessage(`"done"`), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}))}, &Dispatcher{}, nil, nil)
		ctx := engCtx(t)
		res := engGo(ctx, p.client, "job/wait", nil)
		engWait(t, started, "the handler to start")
		// Aborts for unknown ids in both directions.
		for _, c := range []*Conn{p.client, p.server} {
			if err := c.sendAbort(&pendingCall{id: "no-such-id"}); err != nil {
				t.Fatalf("send the abort: %v", err)
			}
		}
		// A round trip in each direction after the bogus aborts.
		if _, err := p.client.Call(ctx, OpServicesList, nil); err != nil {
			t.Fatalf("client call after a bogus abort: %v", err)
		}
		if _, err := p.server.Call(ctx, "nope/none", nil); !errors.Is(err, &CallError{Code: CodeNotFound}) {
			t.Fatalf("server call after a bogus abort: %v, want NOT_FOUND", err)
		}
		close(release)
		if r := engWait(t, res, "the running call"); r.err != nil || string(r.out) != `"done"` {
			t.Fatalf("running call = %s, %v", r.out, r.err)
		}
		select {
		case <-p.client.Done():
			t.Fatal("the client Conn ended")
		case <-p.server.Done():
			t.Fatal("the server Conn ended")
		default:
		}
		p.closeBoth()
		for _, d := range []engDir{fromClient, fromServer} {
			if got := len(p.wire.with(d, "no-such-id", "")); got != 1 {
				t.Fatalf("%s wrote %d envelopes with the unknown id, want 1 (the abort); wire:\n%s", d, got, p.wire.dump())
			}
		}
	})
}

// §6: call.aborted is looked up in both tables: a peer that gives up answering our
// call (aborts our request id) ends our pending call instead of leaving it hanging.
func TestEngineAbortFromResponder(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		started := make(chan struct{}, 1)
		cli := &Dispatcher{Registry: engRegistry(t, engQuery("cli/slow", func(ctx context.Context, _ *OpContext, _ json.RawMessage) (json.RawMessage, error) {
			started <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}))}
		p := engNewPair(t, mode, &Dispatcher{}, cli, nil, nil)
		ctx := engCtx(t)
		res := engGo(ctx, p.server, "cli/slow", nil)
		engWait(t, started, "the client handler to start")
		id := p.wire.requestID(t, fromServer, "/cli/slow")
		if err := p.client.sendAbort(&pendingCall{id: id}); err != nil {
			t.Fatal(err)
		}
		r := engWait(t, res, "the server's call to end")
		engWantErr(t, r.err, CodeInternal, "aborted")
	})
}

// §5.9: a FromCall forwarder sends call.aborted for its own wire id when the composed
// call it serves is cancelled, and the cascade continues on the remote.
func TestEngineFromCallForwarderAbort(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		remoteStarted := make(chan string, 2)
		remoteEnded := make(chan error, 2)
		srvReg := engRegistry(t, engQuery("srv/block", func(ctx context.Context, oc *OpContext, _ json.RawMessage) (json.RawMessage, error) {
			remoteStarted <- oc.RequestID
			<-ctx.Done()
			remoteEnded <- ctx.Err()
			return nil, ctx.Err()
		}))
		// The client's local composing operation, calling the imported op.
		localStarted := make(chan string, 2)
		cliReg := engRegistry(t, Registration{
			Spec: NewSpec("local/compose", Query),
			Once: func(ctx context.Context, oc *OpContext, in json.RawMessage) (json.RawMessage, error) {
				localStarted <- oc.RequestID
				return oc.Call(ctx, "srv/block", in)
			},
			Authority: &CompositionAuthority{Label: "composer"},
			Scoped:    NewScopedEnv("srv/block"),
		})
		p := engNewPair(t, mode, &Dispatcher{Registry: srvReg}, &Dispatcher{Registry: cliReg}, nil, &core.Identity{ID: "srv"})
		ctx := engCtx(t)
		regs, err := FromCall(ctx, p.client, FromCallConfig{Filter: map[string]bool{"srv/block": true}})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.client.RegisterImported(regs...); err != nil {
			t.Fatal(err)
		}
		env := NewPeerCompositeEnv(LocalEnv(cliReg))
		env.AttachPeer("srv", p.client.OverlayEnv())

		t.Run("local composition cancelled", func(t *testing.T) {
			cctx, cancel := context.WithCancel(ctx)
			reg, _ := cliReg.Lookup("local/compose")
			res := make(chan *CallError, 1)
			go func() {
				_, cerr := cliReg.Invoke(cctx, "local/compose", nil, NewRootContext("", nil, nil, reg, env, nil))
				res <- cerr
			}()
			engWait(t, localStarted, "the composing op to start")
			engWait(t, remoteStarted, "the remote op to start")
			wireID := p.wire.requestID(t, fromClient, "/srv/block")
			cancel()
			if err := engWait(t, remoteEnded, "the remote handler to be cancelled"); !errors.Is(err, context.Canceled) {
				t.Fatalf("remote ctx error %v, want context.Canceled", err)
			}
			engWait(t, res, "the composed call to end")
			p.wire.waitType(t, fromClient, wireID, EvAborted)
		})

		t.Run("cascade across the wire", func(t *testing.T) {
			// The server calls local/compose on the client, which forwards to
			// srv/block on the server; cancelling the server's call cascades back.
			cctx, cancel := context.WithCancel(ctx)
			res := engGo(cctx, p.server, "local/compose", nil)
			outerLocal := engWait(t, localStarted, "the composing op to start")
			innerRemote := engWait(t, remoteStarted, "the forwarded op to start")
			outerWire := p.wire.requestID(t, fromServer, "/local/compose")
			if outerLocal != outerWire {
				t.Fatalf("local/compose ran as %s, want its wire id %s", outerLocal, outerWire)
			}
			cancel()
			if err := engWait(t, remoteEnded, "the forwarded op to be cancelled"); !errors.Is(err, context.Canceled) {
				t.Fatalf("forwarded op ctx error %v, want context.Canceled", err)
			}
			if r := engWait(t, res, "the server's call"); !errors.Is(r.err, context.Canceled) {
				t.Fatalf("server's call = %v", r.err)
			}
			p.wire.waitType(t, fromServer, outerWire, EvAborted)
			p.wire.waitType(t, fromClient, innerRemote, EvAborted)
		})
	})
}

// engDrain reads a subscription to its end.
func engDrain(t testing.TB, ctx context.Context, s *Stream) ([]string, error) {
	t.Helper()
	var got []string
	for {
		out, err := s.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return got, nil
			}
			return got, err
		}
		got = append(got, string(out))
	}
}
