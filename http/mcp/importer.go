package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/alknet/alknet/call"
)

// ClientName is the client name the from_mcp importer reports when it initializes a
// session.
const ClientName = "alknet-from-mcp"

// ToolErrorCode is the error code of a tool result with isError set, the one error
// every imported operation declares. Its details are the result's content blocks.
const ToolErrorCode = "MCP_TOOL_ERROR"

// Default import limits, used for every ImportLimits field that is zero or negative.
const (
	// DefaultMaxTools is the most tools a server may list (over all pages).
	DefaultMaxTools = 1024
	// DefaultMaxResponseBytes is the most bytes read from one upstream HTTP response
	// body (16 MiB).
	DefaultMaxResponseBytes = 16 << 20
)

var (
	// ErrConfig is wrapped by the errors NewImporter returns for an invalid
	// ImportConfig.
	ErrConfig = errors.New("mcp: invalid import configuration")
	// ErrClosed is wrapped by the error of Import after Close.
	ErrClosed = errors.New("mcp: importer closed")
	// ErrResponseTooLarge is wrapped by the error of an import whose initialize or
	// tools/list answer is over ImportLimits.MaxResponseBytes (a forwarded call over
	// it fails with an INTERNAL CallError naming the limit).
	ErrResponseTooLarge = errors.New("mcp: upstream response too large")
)

// ImportLimits bounds what an import accepts. The zero value means the defaults.
type ImportLimits struct {
	// MaxTools is the most tools the server may list (0: DefaultMaxTools); more fail
	// the import with DiscoveryFailed.
	MaxTools int
	// MaxResponseBytes is the most bytes read from any response body of the server
	// (0: DefaultMaxResponseBytes): the initialize and tools/list answers, and the
	// answer of each tools/call, whose forwarded call then fails with an INTERNAL
	// error naming the limit.
	MaxResponseBytes int64
}

func (l ImportLimits) withDefaults() ImportLimits {
	if l.MaxTools <= 0 {
		l.MaxTools = DefaultMaxTools
	}
	if l.MaxResponseBytes <= 0 {
		l.MaxResponseBytes = DefaultMaxResponseBytes
	}
	return l
}

// ImportConfig describes the MCP server an Importer imports the tools of.
type ImportConfig struct {
	// Namespace is the first segment of every imported name ("<Namespace>/<tool>")
	// and the capability key of the per-call credential; one valid name segment,
	// required.
	Namespace string
	// Endpoint is the absolute http or https URL of the server's streamable-HTTP MCP
	// endpoint, without user information or fragment; required.
	Endpoint string
	// Expose makes the imported operations External; by default they are Internal,
	// reachable by composition only.
	Expose bool
	// Credential is the Bearer token of the importer's own session: initialize,
	// tools/list, notifications and the closing DELETE (nil: none). It is copied by
	// NewImporter, wiped by Close and never logged. Forwarded calls do not use it:
	// they send the credential of the call's capabilities.
	Credential []byte
	// HTTPClient sends every request (its Transport wrapped to set the Authorization
	// header and bound response bodies; redirects are not followed). Nil: a client of
	// its own with direct connections (Proxy nil), closed by Close. A client whose
	// Transport is nil gets that same transport instead of http.DefaultTransport,
	// which would read proxies from the environment. A shared outbound client
	// (package github.com/alknet/alknet/http/client, Shared.Client) fits here.
	HTTPClient *http.Client
	// Limits bound the import and the forwarded calls.
	Limits ImportLimits
	// Logger receives a warning, naming the tool only, for every tool that is not
	// imported; nil discards them. The SDK's own records are always discarded.
	Logger *slog.Logger
}

// Importer is the from_mcp adapter: a call.OperationAdapter whose Import connects to
// an MCP server, lists its tools and returns one forwarding registration per tool.
// It owns one MCP session, shared by the forwarded calls, until Close. It is safe for
// concurrent use.
type Importer struct {
	ns       string
	endpoint string // as validated, for redaction in error messages
	expose   bool
	limits   ImportLimits
	logger   *slog.Logger
	cred     *secret
	client   *http.Client
	own      *http.Transport // nil unless the importer built it
	sdk      *sdk.Client

	mu     sync.Mutex
	sess   *sdk.ClientSession
	closed bool
	// closing tracks the background closes of discarded sessions.
	closing sync.WaitGroup
}

