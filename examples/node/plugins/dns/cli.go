package dns

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	alkdns "github.com/alknet/alknet/dns"
	"github.com/alknet/alknet/dns/pkarr"
	"github.com/alknet/alknet/examples/node"
)

// Synopses of the dns commands.
const (
	querySynopsis   = "dns query [--state DIR] [--passphrase-file FILE] (--pin FINGERPRINT | --insecure) [--tcp] HOST:PORT NAME [TYPE]"
	publishSynopsis = "dns publish [--state DIR] [--passphrase-file FILE] [--pin FINGERPRINT | --insecure] [--addr IP:PORT]... [--alpn ALPN[,ALPN...]]... [--ttl SECONDS] RELAY-URL"
	resolveSynopsis = "dns resolve [--state DIR] [--passphrase-file FILE] [--pin FINGERPRINT | --insecure] RELAY-URL Z32"
)

// Commands returns "dns" with its subcommands query, publish and resolve.
func (p *Plugin) Commands() []node.Command {
	return []node.Command{{
		Name:    "dns",
		Summary: "ask a node's DNS (query), publish this node's pkarr packet (publish) or read one (resolve)",
		Run:     run,
		Help: func(c *node.CLI, args []string) error {
			if len(args) == 0 {
				_, err := io.WriteString(c.Stdout, usage(c))
				return err
			}
			if len(args) > 1 {
				return node.Usagef("help: too many arguments")
			}
			return run(context.Background(), c, []string{args[0], "-h"})
		},
	}}
}

func usage(c *node.CLI) string {
	n := c.Name()
	return "Usage:\n  " + n + " " + querySynopsis + "\n  " + n + " " + publishSynopsis + "\n  " + n + " " + resolveSynopsis +
		"\n\nquery asks a node's DNS over QUIC (doq), or over TLS (dot) with --tcp, and prints the answer as zone-file lines;" +
		"\nit exits 1 unless the status is NOERROR. publish signs this node's discovery packet and PUTs it to a pkarr relay;" +
		"\nresolve GETs the packet of the key Z32 from a relay and prints its verified records.\n"
}

func run(ctx context.Context, c *node.CLI, args []string) error {
	if len(args) == 0 {
		return node.Usagef(`dns: want "dns query", "dns publish" or "dns resolve" (run "%s help dns" for usage)`, c.Name())
	}
	switch args[0] {
	case "query":
		return query(ctx, c, args[1:])
	case "publish":
		return publish(ctx, c, args[1:])
	case "resolve":
		return resolve(ctx, c, args[1:])
	case "-h", "-help", "--help":
		_, err := io.WriteString(c.Stdout, usage(c))
		return err
	}
	return node.Usagef(`dns: unknown subcommand %q; want query, publish or resolve`, node.Clip(args[0]))
}

// query runs "dns query".
func query(ctx context.Context, c *node.CLI, args []string) error {
	const name = "dns query"
	fs := c.NewFlagSet(name, c.Name()+" "+querySynopsis)
	var df node.DialFlags
	df.Register(fs.FlagSet)
	pos, err := fs.ParseArgs(args)
	if err != nil {
		return err
	}
	if len(pos) < 2 || len(pos) > 3 {
		return node.Usagef(`%s: want HOST:PORT NAME [TYPE], got %d arguments (run "%s %s -h" for usage)`, name, len(pos), c.Name(), name)
	}
	if err := df.CheckVerify(name); err != nil {
		return err
	}
	if err := df.SetAddr(name, pos[0]); err != nil {
		return err
	}
	qname := mdns.Fqdn(pos[1])
	if _, ok := mdns.IsDomainName(qname); !ok {
		return node.Usagef("%s: %q is not a domain name", name, node.Clip(pos[1]))
	}
	qtype := mdns.TypeA
	if len(pos) == 3 {
		if qtype, err = parseType(pos[2]); err != nil {
			return node.Usagef("%s: %v", name, err)
		}
	}
	opts, err := c.DialOptions(name, &df)
	if err != nil {
		return err
	}
	alpn := alkdns.ALPNDoQ
	if df.TCP {
		alpn = alkdns.ALPNDoT
	}
	conn, err := endpoint.Dial(ctx, df.Addr, alpn, opts)
	if err != nil {
		return node.DescribeDialError(ctx, name, &df, alpn, err)
	}
	defer conn.Close(core.CloseNormal, "")
	m := new(mdns.Msg)
	m.SetQuestion(qname, qtype)
	m.RecursionDesired = false // an authoritative server: nothing to recurse for
	m.SetEdns0(alkdns.EDNSUDPSize, false)
	resp, err := alkdns.Exchange(ctx, conn, m)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: interrupted", name)
		}
		return fmt.Errorf("%s: %s: %w", name, df.Addr, err)
	}
	if err := printResponse(c.Stdout, resp); err != nil {
		return err
	}
	if resp.Rcode != mdns.RcodeSuccess {
		return fmt.Errorf("%s: %s answered %s", name, df.Addr, rcodeName(resp.Rcode))
	}
	return nil
}

