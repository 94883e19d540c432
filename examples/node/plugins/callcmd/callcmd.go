package callcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core/endpoint"

	"github.com/alknet/alknet/examples/node"
)

// callAbortGrace bounds how long call waits, once interrupted or timed out, for a
// subscription's call.aborted to be sent before it closes the connection.
const callAbortGrace = 2 * time.Second

// callOptions are call's parsed flags and arguments.
type callOptions struct {
	node.DialFlags
	token   string
	timeout time.Duration
	op      string
	input   json.RawMessage
}

// Synopsis is the usage line of call.
const Synopsis = "alknet call [--state DIR] [--passphrase-file FILE] (--pin FP | --insecure) [--tcp] [--token TOKEN] [--timeout DUR] HOST:PORT OPERATION [JSON-INPUT]"

func (c *cli) parseCall(args []string) (*callOptions, error) {
	cmd := c.NewFlagSet("call", Synopsis)
	o := &callOptions{}
	o.Register(cmd.FlagSet)
	cmd.StringVar(&o.token, "token", "", "send `TOKEN` (an alk_ API key or a peer token) with the call: the node runs the call as the token's identity")
	cmd.DurationVar(&o.timeout, "timeout", 0, "give up after `DUR`ation with a TIMEOUT error (default: 30s for a query or mutation, no limit for a subscription)")
	pos, err := cmd.ParseArgs(args)
	if err != nil {
		return nil, err
	}
	switch {
	case len(pos) == 0:
		return nil, node.Usagef(`call: missing HOST:PORT and OPERATION (run "alknet call -h" for usage)`)
	case len(pos) == 1:
		return nil, node.Usagef(`call: missing OPERATION (run "alknet call -h" for usage)`)
	case len(pos) > 3:
		return nil, node.Usagef(`call: want HOST:PORT OPERATION [JSON-INPUT], got %d arguments (run "alknet call -h" for usage)`, len(pos))
	}
	if err := o.CheckVerify("call"); err != nil {
		return nil, err
	}
	if o.timeout < 0 {
		return nil, node.Usagef("call: --timeout %s: must not be negative", o.timeout)
	}
	if !utf8.ValidString(o.token) {
		return nil, node.Usagef("call: --token is not valid UTF-8")
	}
	if err := o.SetAddr("call", pos[0]); err != nil {
		return nil, err
	}
	o.op = pos[1]
	if o.op == "" || o.op == "/" {
		return nil, node.Usagef("call: OPERATION is empty")
	}
	o.input = json.RawMessage("null")
	if len(pos) == 3 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, []byte(pos[2])); err != nil {
			return nil, node.Usagef("call: JSON-INPUT is not valid JSON: %v", err)
		}
		o.input = buf.Bytes()
	}
	return o, nil
}

// Failure is a call the node (or the call protocol) ended with a CallError: report
// prints its JSON, {"code","message","retryable","details"?}, as one line without the
// "alknet: " prefix, and the exit code is 1.
type Failure struct {
	ce   *call.CallError
	json []byte
}

// NewFailure returns the Failure of ce.
func NewFailure(ce *call.CallError) *Failure {
	b, err := json.Marshal(ce)
	if err != nil {
		// Only details can fail to marshal; the rest is strings and a bool.
		b, _ = json.Marshal(&call.CallError{Code: ce.Code, Message: ce.Message, Retryable: ce.Retryable})
	}
	return &Failure{ce: ce, json: b}
}

// Error returns "call: CODE: message".
func (e *Failure) Error() string { return "call: " + e.ce.Error() }

// Unwrap returns the CallError.
func (e *Failure) Unwrap() error { return e.ce }

// Report is the CallError's JSON, which node.CLI.Report prints without a prefix.
func (e *Failure) Report() string { return string(e.json) }

// call calls one operation of a node and prints its outputs, one compact JSON line each.
func (c *cli) call(ctx context.Context, args []string) error {
	o, err := c.parseCall(args)
	if err != nil {
		return err
	}
	opts, err := c.DialOptions("call", &o.DialFlags)
	if err != nil {
		return err
	}
	conn, err := call.Dial(ctx, o.Addr, call.DialOptions{Transport: opts})
	if err != nil {
		return node.DescribeDialError(ctx, "call", &o.DialFlags, call.ALPN, err)
	}
	defer conn.Close()

	callCtx := ctx
	if o.timeout > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	err = c.invoke(ctx, callCtx, conn, o)
	// A call given up on this side (Ctrl-C, --timeout, stdout failing) was aborted on
	// the wire; a CallError from the node left nothing to abort.
	_, fromNode := errors.AsType[*Failure](err)
	if o.Network == endpoint.NetworkQUIC && (callCtx.Err() != nil || err != nil && !fromNode) {
		settle(conn)
	}
	return err
}