var _ call.OperationAdapter = (*Importer)(nil)

// NewImporter validates cfg and returns an Importer; it does not connect. Errors wrap
// ErrConfig.
func NewImporter(cfg ImportConfig) (*Importer, error) {
	ns := cfg.Namespace
	if ns == "" || strings.Contains(ns, "/") || call.ValidateName(ns) != nil {
		return nil, fmt.Errorf("%w: namespace %q must be one valid name segment", ErrConfig, ns)
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: endpoint does not parse", ErrConfig)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return nil, fmt.Errorf("%w: endpoint must be an absolute http or https URL", ErrConfig)
	case u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("%w: endpoint has no host", ErrConfig)
	case u.User != nil:
		return nil, fmt.Errorf("%w: endpoint must not carry user information (use Credential)", ErrConfig)
	case u.Fragment != "" || u.RawFragment != "" || strings.Contains(cfg.Endpoint, "#"):
		return nil, fmt.Errorf("%w: endpoint must not have a fragment", ErrConfig)
	}
	u.Scheme = scheme
	if !validCredential(cfg.Credential) {
		return nil, fmt.Errorf("%w: credential cannot be sent in a header", ErrConfig)
	}
	if cfg.Limits.MaxResponseBytes < 0 || cfg.Limits.MaxTools < 0 {
		return nil, fmt.Errorf("%w: negative limit", ErrConfig)
	}
	i := &Importer{
		ns:       ns,
		endpoint: u.String(),
		expose:   cfg.Expose,
		limits:   cfg.Limits.withDefaults(),
		logger:   cfg.Logger,
		cred:     &secret{b: append([]byte(nil), cfg.Credential...)},
	}
	if i.logger == nil {
		i.logger = slog.New(slog.DiscardHandler)
	}
	var base http.RoundTripper
	client := &http.Client{}
	if cfg.HTTPClient != nil {
		*client = *cfg.HTTPClient
		base = cfg.HTTPClient.Transport
	}
	if base == nil {
		i.own = newTransport()
		base = i.own
	}
	client.Transport = &roundTripper{base: base, origin: u, cred: i.cred, limit: i.limits.MaxResponseBytes}
	// The credential is added below redirects: following one could carry it to
	// another server, and an MCP endpoint has no reason to redirect.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	i.client = client
	i.sdk = sdk.NewClient(&sdk.Implementation{Name: ClientName, Version: clientVersion}, &sdk.ClientOptions{
		// The SDK's own records (which can quote transport errors, URLs included) are
		// discarded.
		Logger: nil,
		// Only tools: no roots, sampling or elicitation are offered.
		Capabilities: &sdk.ClientCapabilities{},
	})
	return i, nil
}

// clientVersion is the version the importer reports.
const clientVersion = "1.0.0"

// Import connects (once; later imports reuse the session) and lists the server's
// tools, following pagination, and returns one registration per tool, sorted by name
// (see the package documentation). A tool whose name does not make a valid operation
// name, or whose schemas the registry would refuse, is skipped with a warning. Errors
// are *call.AdapterError: Unauthorized when the server refuses the credential at
// connect (a 401 or 403 answer, or an error saying "unauthorized"), DiscoveryFailed
// for any other connect or tools/list failure and for a server listing more than
// MaxTools tools, SamePeerCollision for two tools of the same name.
func (i *Importer) Import(ctx context.Context) ([]call.Registration, error) {
	var tools []*sdk.Tool
	for attempt := 0; ; attempt++ {
		sess, fresh, err := i.sessionFresh(ctx)
		if err != nil {
			return nil, err
		}
		tools, err = i.listTools(ctx, sess)
		if err == nil {
			break
		}
		// tools/list is safe to repeat: a session kept from an earlier import may have
		// been lost since, so try once more on a new one.
		if fresh || attempt > 0 || ctx.Err() != nil || errors.Is(err, ErrResponseTooLarge) {
			return nil, err
		}
		i.discard(sess)
	}
	scratch := call.NewBareRegistry()
	regs := make([]call.Registration, 0, len(tools))
	for _, t := range tools {
		reg, ok, err := i.registration(scratch, t)
		if err != nil {
			return nil, err
		}
		if ok {
			regs = append(regs, reg)
		}
	}
	sort.Slice(regs, func(a, b int) bool { return regs[a].Spec.Name < regs[b].Spec.Name })
	return regs, nil
}

