package ssh

import (
	"github.com/alknet/alknet/examples/node/metrics"
	alkssh "github.com/alknet/alknet/ssh"
)

// families returns the SSH server's counters as metric families. Commands, users,
// subsystem names and forwarding destinations are never labels.
func families(s alkssh.Stats) []metrics.Family {
	reqs := metrics.NewCounter("alknet_ssh_requests_total",
		"SSH requests by kind (exec, subsystem, direct_tcpip, remote_forward) and outcome (accepted, refused).",
		"kind", "outcome")
	for _, k := range []struct {
		kind string
		o    alkssh.Outcomes
	}{{"exec", s.Exec}, {"subsystem", s.Subsystem}, {"direct_tcpip", s.DirectTCPIP}, {"remote_forward", s.RemoteForward}} {
		reqs.Add(float64(k.o.Accepted), k.kind, "accepted")
		reqs.Add(float64(k.o.Refused), k.kind, "refused")
	}
	return []metrics.Family{
		*metrics.NewCounter("alknet_ssh_sessions_total", "SSH connections that authenticated.").Add(float64(s.Sessions)),
		*metrics.NewGauge("alknet_ssh_sessions_active", "SSH connections open after authentication.").Add(float64(s.ActiveSessions)),
		*metrics.NewCounter("alknet_ssh_handshake_failures_total", "SSH handshakes (authentication included) that failed or timed out.").Add(float64(s.HandshakeFailures)),
		*reqs,
	}
}