// invoke runs the call on conn: a subscription when the node says the operation is
// one, a query or mutation otherwise.
func (c *cli) invoke(ctx, callCtx context.Context, conn *call.Conn, o *callOptions) error {
	sub, err := o.isSubscription(callCtx, conn)
	if err != nil {
		return o.failed(ctx, err)
	}
	if sub {
		return c.subscribe(ctx, callCtx, conn, o)
	}
	out, err := conn.Call(callCtx, o.op, o.input, o.callOptions()...)
	if err != nil {
		return o.failed(ctx, err)
	}
	return c.printOutput(out)
}

// settle lets the call.aborted of an interrupted or timed-out call reach the node
// before the connection closes. On QUIC it travels on a stream of its own, and closing
// the connection right after writing it may drop it (the node would then learn of the
// end from the connection closing); one more round trip, on a later stream, carries it
// out. It waits at most callAbortGrace.
func settle(conn *call.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), callAbortGrace)
	defer cancel()
	// services/schema without input: the smallest answer there is (INVALID_INPUT).
	_, _ = conn.Call(ctx, call.OpServicesSchema, nil)
}

// callOptions returns the per-call options: the token, when given. Each call needs
// its own: the call package wipes an option's copy of the token once it is sent.
func (o *callOptions) callOptions() []call.CallOption {
	if o.token == "" {
		return nil
	}
	tok := []byte(o.token)
	defer clear(tok)
	return []call.CallOption{call.WithAuthToken(tok)}
}

// isSubscription asks the node (services/schema) whether the operation is a
// subscription. Any answer but a spec saying so means "call it": an operation the
// caller may not see (NOT_FOUND, FORBIDDEN) then fails the call with the true error.
// Only an interruption or the --timeout deadline is an error.
func (o *callOptions) isSubscription(ctx context.Context, conn *call.Conn) (bool, error) {
	raw, err := conn.Call(ctx, call.OpServicesSchema, map[string]string{"name": o.op}, o.callOptions()...)
	if err != nil {
		if ctx.Err() != nil {
			return false, err
		}
		return false, nil
	}
	var spec struct {
		OpType string `json:"op_type"`
	}
	if json.Unmarshal(raw, &spec) != nil {
		return false, nil
	}
	return spec.OpType == call.Subscription.String(), nil
}

// subscribe runs a subscription and prints its events until it completes. When ctx
// (Ctrl-C) or callCtx (--timeout) ends, the subscription is aborted on the wire before
// the connection closes.
func (c *cli) subscribe(ctx, callCtx context.Context, conn *call.Conn, o *callOptions) error {
	s, err := conn.Subscribe(callCtx, o.op, o.input, o.callOptions()...)
	if err != nil {
		return o.failed(ctx, err)
	}
	defer awaitEnd(s)
	for {
		out, err := s.Next(callCtx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return o.failed(ctx, err)
		}
		if err := c.printOutput(out); err != nil {
			return err
		}
	}
}

// awaitEnd closes s and waits (at most callAbortGrace) until it has ended: Close
// aborts a live subscription in the background, and its call.aborted must be sent
// before the connection closes.
func awaitEnd(s *call.Stream) {
	_ = s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), callAbortGrace)
	defer cancel()
	for {
		// Events still buffered come first; the terminal outcome is recorded only
		// after the abort was sent.
		if _, err := s.Next(ctx); err != nil {
			return
		}
	}
}

// failed turns the failure of a call into the command's error: "call: interrupted"
// once ctx (Ctrl-C) has ended, a *Failure for a CallError (a deadline is TIMEOUT),
// and otherwise one line naming the node.
func (o *callOptions) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errors.New("call: interrupted")
	}
	if ce, ok := errors.AsType[*call.CallError](err); ok && ce != nil {
		return NewFailure(ce)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return NewFailure(call.ErrTimedOut())
	}
	return fmt.Errorf("call: %s: %w", o.Addr, err)
}

// printOutput prints one output as a line of compact JSON.
func (c *cli) printOutput(out json.RawMessage) error {
	var buf bytes.Buffer
	if len(out) == 0 {
		buf.WriteString("null")
	} else if err := json.Compact(&buf, out); err != nil {
		return fmt.Errorf("call: the node answered with invalid JSON: %w", err)
	}
	buf.WriteByte('\n')
	if _, err := c.Stdout.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("call: write stdout: %w", err)
	}
	return nil
}