// session returns the open session, connecting when there is none.
func (i *Importer) session(ctx context.Context) (*sdk.ClientSession, error) {
	sess, _, err := i.sessionFresh(ctx)
	return sess, err
}

// sessionFresh is session, also reporting whether it connected just now.
func (i *Importer) sessionFresh(ctx context.Context) (sess *sdk.ClientSession, fresh bool, err error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return nil, false, &call.AdapterError{Kind: call.AdapterDiscoveryFailed, Err: ErrClosed}
	}
	if i.sess != nil {
		return i.sess, false, nil
	}
	if sess, err = i.connect(ctx); err != nil {
		return nil, false, err
	}
	i.sess = sess
	return sess, true, nil
}

// connect opens a session with the session credential. Called with i.mu held.
func (i *Importer) connect(ctx context.Context) (*sdk.ClientSession, error) {
	st := &reqState{}
	t := &sdk.StreamableClientTransport{
		Endpoint:   i.endpoint,
		HTTPClient: i.client,
		// Only the answers to this side's requests are wanted: no standalone GET
		// stream (the importer uses no server-initiated messages, and a long-lived
		// stream would meet the response-size limit).
		DisableStandaloneSSE: true,
		MaxEventSize:         int(min(i.limits.MaxResponseBytes, int64(maxInt))),
	}
	sess, err := i.sdk.Connect(withState(ctx, st), t, nil)
	if err != nil {
		_, refused, tooLarge := st.snapshot()
		// A 401 or 403 seen on the wire, or an error saying "unauthorized" (the
		// status text of a 401; the digits alone also occur in port numbers).
		kind := call.AdapterDiscoveryFailed
		if refused || strings.Contains(strings.ToLower(i.redact(err)), "unauthorized") {
			kind = call.AdapterUnauthorized
		}
		return nil, &call.AdapterError{Kind: kind, Err: i.connectError(err, tooLarge)}
	}
	return sess, nil
}

const maxInt = int(^uint(0) >> 1)

// connectError is the cause of a failed connect, with the endpoint redacted.
func (i *Importer) connectError(err error, tooLarge bool) error {
	if tooLarge {
		return fmt.Errorf("mcp: connect failed: upstream response exceeds the %d-byte limit: %w", i.limits.MaxResponseBytes, ErrResponseTooLarge)
	}
	return fmt.Errorf("mcp: connect failed: %s", i.redact(err))
}

// redact returns err's text with the endpoint URL replaced.
func (i *Importer) redact(err error) string {
	return strings.ReplaceAll(err.Error(), i.endpoint, "<endpoint>")
}

// listTools lists every tool, following pagination, bounded by MaxTools.
func (i *Importer) listTools(ctx context.Context, sess *sdk.ClientSession) ([]*sdk.Tool, error) {
	var tools []*sdk.Tool
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > i.limits.MaxTools {
			return nil, &call.AdapterError{Kind: call.AdapterDiscoveryFailed, Err: fmt.Errorf("mcp: tools/list did not end after %d pages", pages)}
		}
		st := &reqState{}
		res, err := sess.ListTools(withState(ctx, st), &sdk.ListToolsParams{Cursor: cursor})
		if err != nil {
			_, _, tooLarge := st.snapshot()
			cause := fmt.Errorf("mcp: tools/list failed: %s", i.redact(err))
			if tooLarge {
				cause = fmt.Errorf("mcp: tools/list failed: upstream response exceeds the %d-byte limit: %w", i.limits.MaxResponseBytes, ErrResponseTooLarge)
			}
			return nil, &call.AdapterError{Kind: call.AdapterDiscoveryFailed, Err: cause}
		}
		tools = append(tools, res.Tools...)
		if len(tools) > i.limits.MaxTools {
			return nil, &call.AdapterError{Kind: call.AdapterDiscoveryFailed, Err: fmt.Errorf("mcp: server lists more than %d tools", i.limits.MaxTools)}
		}
		if res.NextCursor == "" {
			return tools, nil
		}
		if seen[res.NextCursor] {
			return nil, &call.AdapterError{Kind: call.AdapterDiscoveryFailed, Err: errors.New("mcp: tools/list repeated a cursor")}
		}
		seen[res.NextCursor] = true
		cursor = res.NextCursor
	}
}

