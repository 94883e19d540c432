// Package dns is the node plugin of the dns module: the [dns] table of --config
// (decoded into the module's Config and checked by its Validate), the authoritative
// DNS server on doq and alknet/dns (DNS over QUIC) and dot (DNS over TLS on the
// TCP+TLS twin), the node zone with its discovery records, static zones re-read on
// SIGHUP, an optional plain UDP+TCP listener for dig and kdig, and pkarr: a relay
// mounted on the node's HTTP surface at /pkarr/ whose packets the DNS server answers
// for, and a republisher of this node's own packet. Its commands are "alknet dns
// query", "alknet dns publish" and "alknet dns resolve".
//
// Without a [dns] table the node serves no DNS. The discovery records list the ALPNs
// the node serves (every plugin's, known once it listens) and the addresses of
// [dns] addresses, by default the listen address.
package dns

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alknet/alknet/core"
	alkdns "github.com/alknet/alknet/dns"
	"github.com/alknet/alknet/dns/pkarr"
	"github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/examples/node/metrics"
)

// RelayPath is where the pkarr relay is mounted on the node's HTTP surface: keys are
// served at RelayPath + "/<z32>", so its base URL is https://HOST:PORT/pkarr.
const RelayPath = "/pkarr"

// Plugin serves DNS when the config has a [dns] table, and provides the dns commands.
type Plugin struct {
	live liveHandler

	mu sync.Mutex
	st *state // nil until Setup found a [dns] table
}

// New returns the dns plugin.
func New() *Plugin { return &Plugin{} }

// Name is "dns".
func (*Plugin) Name() string { return "dns" }

// Config is the plugin's part of --config: the [dns] table (nil when absent).
type Config struct {
	DNS *alkdns.Config `toml:"dns"`
}

// Resolve makes the zone files relative to the config file's directory.
func (c *Config) Resolve(dir string) {
	if c.DNS != nil {
		c.DNS.Resolve(dir)
	}
}

// Validate checks the [dns] table; errors name the key ("dns.zones[0]: ...").
func (c *Config) Validate() error {
	if c.DNS == nil {
		return nil
	}
	if err := c.DNS.Validate(); err != nil {
		return fmt.Errorf("dns.%w", err)
	}
	return nil
}

// NewConfig returns the default: no [dns], no DNS service.
func (*Plugin) NewConfig() node.Config { return &Config{} }

// state is what a serving plugin keeps.
type state struct {
	cfg    alkdns.Config // the config the handler in use was built from
	key    ed25519.PrivateKey
	log    *slog.Logger
	relay  *pkarr.Relay // nil without [dns.pkarr] relay
	rp     *pkarr.Republisher
	runRP  func()           // runs rp until the node closes
	alpns  []string         // the node's ALPNs, from Ready
	listen []netip.AddrPort // the publishable listen addresses, from Ready
	ready  bool
}

// liveHandler answers with the zone handler in use, swapped whole on reload.
type liveHandler struct {
	h atomic.Pointer[alkdns.Handler]
}

// ServeDNS answers r with the current handler (SERVFAIL before there is one).
func (l *liveHandler) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	if h := l.h.Load(); h != nil {
		h.ServeDNS(w, r)
		return
	}
	m := new(mdns.Msg)
	_ = w.WriteMsg(m.SetRcode(r, mdns.RcodeServerFailure))
}

