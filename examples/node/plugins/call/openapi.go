package call

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/http/client"
	"github.com/alknet/alknet/http/openapi"
)

// maxCredentialLength bounds an [[openapi]] credential_file (8 KiB: long JWTs fit).
const maxCredentialLength = 8 << 10

// openapiImport is one validated [[openapi]] entry.
type openapiImport struct {
	index          int
	namespace      string
	spec           string // absolute, or relative to the working directory
	baseURL        string
	auth           openapi.Auth
	credentialFile string
	expose         bool
}

// key names the entry in errors: openapi[i] (namespace).
func (o openapiImport) key(field string) string {
	return fmt.Sprintf("openapi[%d].%s", o.index, field)
}

// openapiImports validates the [[openapi]] entries; relative paths are resolved
// against dir.
func (c *Config) openapiImports(dir string) ([]openapiImport, error) {
	var out []openapiImport
	seen := map[string]bool{}
	for i, e := range c.OpenAPI {
		o := openapiImport{index: i, namespace: e.Namespace, baseURL: e.BaseURL, expose: e.Expose}
		switch {
		case e.Namespace == "":
			return nil, fmt.Errorf("openapi[%d].namespace: required", i)
		case seen[e.Namespace]:
			return nil, fmt.Errorf("openapi[%d].namespace: %q is imported twice", i, node.Clip(e.Namespace))
		case e.Spec == "":
			return nil, fmt.Errorf("openapi[%d].spec: required (the OpenAPI document's file)", i)
		case e.BaseURL == "":
			return nil, fmt.Errorf("openapi[%d].base_url: required (such as \"https://api.example.com/v1\")", i)
		}
		seen[e.Namespace] = true
		authText := e.Auth
		if authText == "" {
			authText = "none"
		}
		auth, err := openapi.ParseAuth(authText)
		if err != nil {
			return nil, fmt.Errorf("openapi[%d].auth: %q: want none, bearer, basic or header:<Name>", i, node.Clip(e.Auth))
		}
		o.auth = auth
		switch {
		case auth.Kind == openapi.AuthNone && e.CredentialFile != "":
			return nil, fmt.Errorf("openapi[%d].credential_file: given, but auth is none", i)
		case auth.Kind != openapi.AuthNone && e.CredentialFile == "":
			return nil, fmt.Errorf("openapi[%d].credential_file: required with auth = %q", i, node.Clip(authText))
		}
		o.spec = resolvePath(dir, e.Spec)
		if e.CredentialFile != "" {
			o.credentialFile = resolvePath(dir, e.CredentialFile)
		}
		out = append(out, o)
	}
	return out, nil
}

// resolvePath resolves a relative path against dir ("" keeps it as it is).
func resolvePath(dir, p string) string {
	if dir == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// importOpenAPI reads every import's document and credential and returns the
// operations that forward to the APIs through shared, each carrying its credential
// as the capability "http_token:<namespace>" (what the forwarder reads with
// core.Capabilities.Get).
func importOpenAPI(imports []openapiImport, shared *client.Shared) ([]call.Registration, error) {
	var out []call.Registration
	for _, o := range imports {
		data, err := readSpecFile(o.key("spec"), o.spec)
		if err != nil {
			return nil, err
		}
		doc, err := openapi.Parse(data, openapi.Limits{})
		if err != nil {
			return nil, &node.ConfigError{Err: fmt.Errorf("%s %s: %w", o.key("spec"), o.spec, err)}
		}
		regs, err := openapi.Import(doc, openapi.ServiceConfig{
			Namespace: o.namespace,
			BaseURL:   o.baseURL,
			Auth:      o.auth,
			Expose:    o.expose,
		}, shared)
		if err != nil {
			return nil, &node.ConfigError{Err: fmt.Errorf("openapi[%d] (%s): %w", o.index, o.namespace, err)}
		}
		var caps core.Capabilities
		if o.credentialFile != "" {
			cred, err := node.ReadSecretFile(o.key("credential_file"), o.credentialFile, maxCredentialLength, "credential")
			if err != nil {
				return nil, err
			}
			caps = core.NewCapabilities(map[string][]byte{core.CapabilityHTTPToken + o.namespace: cred})
			clear(cred)
		}
		for i := range regs {
			regs[i].Caps = caps
		}
		out = append(out, regs...)
	}
	return out, nil
}

// readSpecFile reads an OpenAPI document, refusing one over the importer's size limit
// before reading it.
func readSpecFile(key, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &node.ConfigError{Err: fmt.Errorf("%s: %w", key, err)}
	}
	defer f.Close()
	limit := int64(openapi.DefaultMaxDocumentSize)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > limit {
		return nil, &node.ConfigError{Err: fmt.Errorf("%s %s: larger than the limit of %d bytes", key, path, limit)}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &node.ConfigError{Err: fmt.Errorf("%s %s: %w", key, path, err)}
	}
	if int64(len(data)) > limit {
		return nil, &node.ConfigError{Err: fmt.Errorf("%s %s: larger than the limit of %d bytes", key, path, limit)}
	}
	return data, nil
}
