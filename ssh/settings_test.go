package ssh_test

import (
	"strings"
	"testing"

	"github.com/alknet/alknet/ssh"
)

func TestSettings(t *testing.T) {
	s := ssh.Settings{
		ExecAllow:       []string{"uptime"},
		MaxAuthAttempts: 3,
		Forwarding: ssh.ForwardingSettings{
			Default: "deny",
			Rules:   []ssh.RuleSettings{{Target: "cidr:127.0.0.0/8", Action: "allow", Principals: []string{"alice"}, Transports: []string{"quic"}}},
		},
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg, err := s.Config(ssh.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxAuthAttempts != 3 || len(cfg.Forwarding.Rules) != 1 || cfg.Forwarding.Rules[0].Action != ssh.Allow || cfg.Forwarding.Rules[0].Target.String() != "cidr:127.0.0.0/8" {
		t.Errorf("config %+v", cfg)
	}
	if err := cfg.Forwarding.Validate(); err != nil {
		t.Errorf("the policy of valid settings fails ForwardingPolicy.Validate: %v", err)
	}
	if err := (&ssh.Settings{}).Validate(); err != nil {
		t.Errorf("zero settings: %v", err)
	}

	rule := func(r ssh.RuleSettings) ssh.Settings {
		return ssh.Settings{Forwarding: ssh.ForwardingSettings{Rules: []ssh.RuleSettings{{Target: "any", Action: "deny"}, r}}}
	}
	cases := []struct {
		s    ssh.Settings
		want string
	}{
		{ssh.Settings{ExecAllow: []string{"/bin/sh"}}, `exec_allow[0]: invalid program name "/bin/sh"`},
		{ssh.Settings{CertAuthorityScopes: []string{""}}, "cert_authority_scopes[0]: empty scope"},
		{ssh.Settings{CertAuthorities: []string{"ssh-ed25519 nope"}}, "cert_authorities[0]: invalid key"},
		{ssh.Settings{Forwarding: ssh.ForwardingSettings{Default: "Allow"}}, `forwarding.default: invalid action "Allow"`},
		{rule(ssh.RuleSettings{Action: "allow"}), "forwarding.rules[1].target: missing"},
		{rule(ssh.RuleSettings{Target: "cidr:10.0.0.0/33", Action: "allow"}), `forwarding.rules[1].target: invalid forwarding target "cidr:10.0.0.0/33"`},
		{rule(ssh.RuleSettings{Target: "any"}), "forwarding.rules[1].action: missing"},
		{rule(ssh.RuleSettings{Target: "any", Action: "permit"}), `forwarding.rules[1].action: invalid action "permit"`},
		{rule(ssh.RuleSettings{Target: "any", Action: "allow", Principals: []string{"a", ""}}), "forwarding.rules[1].principals[1]: empty principal"},
		{rule(ssh.RuleSettings{Target: "any", Action: "allow", Transports: []string{"udp"}}), `forwarding.rules[1].transports[0]: invalid transport "udp"`},
	}
	for _, tc := range cases {
		err := tc.s.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
		if _, err := tc.s.Config(ssh.Config{}); err == nil {
			t.Errorf("%+v: Config accepted invalid settings", tc.s)
		}
	}
}