// registration builds the registration of tool t and checks it against scratch, a
// bare registry: ok is false (and a warning logged) when the registry would refuse
// its name or schemas.
func (i *Importer) registration(scratch *call.Registry, t *sdk.Tool) (call.Registration, bool, error) {
	if t == nil {
		return call.Registration{}, false, nil
	}
	name := i.ns + "/" + t.Name
	if t.Name == "" || call.ValidateName(name) != nil {
		i.logger.Warn("mcp import: tool skipped: its name is not a valid operation name", slog.String("tool", t.Name))
		return call.Registration{}, false, nil
	}
	in, err := schemaJSON(t.InputSchema)
	if err != nil || in == nil {
		i.logger.Warn("mcp import: tool skipped: its input schema is not usable", slog.String("tool", t.Name))
		return call.Registration{}, false, nil
	}
	out := json.RawMessage(contentBlocksSchema)
	if t.OutputSchema != nil {
		if out, err = schemaJSON(t.OutputSchema); err != nil || out == nil {
			i.logger.Warn("mcp import: tool skipped: its output schema is not usable", slog.String("tool", t.Name))
			return call.Registration{}, false, nil
		}
	}
	spec := call.NewSpec(name, call.Mutation)
	spec.Visibility = call.Internal
	if i.expose {
		spec.Visibility = call.External
	}
	spec.InputSchema = in
	spec.OutputSchema = out
	spec.ErrorSchemas = []call.ErrorDefinition{{
		Code:        ToolErrorCode,
		Description: "The MCP tool reported an error (isError); details are the result's content blocks.",
		Schema:      json.RawMessage(contentBlocksSchema),
	}}
	reg := call.Registration{
		Spec:       spec,
		Once:       i.forwarder(t.Name),
		Provenance: call.ProvenanceFromMCP,
	}
	if err := scratch.Register(reg); err != nil {
		if errors.Is(err, call.ErrDuplicateOperation) {
			return call.Registration{}, false, &call.AdapterError{Kind: call.AdapterSamePeerCollision, Op: name, Err: errors.New("mcp: the server lists two tools of this name")}
		}
		i.logger.Warn("mcp import: tool skipped: the registry does not accept its schemas", slog.String("tool", t.Name))
		return call.Registration{}, false, nil
	}
	return reg, true, nil
}

// schemaJSON is the JSON of a schema the SDK decoded; nil for none.
func schemaJSON(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if string(b) == "null" {
		return nil, nil
	}
	return b, nil
}

// Close ends the importer's session (a DELETE to the server with the session
// credential), wipes the credential and closes the idle connections of the
// transport the importer built. Forwarded calls fail afterwards. It is idempotent;
// only the first call can return an error (the DELETE's).
func (i *Importer) Close() error {
	i.mu.Lock()
	if i.closed {
		i.mu.Unlock()
		return nil
	}
	i.closed = true
	sess := i.sess
	i.sess = nil
	i.mu.Unlock()
	var err error
	if sess != nil {
		if cerr := sess.Close(); cerr != nil {
			err = fmt.Errorf("mcp: closing the session: %s", i.redact(cerr))
		}
	}
	i.closing.Wait()
	i.cred.wipe()
	if i.own != nil {
		i.own.CloseIdleConnections()
	}
	return err
}
