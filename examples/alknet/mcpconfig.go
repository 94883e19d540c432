package main

import (
	"fmt"
	"net/url"

	"github.com/alknet/alknet/call"
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
func (fc *fileConfig) mcpImports(dir string, openapis []openapiImport) ([]mcpImport, error) {
	seen := map[string]bool{}
	for _, o := range openapis {
		seen[o.namespace] = true
	}
	var out []mcpImport
	for i, e := range fc.MCP {
		m := mcpImport{index: i, namespace: e.Namespace, endpoint: e.Endpoint, expose: e.Expose}
		switch {
		case e.Namespace == "":
			return nil, fmt.Errorf("mcp[%d].namespace: required", i)
		case call.ValidateName(e.Namespace+"/x") != nil:
			return nil, fmt.Errorf("mcp[%d].namespace: %q is not a valid operation namespace", i, clip(e.Namespace))
		case seen[e.Namespace]:
			return nil, fmt.Errorf("mcp[%d].namespace: %q is imported twice", i, clip(e.Namespace))
		case e.Endpoint == "":
			return nil, fmt.Errorf("mcp[%d].endpoint: required (such as \"https://mcp.example.com/mcp\")", i)
		}
		u, err := url.Parse(e.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("mcp[%d].endpoint: %q: want an http or https URL", i, clip(e.Endpoint))
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
