// Package dns is Alknet's authoritative DNS: a transport-free zone handler (the node's
// discovery zone, static RFC 1035 zones and names held by a pkarr relay), served over
// DNS over QUIC (RFC 9250) on the "doq" and "alknet/dns" ALPNs, over DNS over TLS
// (RFC 7858) on the TCP+TLS twin's "dot" ALPN, and optionally over plain UDP and TCP
// for debugging. It never recurses.
//
// The zone logic is [Handler], a plain miekg/dns Handler built by [NewHandler] from a
// [Config] (the node's [dns] table) and options: [WithNodeKey] and [WithServices] give
// the node zone "<z32>.<origin>." with its "_alknet" TXT and SVCB discovery records
// ([DiscoveryRecords] builds the same records for a pkarr packet), Config.Zones adds
// static master-file zones ([Handler.Reload] re-reads them atomically), and
// [WithSignedZones] answers names under other keys' "<z32>." TLDs, for example from a
// pkarr relay. The transports wrap any miekg Handler: [NewServer] (DoQ and DoT on a
// core endpoint) and [ListenPlain].
//
// The package name clashes with github.com/miekg/dns; importers usually alias it:
//
//	import alkdns "github.com/alknet/alknet/dns"
package dns