// parseType parses a record type: a mnemonic ("TXT", any case) or "TYPE<n>".
func parseType(s string) (uint16, error) {
	u := strings.ToUpper(s)
	if t, ok := mdns.StringToType[u]; ok && t != mdns.TypeNone {
		return t, nil
	}
	if n, ok := strings.CutPrefix(u, "TYPE"); ok {
		if v, err := strconv.ParseUint(n, 10, 16); err == nil {
			return uint16(v), nil
		}
	}
	return 0, fmt.Errorf("unknown record type %q (want A, AAAA, TXT, SVCB, SOA, NS, ANY, ... or TYPE<n>)", node.Clip(s))
}

func rcodeName(rc int) string {
	if s, ok := mdns.RcodeToString[rc]; ok {
		return s
	}
	return "RCODE" + strconv.Itoa(rc)
}

// printResponse prints the status line and the answer, authority and additional
// sections (without the OPT record) as zone-file lines, in the manner of dig.
func printResponse(w io.Writer, r *mdns.Msg) error {
	var b strings.Builder
	var flags []string
	for _, f := range []struct {
		set  bool
		name string
	}{{r.Response, "qr"}, {r.Authoritative, "aa"}, {r.Truncated, "tc"}, {r.RecursionDesired, "rd"}, {r.RecursionAvailable, "ra"}} {
		if f.set {
			flags = append(flags, f.name)
		}
	}
	fmt.Fprintf(&b, ";; status: %s, flags: %s\n", rcodeName(r.Rcode), strings.Join(flags, " "))
	section := func(title string, rrs []mdns.RR) {
		var lines []string
		for _, rr := range rrs {
			if rr.Header().Rrtype != mdns.TypeOPT {
				lines = append(lines, rr.String())
			}
		}
		if len(lines) > 0 {
			fmt.Fprintf(&b, ";; %s SECTION:\n%s\n", title, strings.Join(lines, "\n"))
		}
	}
	section("ANSWER", r.Answer)
	section("AUTHORITY", r.Ns)
	section("ADDITIONAL", r.Extra)
	_, err := io.WriteString(w, b.String())
	return err
}

// relayFlags are the flags of publish and resolve.
type relayFlags struct {
	state, passphraseFile string
	pin                   string
	insecure              bool
}

func (f *relayFlags) register(fs *node.FlagSet, stateUse string) {
	fs.StringVar(&f.state, "state", "", stateUse)
	fs.StringVar(&f.passphraseFile, "passphrase-file", "", node.PassphraseFileUsage)
	fs.StringVar(&f.pin, "pin", "", "the relay's `FINGERPRINT` when it is an alknet node (its self-signed certificate); without it the system roots verify the relay")
	fs.BoolVar(&f.insecure, "insecure", false, "accept any relay certificate, printing its fingerprint in a warning")
}

// relayClient checks the relay URL and the verification flags and returns a pkarr
// client for the relay, with a function that releases its connections. cert, when
// set, is presented to relays that ask for a client certificate.
func (f *relayFlags) relayClient(c *node.CLI, name, rawURL string, cert *tls.Certificate) (*pkarr.Client, func(), error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, node.Usagef("%s: relay URL %q: want http:// or https:// and a host", name, node.Clip(rawURL))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, nil, node.Usagef("%s: relay URL %q has a query or fragment (want a base URL such as https://HOST:PORT/pkarr)", name, node.Clip(rawURL))
	}
	switch {
	case f.pin != "" && f.insecure:
		return nil, nil, node.Usagef("%s: --pin and --insecure exclude each other", name)
	case (f.pin != "" || f.insecure) && u.Scheme != "https":
		return nil, nil, node.Usagef("%s: --pin and --insecure verify an https:// relay; %s is %s", name, u.Redacted(), u.Scheme)
	}
	tr := &http.Transport{ForceAttemptHTTP2: true, TLSHandshakeTimeout: node.DialHandshakeTimeout}
	if f.pin != "" || f.insecure {
		opts := tlsconf.ClientOptions{Certificate: cert, Pin: f.pin, NextProtos: []string{"h2", "http/1.1"}}
		if f.pin != "" {
			if _, _, err := core.ParseFingerprint(f.pin); err != nil {
				return nil, nil, node.Usagef("%s: --pin: %v", name, err)
			}
		} else {
			var once sync.Once
			opts.VerifyServer = func(fp string, _ tls.ConnectionState) error {
				once.Do(func() {
					fmt.Fprintf(c.Stderr, "%s: warning: --insecure: relay identity not verified (fingerprint %s)\n", c.Name(), fp)
				})
				return nil
			}
		}
		cfg, err := tlsconf.ClientConfig(opts)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		tr.TLSClientConfig = cfg
	} else if cert != nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*cert}}
	}
	return &pkarr.Client{BaseURL: u.String(), HTTP: &http.Client{Transport: tr}}, tr.CloseIdleConnections, nil
}

