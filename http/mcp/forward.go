package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/alknet/alknet/call"
)

// contentBlocksSchema is the output schema of a tool that declares none, and the
// schema of MCP_TOOL_ERROR details: an array of MCP content blocks.
const contentBlocksSchema = `{"type":"array","items":{"oneOf":[` +
	`{"type":"object","required":["type","text"],"properties":{"type":{"const":"text"},"text":{"type":"string"}}},` +
	`{"type":"object","required":["type","data","mimeType"],"properties":{"type":{"const":"image"},"data":{"type":"string"},"mimeType":{"type":"string"}}},` +
	`{"type":"object","required":["type","data","mimeType"],"properties":{"type":{"const":"audio"},"data":{"type":"string"},"mimeType":{"type":"string"}}},` +
	`{"type":"object","required":["type","resource"],"properties":{"type":{"const":"resource"},"resource":{"type":"object"}}},` +
	`{"type":"object","required":["type","uri","name"],"properties":{"type":{"const":"resource_link"},"uri":{"type":"string"},"name":{"type":"string"}}}` +
	`]}}`

// maxErrorMessage bounds the part of a tool's error text copied into a CallError
// message (the whole text stays in the details).
const maxErrorMessage = 512

// forwarder returns the handler of the imported tool: one tools/call on the
// importer's session per call.
func (i *Importer) forwarder(tool string) call.Handler {
	return func(ctx context.Context, oc *call.OpContext, input json.RawMessage) (json.RawMessage, error) {
		var cred []byte
		if oc != nil {
			cred, _ = oc.Caps.Get(i.ns)
		}
		defer wipe(cred)
		if !validCredential(cred) {
			return nil, call.Errorf(call.CodeInternal, "the credential of %q cannot be sent in a header", i.ns)
		}
		params := &sdk.CallToolParams{Name: tool, Arguments: toolArguments(input)}
		res, err := i.callTool(ctx, cred, params)
		if err != nil {
			return nil, err
		}
		out, cerr := convertResult(res)
		if cerr != nil {
			return nil, cerr
		}
		return out, nil
	}
}

// toolArguments returns input when it is a JSON object, else {"value": input} (MCP
// arguments are an object). A nil input is {}.
func toolArguments(input json.RawMessage) json.RawMessage {
	t := bytes.TrimSpace(input)
	if len(t) == 0 {
		return json.RawMessage("{}")
	}
	if t[0] == '{' {
		return t
	}
	b := make([]byte, 0, len(t)+10)
	b = append(b, `{"value":`...)
	b = append(b, t...)
	b = append(b, '}')
	return b
}

// callTool runs one tools/call with cred (nil: no Authorization header). When it
// fails before any of its requests reached the server (the server restarted or
// expired the session and answers 404, or the session had already failed), it drops
// the session, reconnects once and calls again.
func (i *Importer) callTool(ctx context.Context, cred []byte, params *sdk.CallToolParams) (*sdk.CallToolResult, error) {
	for attempt := 0; ; attempt++ {
		sess, err := i.callSession(ctx)
		if err != nil {
			return nil, err
		}
		st := &reqState{perCall: true, cred: cred}
		res, err := sess.CallTool(withState(ctx, st), params)
		if err == nil {
			return res, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		reached, _, tooLarge := st.snapshot()
		if tooLarge {
			i.discard(sess)
			return nil, call.Errorf(call.CodeInternal, "tools/call failed: upstream response exceeds the %d-byte limit", i.limits.MaxResponseBytes)
		}
		if !reached {
			// Nothing of this call reached the server: every answer was a 404 (the
			// session is gone) or the session had failed before sending. Calling again
			// on a new session cannot run the tool twice.
			i.discard(sess)
			if attempt == 0 {
				continue
			}
		}
		return nil, call.Errorf(call.CodeInternal, "tools/call failed: %s", i.redact(err))
	}
}

// callSession returns the session for a forwarded call, connecting when it has been
// discarded. A connect failure is an INTERNAL error.
func (i *Importer) callSession(ctx context.Context) (*sdk.ClientSession, error) {
	// The session outlives this call: connect without the call's values, so that
	// the session's own requests never carry the call's state.
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	sess, err := i.session(cctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ae *call.AdapterError
		if errors.As(err, &ae) && errors.Is(ae.Err, ErrClosed) {
			return nil, call.NewCallError(call.CodeInternal, "tools/call failed: the importer is closed")
		}
		return nil, call.Errorf(call.CodeInternal, "tools/call failed: reconnecting: %v", err)
	}
	return sess, nil
}

// discard drops sess when it is still the importer's session, so that the next call
// connects again. It closes it in the background (a DELETE, unless the server
// already forgot it), once the calls still running on it are done; Close waits for
// that.
func (i *Importer) discard(sess *sdk.ClientSession) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.sess != sess {
		return
	}
	i.sess = nil
	i.closing.Go(func() { _ = sess.Close() })
}

// convertResult turns a tools/call result from the server into the operation's
// output, or into an MCP_TOOL_ERROR CallError whose details are the content blocks
// when isError is set. The output is structuredContent when present, else the
// content blocks as a JSON array; text blocks are never parsed.
func convertResult(res *sdk.CallToolResult) (json.RawMessage, *call.CallError) {
	if res == nil {
		return nil, call.NewCallError(call.CodeInternal, "tools/call returned no result")
	}
	blocks, err := contentJSON(res.Content)
	if err != nil {
		return nil, call.NewCallError(call.CodeInternal, "tools/call returned content that cannot be re-encoded")
	}
	if res.IsError {
		e := call.NewCallError(ToolErrorCode, toolErrorMessage(res.Content))
		e.Details = blocks
		return nil, e
	}
	if res.StructuredContent != nil {
		b, err := json.Marshal(res.StructuredContent)
		if err != nil || !json.Valid(b) {
			return nil, call.NewCallError(call.CodeInternal, "tools/call returned structured content that cannot be re-encoded")
		}
		return b, nil
	}
	return blocks, nil
}

// contentJSON encodes content blocks as a JSON array ([] for none).
func contentJSON(content []sdk.Content) (json.RawMessage, error) {
	var buf bytes.Buffer
	buf.WriteByte('[')
	n := 0
	for _, c := range content {
		if c == nil {
			continue
		}
		b, err := c.MarshalJSON()
		if err != nil {
			return nil, err
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
		n++
	}
	buf.WriteByte(']')
	if !json.Valid(buf.Bytes()) {
		return nil, errors.New("invalid content JSON")
	}
	return buf.Bytes(), nil
}

// toolErrorMessage is the message of an MCP_TOOL_ERROR: the start of the first text
// block, or a fixed text.
func toolErrorMessage(content []sdk.Content) string {
	for _, c := range content {
		if t, ok := c.(*sdk.TextContent); ok && t.Text != "" {
			return "MCP tool error: " + truncate(t.Text, maxErrorMessage)
		}
	}
	return "MCP tool error"
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:cut], len(s))
}
