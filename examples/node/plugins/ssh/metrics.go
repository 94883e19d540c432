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

// forwardFamilies returns alknet/forward's counters as metric families. Identities
// and destinations are never labels.
func forwardFamilies(s alkssh.ForwardStats) []metrics.Family {
	streams := metrics.NewCounter("alknet_forward_streams_total",
		"alknet/forward streams by outcome: opened (destination connected), refused (by the forwarding policy), dial_failed (resolution, connect or connect timeout), rejected (header, stream or memory limits).",
		"outcome")
	streams.Add(float64(s.Opened), "opened").Add(float64(s.Refused), "refused").
		Add(float64(s.DialFailed), "dial_failed").Add(float64(s.Rejected), "rejected")
	bytes := metrics.NewCounter("alknet_forward_bytes_total",
		"Bytes forwarded by alknet/forward: up to destinations, down to clients.", "direction")
	bytes.Add(float64(s.BytesUp), "up").Add(float64(s.BytesDown), "down")
	remote := metrics.NewCounter("alknet_forward_remote_requests_total",
		"alknet/forward remote-forward (listen) requests by outcome (accepted, refused).", "outcome")
	remote.Add(float64(s.RemoteForward.Accepted), "accepted").Add(float64(s.RemoteForward.Refused), "refused")
	return []metrics.Family{
		*streams,
		*metrics.NewGauge("alknet_forward_active", "alknet/forward connections carrying bytes now (remote forwards included).").Add(float64(s.Active)),
		*bytes,
		*remote,
		*metrics.NewCounter("alknet_forward_remote_connections_total", "Connections to remote-forward listeners handed to alknet/forward clients.").Add(float64(s.RemoteConnections)),
	}
}
