package sftp

import (
	"github.com/alknet/alknet/examples/node/metrics"
	alksftp "github.com/alknet/alknet/sftp"
)

// families returns the SFTP server's counters as metric families. Paths, exports and
// identities are never labels.
func families(s alksftp.Stats) []metrics.Family {
	sessions := metrics.NewCounter("alknet_sftp_sessions_total",
		"Finished SFTP sessions (alknet/sftp and the SSH subsystem) by outcome (ok, closed, idle_timeout, packet_too_large, bad_message, error).", "outcome")
	for _, o := range alksftp.Outcomes() {
		if n, ok := s.Sessions[o]; ok {
			sessions.Add(float64(n), o)
		}
	}
	return []metrics.Family{
		*sessions,
		*metrics.NewGauge("alknet_sftp_sessions_active", "SFTP sessions running.").Add(float64(s.ActiveSessions)),
		*metrics.NewCounter("alknet_sftp_sessions_refused_total", "SFTP sessions refused for the per-identity session cap.").Add(float64(s.Refused)),
		*metrics.NewCounter("alknet_sftp_bytes_total", "SFTP protocol bytes of finished sessions, by direction (in: received, out: sent).", "direction").
			Add(float64(s.BytesIn), "in").Add(float64(s.BytesOut), "out"),
		*metrics.NewCounter("alknet_sftp_files_total", "Files opened by finished SFTP sessions, by mode (read, write).", "mode").
			Add(float64(s.FilesRead), "read").Add(float64(s.FilesWritten), "write"),
	}
}
