package dns

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/alknet/alknet/dns/pkarr"
)

// relayTimeout bounds one request to a relay.
const relayTimeout = 30 * time.Second

// newRepublisher sets up st.rp, which publishes this node's packet to the relays at
// urls (verified by the system roots) once the node is ready (runRepublisher) and
// about hourly after that. It returns the function that stops it.
func (p *Plugin) newRepublisher(st *state, urls []string) func() error {
	tr := &http.Transport{ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second, IdleConnTimeout: time.Minute}
	hc := &http.Client{Transport: tr, Timeout: relayTimeout}
	relays := make([]pkarr.Publisher, len(urls))
	for i, u := range urls {
		relays[i] = &pkarr.Client{BaseURL: u, HTTP: hc, Timeout: relayTimeout}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	st.rp = &pkarr.Republisher{
		Relays: relays,
		Build: func(context.Context) (*pkarr.SignedPacket, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			if !st.ready {
				return nil, errNotReady
			}
			return st.packet()
		},
		Logger: st.log,
	}
	started := false // under p.mu
	st.runRP = func() {
		started = true
		go func() {
			defer close(done)
			_ = st.rp.Run(ctx)
		}()
	}
	return func() error {
		cancel()
		p.mu.Lock()
		wait := started
		p.mu.Unlock()
		if wait {
			<-done
		}
		tr.CloseIdleConnections()
		return nil
	}
}

// errNotReady is Build's error before the node listens (never seen: the republisher
// starts once it does).
var errNotReady = errors.New("dns: the node is not listening yet")

// runRepublisher starts the republisher, once.
func (st *state) runRepublisher() {
	if st.runRP != nil {
		st.runRP()
		st.runRP = nil
	}
}
