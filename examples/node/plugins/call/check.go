package call

import (
	"errors"
	"fmt"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/examples/demo"
	"github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/http/client"
)

// Check implements node.Checker for "config check": it reads, parses and imports the
// [[openapi]] documents and reads their credential files as Setup does, and registers
// the operations beside the demo ones, so that a document that does not parse, a
// credential file group or others can read, or an operation name that collides is
// refused before the node starts; [[mcp]] credential files are read too, but the
// servers are not contacted (serve lists their tools when it starts).
func (p *Plugin) Check(c node.Config) error {
	cfg, _ := c.(*Config)
	if cfg == nil {
		return errors.New("call: no config")
	}
	// The client is built for the forwarders only; Check sends nothing.
	outbound, err := client.New(client.Config{})
	if err != nil {
		return err
	}
	defer outbound.Close()
	imported, err := importOpenAPI(cfg.openapi, outbound)
	if err != nil {
		return err
	}
	for _, m := range cfg.mcp {
		if m.credentialFile == "" {
			continue
		}
		cred, err := node.ReadSecretFile(m.key("credential_file"), m.credentialFile, maxCredentialLength, "credential")
		if err != nil {
			return err
		}
		clear(cred)
	}
	reg := call.NewRegistry()
	if err := demo.Register(reg); err != nil {
		return fmt.Errorf("demo operations: %w", err)
	}
	for _, r := range imported {
		if err := reg.Register(r); err != nil {
			return fmt.Errorf("imported operation %s: %w", r.Spec.Name, err)
		}
	}
	return nil
}
