package call

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/http/client"
	alkmcp "github.com/alknet/alknet/http/mcp"
)

// mcpImport is one validated [[mcp]] entry.
type mcpImport struct {
	index          int
	namespace      string
	endpoint       string
	credentialFile string
	expose         bool
}

// key names the entry's field in errors: mcp[i].field.
func (m mcpImport) key(field string) string {
	return fmt.Sprintf("mcp[%d].%s", m.index, field)
}

// mcpImports validates the [[mcp]] entries; relative credential paths are resolved
// against dir. A namespace may not be used by an [[openapi]] import as well.
func (c *Config) mcpImports(dir string, openapis []openapiImport) ([]mcpImport, error) {
	seen := map[string]bool{}
	for _, o := range openapis {
		seen[o.namespace] = true
	}
	var out []mcpImport
	for i, e := range c.MCP {
		m := mcpImport{index: i, namespace: e.Namespace, endpoint: e.Endpoint, expose: e.Expose}
		switch {
		case e.Namespace == "":
			return nil, fmt.Errorf("mcp[%d].namespace: required", i)
		case call.ValidateName(e.Namespace+"/x") != nil:
			return nil, fmt.Errorf("mcp[%d].namespace: %q is not a valid operation namespace", i, node.Clip(e.Namespace))
		case seen[e.Namespace]:
			return nil, fmt.Errorf("mcp[%d].namespace: %q is imported twice", i, node.Clip(e.Namespace))
		case e.Endpoint == "":
			return nil, fmt.Errorf("mcp[%d].endpoint: required (such as \"https://mcp.example.com/mcp\")", i)
		}
		u, err := url.Parse(e.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("mcp[%d].endpoint: %q: want an http or https URL", i, node.Clip(e.Endpoint))
		}
		if u.User != nil {
			return nil, fmt.Errorf("mcp[%d].endpoint: credentials in the URL are refused; use credential_file", i)
		}
		seen[e.Namespace] = true
		if e.CredentialFile != "" {
			m.credentialFile = resolvePath(dir, e.CredentialFile)
		}
		out = append(out, m)
	}
	return out, nil
}

// mcpImportTimeout bounds connecting to one [[mcp]] server and listing its tools at
// start.
const mcpImportTimeout = 30 * time.Second

// importMCP connects to every [[mcp]] server through shared and returns the operations
// of their tools, each carrying the import's credential as the capability
// "http_token:<namespace>" (what the forwarder reads per call with
// core.Capabilities.Get), and the importers, whose sessions the caller closes when
// the node stops. On an error the importers opened so far are closed.
func importMCP(ctx context.Context, imports []mcpImport, shared *client.Shared, log *slog.Logger) (regs []call.Registration, importers []*alkmcp.Importer, err error) {
	defer func() {
		if err != nil {
			closeAll(importers)
			importers = nil
		}
	}()
	for _, m := range imports {
		var cred []byte
		if m.credentialFile != "" {
			if cred, err = node.ReadSecretFile(m.key("credential_file"), m.credentialFile, maxCredentialLength, "credential"); err != nil {
				return nil, importers, err
			}
		}
		imp, err := alkmcp.NewImporter(alkmcp.ImportConfig{
			Namespace:  m.namespace,
			Endpoint:   m.endpoint,
			Expose:     m.expose,
			Credential: cred,
			HTTPClient: shared.Client(),
			Logger:     log,
		})
		if err != nil {
			clear(cred)
			return nil, importers, &node.ConfigError{Err: fmt.Errorf("mcp[%d] (%s): %w", m.index, m.namespace, err)}
		}
		importers = append(importers, imp)
		var caps core.Capabilities
		if cred != nil {
			caps = core.NewCapabilities(map[string][]byte{core.CapabilityHTTPToken + m.namespace: cred})
		}
		clear(cred)
		ictx, cancel := context.WithTimeout(ctx, mcpImportTimeout)
		rs, err := imp.Import(ictx)
		cancel()
		if err != nil {
			return nil, importers, fmt.Errorf("mcp[%d] (%s): %w", m.index, m.namespace, err)
		}
		for i := range rs {
			rs[i].Caps = caps
		}
		regs = append(regs, rs...)
		log.Info("imported MCP tools", slog.String("namespace", m.namespace), slog.Int("operations", len(rs)), slog.Bool("expose", m.expose))
	}
	return regs, importers, nil
}

// closeAll closes the importers' sessions.
func closeAll(importers []*alkmcp.Importer) {
	for _, imp := range importers {
		_ = imp.Close()
	}
}
