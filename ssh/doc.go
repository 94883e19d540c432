// Package ssh is Alknet's SSH-2 server and client: the server speaks SSH on the
// alknet/ssh ALPN (over a connection's first stream) and on any net.Listener, with
// public-key and OpenSSH-certificate authentication tied to core's identities,
// default-deny channels (exec through a hook, subsystems through hooks, TCP
// forwarding under a first-match policy); the client dials a node over core's
// dialer, and runs a SOCKS5 proxy and -L/-R forwards over it.
//
// Beside it, [Forwarder] serves the alknet/forward ALPN ([ALPNForward]): the same
// forwarding policy without SSH inside QUIC, each forwarded connection its own QUIC
// stream (a one-line header, then raw bytes), the identity the TLS client
// certificate's. [DialForward], [ForwardOpener] and [ForwardTunnel] are its client:
// SOCKS5, -L and -R over one connection. [DialForward] waits for the node's answer (a
// SOCKS5 front needs it to report a refused or failed dial); [OpenForward] sends the
// header with the first bytes and reports a refusal on the first Read, saving a round
// trip per forwarded connection (what -L uses). [Forwarder.Stats] counts forwards by
// outcome and the bytes each way, never naming destinations.
package ssh
