package ssh

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Settings is the configuration-file form of a server's policy: the [ssh] table of an
// alknet node's --config, decoded by its struct tags. Validate checks it and names the
// key at fault; Config maps it onto a Config. The zero value refuses exec, trusts no
// certificate authority, uses the default auth attempts and denies forwarding.
type Settings struct {
	// ExecAllow are the programs exec requests may run, bare names such as "uptime".
	ExecAllow []string `toml:"exec_allow"`
	// CertAuthorities are authorized_keys lines of trusted user certificate authorities.
	CertAuthorities []string `toml:"cert_authorities"`
	// CertAuthorityScopes are the scopes of users the certificate authorities vouch for.
	CertAuthorityScopes []string `toml:"cert_authority_scopes"`
	// MaxAuthAttempts is Config.MaxAuthAttempts.
	MaxAuthAttempts int `toml:"max_auth_attempts"`
	// Forwarding is the forwarding policy, of direct-tcpip channels and of
	// alknet/forward streams alike.
	Forwarding ForwardingSettings `toml:"forwarding"`
	// DisableForward serves alknet/ssh alone, without ALPNForward (whose clients, such
	// as alknet connect --via auto, then use SSH). A node serves ALPNForward only when
	// its policy can allow something; both are read when it starts.
	DisableForward bool `toml:"disable_forward"`
}

// ForwardingSettings is the forwarding policy in configuration-file form.
type ForwardingSettings struct {
	// Default is the action when no rule matches: "allow" or "deny" (empty: deny).
	Default string `toml:"default"`
	// Rules are tried in order; the first match wins.
	Rules []RuleSettings `toml:"rules"`
}

// RuleSettings is one forwarding rule in configuration-file form.
type RuleSettings struct {
	// Target is a Target in ParseTarget syntax.
	Target string `toml:"target"`
	// Action is "allow" or "deny".
	Action string `toml:"action"`
	// Principals are Rule.Principals.
	Principals []string `toml:"principals"`
	// Transports are Rule.Transports.
	Transports []string `toml:"transports"`
}

const targetSyntax = "(want any, host:<glob>, cidr:<net>, ports:<host-glob>:<lo>-<hi> or alknet)"

// Validate reports the first problem of s, naming its key relative to the table
// ("forwarding.rules[0].target: ...").
func (s *Settings) Validate() error {
	_, _, err := s.parse()
	return err
}

// Config returns the server configuration s describes, on top of base (which supplies
// the host key, identities, logger and the rest). s must be valid.
func (s *Settings) Config(base Config) (Config, error) {
	cas, fwd, err := s.parse()
	if err != nil {
		return Config{}, err
	}
	base.CertAuthorities = cas
	base.MaxAuthAttempts = s.MaxAuthAttempts
	// An empty allow list refuses every command.
	base.Exec = &AllowListExecutor{Allow: slices.Clone(s.ExecAllow)}
	base.Forwarding = fwd
	return base, nil
}

// ForwardConfig returns the Forwarder configuration s describes (its forwarding
// policy), on top of base (resolver, dialer, limits, logger). s must be valid.
func (s *Settings) ForwardConfig(base ForwardConfig) (ForwardConfig, error) {
	_, fwd, err := s.parse()
	if err != nil {
		return ForwardConfig{}, err
	}
	base.Forwarding = fwd
	return base, nil
}

// parse checks s and maps it onto the server's types.
func (s *Settings) parse() ([]CertAuthority, ForwardingPolicy, error) {
	var fwd ForwardingPolicy
	for i, name := range s.ExecAllow {
		if name == "" || strings.ContainsAny(name, "/ \t\r\n") || !utf8.ValidString(name) {
			return nil, fwd, fmt.Errorf("exec_allow[%d]: invalid program name %q (want a bare name such as \"uptime\": no slash, no blank)", i, clipText(name, maxErrorText))
		}
	}
	for i, scope := range s.CertAuthorityScopes {
		if scope == "" {
			return nil, fwd, fmt.Errorf("cert_authority_scopes[%d]: empty scope", i)
		}
	}
	var cas []CertAuthority
	for i, line := range s.CertAuthorities {
		ca, err := ParseCertAuthority(line)
		if err != nil {
			return nil, fwd, fmt.Errorf("cert_authorities[%d]: %s (want an authorized_keys line such as \"ssh-ed25519 AAAA... ops-ca\")", i, clipText(strings.TrimPrefix(err.Error(), "ssh: "), maxErrorText))
		}
		ca.Scopes = slices.Clone(s.CertAuthorityScopes)
		cas = append(cas, ca)
	}
	if d := s.Forwarding.Default; d != "" {
		a, err := ParseAction(d)
		if err != nil {
			return nil, fwd, fmt.Errorf("forwarding.default: invalid action %q (want \"allow\" or \"deny\")", clipText(d, maxErrorText))
		}
		fwd.Default = a
	}
	for i, r := range s.Forwarding.Rules {
		key := fmt.Sprintf("forwarding.rules[%d]", i)
		if r.Target == "" {
			return nil, fwd, fmt.Errorf("%s.target: missing %s", key, targetSyntax)
		}
		target, err := ParseTarget(r.Target)
		if err != nil {
			return nil, fwd, fmt.Errorf("%s.target: %s %s", key, clipText(strings.TrimPrefix(err.Error(), "ssh: "), maxErrorText), targetSyntax)
		}
		if r.Action == "" {
			return nil, fwd, fmt.Errorf("%s.action: missing (want \"allow\" or \"deny\")", key)
		}
		action, err := ParseAction(r.Action)
		if err != nil {
			return nil, fwd, fmt.Errorf("%s.action: invalid action %q (want \"allow\" or \"deny\")", key, clipText(r.Action, maxErrorText))
		}
		fwd.Rules = append(fwd.Rules, Rule{
			Target:     target,
			Action:     action,
			Principals: slices.Clone(r.Principals),
			Transports: slices.Clone(r.Transports),
		})
	}
	// The rules on principals and transports are ForwardingPolicy.Validate's; this only
	// names the key at fault.
	if err := fwd.Validate(); err != nil {
		return nil, fwd, s.policyError(err)
	}
	return cas, fwd, nil
}

// policyError names the [ssh] key of a ForwardingPolicy.Validate error.
func (s *Settings) policyError(err error) error {
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Rule < 0 || pe.Rule >= len(s.Forwarding.Rules) {
		return fmt.Errorf("forwarding: %s", clipText(strings.TrimPrefix(err.Error(), "ssh: "), maxErrorText))
	}
	key := fmt.Sprintf("forwarding.rules[%d]", pe.Rule)
	r := s.Forwarding.Rules[pe.Rule]
	switch {
	case pe.Field == "principals":
		return fmt.Errorf("%s.principals[%d]: %s (want a peer id, a certificate principal or a scope)", key, pe.Item, pe.Msg)
	case pe.Field == "transports" && pe.Item >= 0 && pe.Item < len(r.Transports):
		return fmt.Errorf("%s.transports[%d]: invalid transport %q (want \"quic\", \"tls\" or \"tcp\")", key, pe.Item, clipText(r.Transports[pe.Item], maxErrorText))
	}
	return fmt.Errorf("%s.%s: %s", key, pe.Field, pe.Msg)
}
