package git

import (
	"github.com/alknet/alknet/examples/node/metrics"
	alkgit "github.com/alknet/alknet/git"
)

// families returns the git server's counters as metric families. Repository names,
// refs and identities are never labels.
func families(s alkgit.Stats) []metrics.Family {
	ops := metrics.NewCounter("alknet_git_operations_total",
		"Finished git operations (alknet/git and SSH exec) by service (git-upload-pack, git-receive-pack, git-upload-archive, other) and outcome.",
		"service", "outcome")
	for _, svc := range alkgit.Services() {
		for _, o := range alkgit.Outcomes() {
			if n, ok := s.Operations[svc][o]; ok {
				ops.Add(float64(n), svc, o)
			}
		}
	}
	return []metrics.Family{
		*ops,
		*metrics.NewGauge("alknet_git_operations_active", "git operations running.").Add(float64(s.Active)),
		*metrics.NewCounter("alknet_git_bytes_total", "Bytes of finished git operations, by direction (in: from clients, out: to clients).", "direction").
			Add(float64(s.BytesIn), "in").Add(float64(s.BytesOut), "out"),
	}
}