// Setup loads the zones (so that a broken file stops serve) and returns the DNS server
// under doq, alknet/dns and dot; it binds listen_plain and mounts the pkarr relay when
// configured. The discovery records are filled in once the node listens (OnReady),
// and the republisher starts then.
func (p *Plugin) Setup(ctx context.Context, env *node.Env) ([]core.ProtocolHandler, error) {
	cfg := env.Config(p).(*Config).DNS
	if cfg == nil {
		return nil, nil
	}
	st := &state{cfg: *cfg, key: env.Key, log: env.Logger}
	if cfg.Pkarr.Relay {
		st.relay = pkarr.NewRelay(pkarr.RelayConfig{Logger: env.Logger})
		if err := env.HandleHTTP(RelayPath+"/", http.StripPrefix(RelayPath, st.relay)); err != nil {
			return nil, fmt.Errorf("build handlers: dns: pkarr relay: %w", err)
		}
	}
	// Until the node listens, the node zone holds no discovery records.
	h, err := st.handler(*cfg, false)
	if err != nil {
		return nil, fmt.Errorf("build handlers: dns: %s", scrubPaths(err, cfg.Zones))
	}
	p.live.h.Store(h)
	srv, err := alkdns.NewServer(cfg.ServerConfig(&p.live, env.Logger))
	if err != nil {
		return nil, fmt.Errorf("build handlers: dns: %w", err)
	}
	relay := st.relay
	env.AddMetrics(func() []metrics.Family { return families(srv.Stats(), relay) })
	if cfg.ListenPlain != "" {
		plain, err := alkdns.ListenPlain(ctx, cfg.ListenPlain, srv, env.Logger)
		if err != nil {
			return nil, fmt.Errorf("build handlers: dns: listen_plain: %w", err)
		}
		env.OnClose(plain.Close)
		env.Logger.Info("dns plain listener (unencrypted, for debugging)",
			slog.String("udp", plain.UDPAddr().String()), slog.String("tcp", plain.TCPAddr().String()))
	}
	if len(cfg.Pkarr.Publish) > 0 {
		env.OnClose(p.newRepublisher(st, cfg.Pkarr.Publish))
	}
	p.mu.Lock()
	p.st = st
	p.mu.Unlock()
	env.OnReady(func(r node.Ready) { p.ready(r) })
	return []core.ProtocolHandler{
		node.As(alkdns.ALPNDoQ, srv), // stock DoQ clients (kdig +quic)
		node.As(alkdns.ALPN, srv),    // the same bytes under alknet's name
		node.As(alkdns.ALPNDoT, srv), // DNS over TLS on the TCP+TLS listener
	}, nil
}

// ready completes the node zone with the node's ALPNs and listen addresses, stores
// the node's own packet in its relay and starts publishing.
func (p *Plugin) ready(r node.Ready) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	st.alpns = slices.Clone(r.ALPNs)
	st.listen = nil
	for _, a := range []net.Addr{r.QUIC, r.TCP} {
		if a == nil {
			continue
		}
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil || ap.Addr().IsUnspecified() || ap.Port() == 0 {
			continue
		}
		if ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()); !slices.Contains(st.listen, ap) {
			st.listen = append(st.listen, ap)
		}
	}
	if len(st.cfg.Addresses) == 0 && len(st.listen) == 0 {
		st.log.Warn("dns: the listen address is unspecified, so the discovery records carry no address; set [dns] addresses")
	}
	if st.relay != nil && !slices.ContainsFunc(r.ALPNs, func(a string) bool { return a == "h2" || a == "http/1.1" || a == "alknet/http" }) {
		st.log.Warn("dns: [dns.pkarr] relay is on, but the node serves no HTTP: the relay is reachable over DNS only")
	}
	st.ready = true
	h, err := st.handler(st.cfg, true)
	if err != nil {
		// Only a zone file changed since Setup gets here: keep serving the zones loaded
		// then, without discovery records.
		st.log.Error("dns: building the node zone failed; serving it without discovery records",
			slog.String("error", scrubPaths(err, st.cfg.Zones)))
		return
	}
	p.live.h.Store(h)
	st.published()
	st.runRepublisher()
	st.log.Info("dns serving", slog.String("node_zone", alkdns.NodeName(st.pub(), st.cfg.Origin)),
		slog.Int("zones", len(st.cfg.Zones)), slog.Bool("pkarr_relay", st.relay != nil),
		slog.Int("pkarr_publish", len(st.cfg.Pkarr.Publish)))
}

// Reload applies a reloaded [dns] table: the zones are re-read and the node zone
// rebuilt (origin, addresses, ttl and the zone caps apply at once); a broken zone file
// keeps the zones in use, and the error names it by its key ("zones[0]"), never by
// its path. The other keys (the listeners, limits and pkarr) take effect on restart,
// which a warning says.
func (p *Plugin) Reload(c node.Config) ([]slog.Attr, error) {
	cfg := c.(*Config).DNS
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	switch {
	case st == nil && cfg == nil:
		return nil, nil
	case st == nil:
		return []slog.Attr{slog.String("dns", "restart to serve DNS")}, nil
	case cfg == nil:
		st.log.Warn("dns: the [dns] table is gone; DNS is served until restart")
		return []slog.Attr{slog.String("dns", "unchanged until restart")}, nil
	}
	if keys := restartKeys(st.cfg, *cfg); len(keys) > 0 {
		st.log.Warn("dns: these keys take effect on restart", slog.String("keys", strings.Join(keys, ",")))
	}
	next := st.cfg
	next.Origin, next.Addresses, next.Zones, next.TTL = cfg.Origin, cfg.Addresses, cfg.Zones, cfg.TTL
	next.MaxZoneBytes, next.MaxZoneRecords = cfg.MaxZoneBytes, cfg.MaxZoneRecords
	h, err := st.handler(next, st.ready)
	if err != nil {
		return nil, fmt.Errorf("dns: %s", scrubPaths(err, cfg.Zones))
	}
	st.cfg = next
	p.live.h.Store(h)
	if st.ready {
		st.published()
	}
	return []slog.Attr{slog.Int("dns_zones", len(next.Zones))}, nil
}

