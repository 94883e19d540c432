// Package dns is Alknet's authoritative DNS: a transport-free zone handler (the node's
// discovery zone, static RFC 1035 zones and names held by a pkarr relay), served over
// DNS over QUIC (RFC 9250) on the "doq" and "alknet/dns" ALPNs, over DNS over TLS
// (RFC 7858) on the TCP+TLS twin's "dot" ALPN, and optionally over plain UDP and TCP
// for debugging. It never recurses.
//
// The package name clashes with github.com/miekg/dns; importers usually alias it:
//
//	import alkdns "github.com/alknet/alknet/dns"
package dns