// identity loads the --state identity and its TLS certificate.
func (f *relayFlags) identity(c *node.CLI, name string) (*node.Identity, *tls.Certificate, error) {
	id, err := c.NodeIdentity(f.state, f.passphraseFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	cert, err := tlsconf.Certificate(id.Key())
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return id, &cert, nil
}

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// publish runs "dns publish".
func publish(ctx context.Context, c *node.CLI, args []string) error {
	const name = "dns publish"
	fs := c.NewFlagSet(name, c.Name()+" "+publishSynopsis)
	var f relayFlags
	f.register(fs, "state directory `DIR` whose identity signs the packet (default ~/.alknet)")
	var addrs, alpns listFlag
	fs.Var(&addrs, "addr", "an `IP:PORT` to publish (repeatable; IPv6 in brackets)")
	fs.Var(&alpns, "alpn", "`ALPN`s to publish, comma-separated (repeatable), such as doq,alknet/dns")
	ttl := fs.Int("ttl", alkdns.DefaultTTL, "TTL of the records in seconds")
	pos, err := fs.ParseArgs(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return node.Usagef(`%s: want one RELAY-URL, got %d arguments (run "%s %s -h" for usage)`, name, len(pos), c.Name(), name)
	}
	if *ttl < 1 || *ttl > alkdns.MaxTTL {
		return node.Usagef("%s: --ttl %d: want 1 to %d", name, *ttl, alkdns.MaxTTL)
	}
	var aps []netip.AddrPort
	for _, a := range addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return node.Usagef("%s: --addr %q: want IP:PORT", name, node.Clip(a))
		}
		aps = append(aps, ap)
	}
	var alpnList []string
	for _, a := range alpns {
		alpnList = append(alpnList, strings.Split(a, ",")...)
	}
	// Check the arguments before unlocking anything.
	if _, _, err := (&relayFlags{pin: f.pin, insecure: f.insecure}).relayClient(c, name, pos[0], nil); err != nil {
		return err
	}
	id, cert, err := f.identity(c, name)
	if err != nil {
		return err
	}
	defer clear(id.Key())
	pub := id.Key().Public().(ed25519.PublicKey)
	rrs, err := alkdns.DiscoveryRecords(pub, "", alpnList, aps, uint32(*ttl))
	if err != nil {
		return node.Usagef("%s: %v", name, err)
	}
	sp, err := pkarr.Sign(id.Key(), time.Now(), rrs)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	client, release, err := f.relayClient(c, name, pos[0], cert)
	if err != nil {
		return err
	}
	defer release()
	if err := client.Publish(ctx, sp); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	_, err = fmt.Fprintf(c.Stdout, "published %s. (%d records, %d-byte packet)\n", sp.Name(), len(rrs), len(sp.Packet()))
	return err
}

// resolve runs "dns resolve".
func resolve(ctx context.Context, c *node.CLI, args []string) error {
	const name = "dns resolve"
	fs := c.NewFlagSet(name, c.Name()+" "+resolveSynopsis)
	var f relayFlags
	f.register(fs, "state directory `DIR` whose identity is the TLS client certificate, for relays that ask (default: none)")
	pos, err := fs.ParseArgs(args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return node.Usagef(`%s: want RELAY-URL Z32, got %d arguments (run "%s %s -h" for usage)`, name, len(pos), c.Name(), name)
	}
	pub, err := pkarr.ParseKey(pos[1])
	if err != nil {
		return node.Usagef("%s: %q: %v", name, node.Clip(pos[1]), err)
	}
	if _, _, err := (&relayFlags{pin: f.pin, insecure: f.insecure}).relayClient(c, name, pos[0], nil); err != nil {
		return err
	}
	var cert *tls.Certificate
	if f.state != "" {
		_, crt, err := f.identity(c, name)
		if err != nil {
			return err
		}
		cert = crt
	}
	client, release, err := f.relayClient(c, name, pos[0], cert)
	if err != nil {
		return err
	}
	defer release()
	sp, err := client.Resolve(ctx, pub, time.Time{})
	switch {
	case errors.Is(err, pkarr.ErrNotFound):
		return fmt.Errorf("%s: the relay holds no packet for %s: %w", name, pkarr.ZBase32Key(pub), err)
	case err != nil:
		return fmt.Errorf("%s: %w", name, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, ";; %s. signed %s\n", sp.Name(), sp.Timestamp().Format(time.RFC3339))
	for _, rr := range sp.Records() {
		b.WriteString(rr.String() + "\n")
	}
	_, err = io.WriteString(c.Stdout, b.String())
	return err
}
