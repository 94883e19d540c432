package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// Defaults of Config.
const (
	// DefaultTTL is the TTL, in seconds, of the node zone's synthesized records
	// (Config.TTL 0).
	DefaultTTL = 300
	// MaxTTL is the largest TTL RFC 2181 allows (2^31 - 1 seconds).
	MaxTTL = 1<<31 - 1
	// DefaultMaxZoneBytes bounds the size of one master file (Config.MaxZoneBytes 0):
	// 4 MiB.
	DefaultMaxZoneBytes = 4 << 20
	// DefaultMaxZoneRecords bounds the records of one master file
	// (Config.MaxZoneRecords 0).
	DefaultMaxZoneRecords = 100_000
	// maxConfigText bounds how much of a configured value an error quotes.
	maxConfigText = 120
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns; the error text
// names the key at fault ("zones[1]: ...").
var ErrInvalidConfig = errors.New("invalid dns config")

// Config is the node's [dns] table (TOML, decoded by its struct tags) and the zone
// handler's configuration. The zero value is valid: origin "" (the node zone is the
// bare pkarr name "<z32>."), no static zones, the default limits, padding on.
//
//	[dns]
//	origin = "alk.dev"                # node zone origin; "" = bare <z32>.
//	addresses = ["203.0.113.5:4433"]  # public addresses to publish
//	zones = ["example.org.zone"]      # master files, relative to the config file
//	listen_plain = "127.0.0.1:5353"   # optional UDP+TCP debug listener
//	max_streams_per_conn = 100        # 0: DefaultMaxStreamsPerConn
//	query_timeout = "5s"              # "": DefaultQueryTimeout
//	idle_timeout = "30s"              # "": DefaultIdleTimeout
//	padding = true                    # EDNS(0) padding of responses to padded queries
//	ttl = 300                         # TTL of the node zone's records
//	max_zone_bytes = 4194304          # per master file
//	max_zone_records = 100000         # per master file
//	[dns.pkarr]
//	relay = true                      # serve a pkarr relay at /pkarr/
//	publish = ["https://relay.example/pkarr"]
//
// The handler (NewHandler) reads Origin, Zones, TTL, MaxZoneBytes and MaxZoneRecords;
// the other keys are for the assembly layer, which maps them onto the transports'
// configuration (ServerConfig) and the pkarr code's (AddrPorts, Pkarr).
type Config struct {
	// Origin is the node zone's origin: the node zone is "<z32>.<origin>." ("" gives
	// the bare pkarr name "<z32>."). A trailing dot is optional.
	Origin string `toml:"origin"`
	// Addresses are the public addresses ("ip:port", IPv6 in brackets) the node
	// publishes in its discovery records. The handler does not read them: the
	// assembly layer passes AddrPorts to WithServices (defaulting to its listen
	// address when empty).
	Addresses []string `toml:"addresses"`
	// Zones are RFC 1035 master files, one zone each (see NewHandler for the rules).
	// Relative paths are relative to the working directory; Resolve makes them
	// relative to the config file's directory.
	Zones []string `toml:"zones"`
	// ListenPlain is an optional "host:port" for a plain UDP+TCP debug listener.
	ListenPlain string `toml:"listen_plain"`
	// MaxStreamsPerConn is ServerConfig.MaxStreamsPerConn: the queries one
	// connection may have in flight (0: DefaultMaxStreamsPerConn).
	MaxStreamsPerConn int `toml:"max_streams_per_conn"`
	// QueryTimeout is ServerConfig.QueryTimeout, a duration such as "5s" ("":
	// DefaultQueryTimeout).
	QueryTimeout string `toml:"query_timeout"`
	// IdleTimeout is ServerConfig.IdleTimeout, a duration such as "30s" ("":
	// DefaultIdleTimeout).
	IdleTimeout string `toml:"idle_timeout"`
	// Padding enables EDNS(0) padding (RFC 7830, 468-octet blocks) of responses to
	// padded queries; nil means true.
	Padding *bool `toml:"padding"`
	// TTL is the TTL in seconds of the node zone's records (0: DefaultTTL).
	TTL int `toml:"ttl"`
	// MaxZoneBytes bounds the size of one master file (0: DefaultMaxZoneBytes).
	MaxZoneBytes int64 `toml:"max_zone_bytes"`
	// MaxZoneRecords bounds the records of one master file, $GENERATE output
	// included (0: DefaultMaxZoneRecords).
	MaxZoneRecords int `toml:"max_zone_records"`
	// Pkarr is the [dns.pkarr] table.
	Pkarr PkarrConfig `toml:"pkarr"`
}

// PkarrConfig is the [dns.pkarr] table.
type PkarrConfig struct {
	// Relay serves a pkarr relay (HTTP, at /pkarr/ on the node's HTTP surface) whose
	// verified packets the DNS handler answers for (default false).
	Relay bool `toml:"relay"`
	// Publish are the base URLs (http or https) of the relays this node publishes
	// its signed discovery packet to.
	Publish []string `toml:"publish"`
}

// Validate reports the first problem of c, wrapping ErrInvalidConfig and naming the
// key relative to the [dns] table ("addresses[0]: ...").
func (c *Config) Validate() error {
	if _, err := nodeOrigin(c.Origin); err != nil {
		return configError("origin", "%v", err)
	}
	if _, err := c.AddrPorts(); err != nil {
		return err
	}
	seen := make(map[string]int, len(c.Zones))
	for i, z := range c.Zones {
		if z == "" {
			return configError(fmt.Sprintf("zones[%d]", i), "empty path")
		}
		clean := filepath.Clean(z)
		if j, dup := seen[clean]; dup {
			return configError(fmt.Sprintf("zones[%d]", i), "the same file as zones[%d]", j)
		}
		seen[clean] = i
	}
	if c.ListenPlain != "" {
		if err := checkHostPort(c.ListenPlain); err != nil {
			return configError("listen_plain", "%q: %v (want host:port such as \"127.0.0.1:5353\")", clip(c.ListenPlain), err)
		}
	}
	if c.MaxStreamsPerConn < 0 {
		return configError("max_streams_per_conn", "%d (want 0 for the default, or more)", c.MaxStreamsPerConn)
	}
	for _, d := range []struct{ key, val string }{{"query_timeout", c.QueryTimeout}, {"idle_timeout", c.IdleTimeout}} {
		if _, err := parsePositiveDuration(d.val); err != nil {
			return configError(d.key, "invalid duration %q (want a positive value such as \"5s\")", clip(d.val))
		}
	}
	if c.TTL < 0 || c.TTL > MaxTTL {
		return configError("ttl", "%d (want 0 for %d, or 1 to %d)", c.TTL, DefaultTTL, MaxTTL)
	}
	if c.MaxZoneBytes < 0 {
		return configError("max_zone_bytes", "%d (want 0 for %d, or more)", c.MaxZoneBytes, DefaultMaxZoneBytes)
	}
	if c.MaxZoneRecords < 0 {
		return configError("max_zone_records", "%d (want 0 for %d, or more)", c.MaxZoneRecords, DefaultMaxZoneRecords)
	}
	for i, s := range c.Pkarr.Publish {
		key := fmt.Sprintf("pkarr.publish[%d]", i)
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return configError(key, "invalid relay URL %q (want http:// or https:// and a host)", clip(s))
		}
		if u.Fragment != "" || u.RawQuery != "" {
			return configError(key, "relay URL %q has a query or fragment (want a base URL)", clip(s))
		}
	}
	return nil
}

