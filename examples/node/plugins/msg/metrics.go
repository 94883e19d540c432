package msg

import (
	"context"
	"slices"
	"time"

	"github.com/alknet/alknet/examples/node/metrics"
	"github.com/alknet/alknet/msg"
)

// totalsTimeout bounds the store read of one scrape.
const totalsTimeout = 5 * time.Second

// source returns the msg server's metrics: its counters and, when its store can sum
// what it holds (a msg.Totaler: all three stores), the stored mailboxes, envelopes and bytes.
func source(srv *msg.Server) metrics.Source {
	return func() []metrics.Family {
		fams := families(srv.Stats())
		ctx, cancel := context.WithTimeout(context.Background(), totalsTimeout)
		defer cancel()
		if t, err := srv.Totals(ctx); err == nil {
			fams = append(fams, totalsFamilies(t)...)
		}
		return fams
	}
}

// totalsFamilies returns a store's totals as metric families; no mailbox is named.
func totalsFamilies(t msg.Totals) []metrics.Family {
	return []metrics.Family{
		*metrics.NewGauge("alknet_msg_stored", "What the msg store holds, by kind (mailboxes holding envelopes, envelopes, bytes).", "kind").
			Add(float64(t.Mailboxes), "mailboxes").Add(float64(t.Envelopes), "envelopes").Add(float64(t.Bytes), "bytes"),
		*metrics.NewHistogram("alknet_msg_mailbox_envelopes", "Mailboxes by the envelopes they hold (a snapshot at scrape time, not a rate).",
			msg.MailboxSizeBounds()).AddHistogram(uint64(t.Mailboxes), float64(t.Envelopes), t.MailboxSizes),
	}
}

// families returns the msg server's counters as metric families. Mailboxes and
// senders are never labels.
func families(s msg.Stats) []metrics.Family {
	reqs := metrics.NewCounter("alknet_msg_requests_total",
		"msg requests answered ok, by operation (deliver counts envelopes accepted, duplicates apart; fetch, ack, keys_put, keys_get).", "operation").
		Add(float64(s.Deliveries), "deliver").
		Add(float64(s.Fetches), "fetch").
		Add(float64(s.Acks), "ack").
		Add(float64(s.KeysPut), "keys_put").
		Add(float64(s.KeysGet), "keys_get")
	envs := metrics.NewCounter("alknet_msg_envelopes_total",
		"Envelopes by event: duplicate (a delivery already held), fetched, acked (deleted by their owner), purged (expired).", "event").
		Add(float64(s.Duplicates), "duplicate").
		Add(float64(s.Fetched), "fetched").
		Add(float64(s.Acked), "acked").
		Add(float64(s.Purged), "purged")
	refused := metrics.NewCounter("alknet_msg_refused_total", "msg requests refused, by error code.", "code")
	codes := make([]string, 0, len(s.Refused))
	for c := range s.Refused {
		codes = append(codes, string(c))
	}
	slices.Sort(codes)
	for _, c := range codes {
		refused.Add(float64(s.Refused[msg.ErrorCode(c)]), c)
	}
	return []metrics.Family{*reqs, *envs, *refused}
}
