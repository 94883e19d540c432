// Package ssh is Alknet's SSH-2 server and client: the server speaks SSH on the
// alknet/ssh ALPN (over a connection's first stream) and on any net.Listener, with
// public-key and OpenSSH-certificate authentication tied to core's identities,
// default-deny channels (exec through a hook, subsystems through hooks, TCP
// forwarding under a first-match policy); the client dials a node over core's
// dialer, and runs a SOCKS5 proxy and -L/-R forwards over it.
package ssh