// Resolve makes relative zone paths relative to dir (the config file's directory).
func (c *Config) Resolve(dir string) {
	if dir == "" {
		return
	}
	for i, z := range c.Zones {
		if z != "" && !filepath.IsAbs(z) {
			c.Zones[i] = filepath.Join(dir, z)
		}
	}
}

// AddrPorts parses Addresses. Each must be a literal IP address (no zone, not
// unspecified) with a non-zero port; IPv4-mapped IPv6 addresses are unmapped.
// Errors wrap ErrInvalidConfig and name the key.
func (c *Config) AddrPorts() ([]netip.AddrPort, error) {
	out := make([]netip.AddrPort, 0, len(c.Addresses))
	for i, s := range c.Addresses {
		ap, err := netip.ParseAddrPort(s)
		if err == nil {
			err = checkServiceAddr(ap)
		}
		if err != nil {
			return nil, configError(fmt.Sprintf("addresses[%d]", i), "%q: %v (want ip:port such as \"203.0.113.5:4433\" or \"[2001:db8::1]:4433\")", clip(s), err)
		}
		out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	return out, nil
}

// ServerConfig maps c onto the transports' configuration (MaxStreamsPerConn,
// QueryTimeout, IdleTimeout, Padding) for handler h; c must be valid (an invalid
// duration maps to 0, the server's default).
func (c *Config) ServerConfig(h mdns.Handler, logger *slog.Logger) ServerConfig {
	qt, _ := parsePositiveDuration(c.QueryTimeout)
	it, _ := parsePositiveDuration(c.IdleTimeout)
	return ServerConfig{
		Handler:           h,
		MaxStreamsPerConn: c.MaxStreamsPerConn,
		QueryTimeout:      qt,
		IdleTimeout:       it,
		Padding:           c.PaddingEnabled(),
		Logger:            logger,
	}
}

// parsePositiveDuration parses a configured duration: "" is 0 (the default), anything
// else must be positive.
func parsePositiveDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, errors.New("not positive")
	}
	return d, nil
}

