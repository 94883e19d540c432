package core

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
)

// AuthFailureMessage is the slog message of every authentication failure line. With
// slog's text handler the line reads
//
//	time=... level=WARN msg="auth failure" remote_ip=203.0.113.9 alpn=alknet/ssh peer=ed25519:… reason="unknown key"
//
// so one fail2ban filter (failregex: msg="auth failure" remote_ip=<HOST> ) covers every
// handler. The attribute order is part of the contract.
const AuthFailureMessage = "auth failure"

// AuthFailure describes one failed authentication. Nothing in it may be a secret: Peer
// is a fingerprint, an identity id or an API key's public prefix, never a token.
type AuthFailure struct {
	ALPN   string
	Remote net.Addr
	Peer   string
	Reason string
}

// LogAuthFailure writes the shared auth-failure line (see [AuthFailureMessage]) at
// warning level. A nil logger writes nothing.
func LogAuthFailure(ctx context.Context, l *slog.Logger, f AuthFailure) {
	if l == nil {
		return
	}
	peer := f.Peer
	if peer == "" {
		peer = "-"
	}
	l.LogAttrs(ctx, slog.LevelWarn, AuthFailureMessage,
		slog.String("remote_ip", RemoteIP(f.Remote)),
		slog.String("alpn", f.ALPN),
		slog.String("peer", peer),
		slog.String("reason", f.Reason),
	)
}

// RemoteIP returns the IP of addr as text ("-" when it has none), without port or zone.
func RemoteIP(addr net.Addr) string {
	if ip, ok := AddrIP(addr); ok {
		return ip.String()
	}
	return "-"
}

// AddrIP extracts the IP address of a UDP, TCP or IP address.
func AddrIP(addr net.Addr) (netip.Addr, bool) {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.UDPAddr:
		ip = a.AddrPort().Addr()
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	case *net.IPAddr:
		if a == nil {
			return netip.Addr{}, false
		}
		ip, _ = netip.AddrFromSlice(a.IP)
	case nil:
		return netip.Addr{}, false
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return netip.Addr{}, false
		}
		ip = ap.Addr()
	}
	if !ip.IsValid() {
		return netip.Addr{}, false
	}
	return ip.Unmap().WithZone(""), true
}