// restartKeys lists the keys of next that differ from cur and need a restart.
func restartKeys(cur, next alkdns.Config) []string {
	var keys []string
	add := func(changed bool, key string) {
		if changed {
			keys = append(keys, key)
		}
	}
	add(cur.ListenPlain != next.ListenPlain, "listen_plain")
	add(cur.MaxStreamsPerConn != next.MaxStreamsPerConn, "max_streams_per_conn")
	add(cur.QueryTimeout != next.QueryTimeout, "query_timeout")
	add(cur.IdleTimeout != next.IdleTimeout, "idle_timeout")
	add(cur.PaddingEnabled() != next.PaddingEnabled(), "padding")
	add(cur.Pkarr.Relay != next.Pkarr.Relay, "pkarr.relay")
	add(!slices.Equal(cur.Pkarr.Publish, next.Pkarr.Publish), "pkarr.publish")
	return keys
}

// scrubPaths returns err's text with every zone file path replaced by its key
// ("zones[1]"): zone errors name the file, and user file paths stay out of logs.
func scrubPaths(err error, zones []string) string {
	s := err.Error()
	// Longest first, so that a path that is a prefix of another does not split it.
	idx := make([]int, len(zones))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return len(zones[b]) - len(zones[a]) })
	for _, i := range idx {
		if zones[i] != "" {
			s = strings.ReplaceAll(s, zones[i], fmt.Sprintf("zones[%d]", i))
		}
	}
	return s
}

func (st *state) pub() ed25519.PublicKey { return st.key.Public().(ed25519.PublicKey) }

// addrs returns the addresses to publish: [dns] addresses, else the listen addresses.
func (st *state) addrs(cfg alkdns.Config) ([]netip.AddrPort, error) {
	aps, err := cfg.AddrPorts()
	if err != nil || len(aps) > 0 {
		return aps, err
	}
	return slices.Clone(st.listen), nil
}

// handler builds a zone handler from cfg: the node zone (with its discovery records
// when services is set), the static zones and the relay's packets.
func (st *state) handler(cfg alkdns.Config, services bool) (*alkdns.Handler, error) {
	opts := []alkdns.Option{alkdns.WithNodeKey(st.pub()), alkdns.WithLogger(st.log)}
	if services {
		addrs, err := st.addrs(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, alkdns.WithServices(st.alpns, addrs))
	}
	if st.relay != nil {
		opts = append(opts, alkdns.WithSignedZones(st.relay))
	}
	return alkdns.NewHandler(cfg, opts...)
}

// discovery returns the records of this node's pkarr packet (under "<z32>.").
func (st *state) discovery() ([]mdns.RR, error) {
	addrs, err := st.addrs(st.cfg)
	if err != nil {
		return nil, err
	}
	ttl := uint32(st.cfg.TTL)
	if ttl == 0 {
		ttl = alkdns.DefaultTTL
	}
	return alkdns.DiscoveryRecords(st.pub(), "", st.alpns, addrs, ttl)
}

// packet signs this node's discovery packet now. The caller holds the plugin's lock
// or owns st.
func (st *state) packet() (*pkarr.SignedPacket, error) {
	rrs, err := st.discovery()
	if err != nil {
		return nil, err
	}
	return pkarr.Sign(st.key, time.Now(), rrs)
}

// published refreshes the node's packet in its own relay and asks the republisher for
// a round, after the records may have changed.
func (st *state) published() {
	if st.relay != nil {
		sp, err := st.packet()
		if err == nil {
			err = st.relay.Store(sp)
		}
		if err != nil {
			st.log.Warn("dns: storing the node's packet in its pkarr relay failed", slog.String("error", err.Error()))
		}
	}
	if st.rp != nil {
		st.rp.Changed()
	}
}