// PaddingEnabled reports whether responses to padded queries are padded (Padding,
// default true).
func (c *Config) PaddingEnabled() bool {
	return c.Padding == nil || *c.Padding
}

// zoneLimits returns the load caps with their defaults.
func (c *Config) zoneLimits() zoneLimits {
	l := zoneLimits{maxBytes: c.MaxZoneBytes, maxRecords: c.MaxZoneRecords}
	if l.maxBytes == 0 {
		l.maxBytes = DefaultMaxZoneBytes
	}
	if l.maxRecords == 0 {
		l.maxRecords = DefaultMaxZoneRecords
	}
	return l
}

// ttl returns the node zone TTL with its default.
func (c *Config) ttl() uint32 {
	if c.TTL == 0 {
		return DefaultTTL
	}
	return uint32(c.TTL)
}

// nodeOrigin checks and canonicalizes an origin: "" (or ".") stays "", anything else
// becomes a lower-case fully qualified name of letters, digits, '-' and '_' labels
// (1 to 63 characters each) that leaves room for the 52-character key label.
func nodeOrigin(origin string) (string, error) {
	if origin == "" || origin == "." {
		return "", nil
	}
	o := mdns.CanonicalName(origin)
	for _, label := range strings.Split(strings.TrimSuffix(o, "."), ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("%q is not a domain name (empty label or one over 63 characters)", clip(origin))
		}
		for i := range len(label) {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%q is not a domain name (want letters, digits, '-' and '_')", clip(origin))
			}
		}
	}
	// "_alknet.<z32>.<origin>." must stay within 255 octets on the wire: a
	// presentation name without escapes takes its length plus one.
	if len(DiscoveryLabel)+1+52+1+len(o)+1 > 255 {
		return "", fmt.Errorf("%q is too long to hold the 52-character key label", clip(origin))
	}
	return o, nil
}

// checkServiceAddr rejects addresses that cannot be published.
func checkServiceAddr(ap netip.AddrPort) error {
	switch {
	case !ap.IsValid():
		return errors.New("invalid address")
	case ap.Port() == 0:
		return errors.New("port 0")
	case ap.Addr().Zone() != "":
		return errors.New("IPv6 zone not publishable")
	case ap.Addr().IsUnspecified():
		return errors.New("unspecified address not publishable")
	}
	return nil
}

// checkHostPort checks a listen address: host may be empty or a name, port 0 to 65535.
func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("not host:port")
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("bad port %q", clip(port))
	}
	return nil
}

func configError(key, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", key, ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) <= maxConfigText {
		return s
	}
	return s[:maxConfigText] + "..."
}
