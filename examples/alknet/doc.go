// Command alknet is a complete Alknet node and its client: one QUIC endpoint (UDP) and
// its TCP+TLS twin on the same port, with every handler of this repository registered by
// ALPN, plus the tools to identify a node and to talk to it from a shell.
//
// Usage:
//
//	alknet serve [--state DIR] [--passphrase-file FILE] [--listen HOST:PORT] [--config FILE] [--drain DUR] [--log-level LEVEL] [--log-format text|json] [--metrics HOST:PORT] [--demo-page]
//	alknet config check --config FILE
//	alknet version
//	alknet id    [--state DIR] [--passphrase-file FILE] [--ssh | --authorized-key]
//	alknet apikey new [--scopes A,B] [--expires DUR] [--description TEXT] [--toml FILE]
//	alknet peer add   --id NAME --fingerprint FP [--fingerprint FP]... [--scopes A,B] [--display-name TEXT] [--toml FILE]
//	alknet token new  --id NAME [--scopes A,B] [--display-name TEXT] [--toml FILE]
//	alknet pipe  [--state DIR] [--passphrase-file FILE] --alpn ALPN (--pin FINGERPRINT | --insecure) [--tcp] HOST:PORT
//	alknet call  [--state DIR] [--passphrase-file FILE] (--pin FP | --insecure) [--tcp] [--token TOKEN] [--timeout DUR] HOST:PORT OPERATION [JSON-INPUT]
//	alknet connect [--state DIR] [--passphrase-file FILE] (--pin FP | --insecure) [--tcp] [--host-key FP] [--user NAME] [--socks ADDR] [--via ssh|forward|auto] [-L bind:port:host:port]... [-R bind:port:host:port]... HOST:PORT
//	alknet git init [--config FILE] NAME
//	alknet dns query   [--state DIR] [--passphrase-file FILE] (--pin FP | --insecure) [--tcp] HOST:PORT NAME [TYPE]
//	alknet dns publish [--state DIR] [--passphrase-file FILE] [--pin FP | --insecure] [--addr IP:PORT]... [--alpn ALPN,...]... [--ttl SECONDS] RELAY-URL
//	alknet dns resolve [--state DIR] [--passphrase-file FILE] [--pin FP | --insecure] RELAY-URL Z32
//	alknet msg register [--state DIR] [--passphrase-file FILE] (--pin FP | --insecure) [--tcp] [--valid DUR] HOST:PORT
//	alknet msg send     [--state DIR] [--passphrase-file FILE] (--pin FP | --insecure) [--tcp] [--content-type TYPE] [--ttl DUR] HOST:PORT RECIPIENT < BODY
//	alknet msg inbox    [--state DIR] [--passphrase-file FILE] (--pin FP | --insecure) [--tcp] [--wait DUR] [--ack] HOST:PORT
//	alknet vault init    [--state DIR] [--words N] [--passphrase-file FILE] [--bip39-passphrase-file FILE]
//	alknet vault recover [--state DIR] [--passphrase-file FILE] [--bip39-passphrase-file FILE] < MNEMONIC
//	alknet vault seal    [--state DIR] [--passphrase-file FILE] [--key-version N] [--raw] < SECRET
//	alknet vault open    [--state DIR] [--passphrase-file FILE] < BLOB
//	alknet help  [COMMAND [SUBCOMMAND]]
//
// Flags may be written --flag or -flag, before or after the positional arguments ("--"
// ends the flags).
//
// # State and identity
//
// The state directory (--state, default ~/.alknet, created with mode 0700) holds the
// node's Ed25519 key: node.key, an unencrypted OpenSSH private key with mode 0600 (so
// "ssh -i DIR/node.key" and "ssh-keygen -y -f DIR/node.key" work), and node.key.pub, its
// authorized_keys line. Every command creates them when they are missing. The key is
// presented in TLS as a self-signed certificate; its fingerprint is
// "ed25519:<64 lowercase hex of the public key>".
//
// When the state directory holds a vault keystore, vault.keystore (see "alknet vault"
// below), the node's key is instead the vault's identity key, derived from the mnemonic
// at m/74'/0'/0'/0' (SLIP-0010 Ed25519): serve, id, pipe, call and connect unlock the
// keystore with --passphrase-file or a terminal prompt, and node.key is neither read nor
// created nor changed. Restoring the mnemonic restores the node's fingerprint. Without a
// keystore they behave as described above, and --passphrase-file is a configuration
// error.
//
// The same key is the node's SSH key: serve's default SSH host key, and the client key
// connect logs in with (an Ed25519 SSH key has the fingerprint of its TLS twin, so one
// [[peers]] entry serves TLS and SSH). A node running from a keystore uses the vault's
// SSH host key instead, derived at m/74'/0'/1'/0'.
//
// # alknet serve
//
// serve listens on --listen (default 127.0.0.1:4433; port 0 picks a free port) over UDP
// (QUIC) and TCP (TCP+TLS) and dispatches each connection by its negotiated ALPN. Today
// that is alknet/echo, alknet/ssh (see "SSH" below) and alknet/call, the call protocol
// with the demo operations of
// package github.com/alknet/alknet/examples/demo and the discovery operations
// services/list and services/schema:
//
//	demo/echo    query: returns its input
//	demo/ticks   subscription: {"count":N,"interval_ms":M} (N 0..10000, M 0..60000,
//	             default 0) emits {"n":1} ... {"n":N}, M ms apart, then completes
//	demo/whoami  query, requires scope "demo": returns {"id":"<caller identity id>"}
//	demo/callback mutation: {"operation":"ns/op","input":...} calls an operation the
//	             caller serves back over the caller's own connection (alknet/call or
//	             the WebSocket), as the identity "demo/callback" with scope "demo"
//
// The same operations are served over HTTP: on alknet/http (HTTP/1.1 or h2 on every
// QUIC stream) and on h2 and http/1.1 (the TCP+TLS listener, for curl and browsers),
// with the gateway routes /healthz, /search, /schema, /call, /batch, /subscribe and
// /openapi.json, the call protocol over WebSocket at /alknet/call (a browser offers the
// subprotocols "alknet.call" and "alknet.bearer.<token>"), and the MCP projection at
// /mcp (tools search, schema, call and batch), plus the operations the [[openapi]] and
// [[mcp]] tables of --config import. --demo-page also serves https://HOST:PORT/demo,
// a page that speaks the call protocol over the WebSocket, and adds a self-signed
// ECDSA certificate for browsers, which refuse the node's Ed25519 one (clients that
// accept Ed25519 still get the node's certificate).
//
// A call runs as the identity of the client certificate (a [[peers]] entry listing its
// fingerprint) or, when the request carries a token that resolves, as the token's
// identity (a peer's token_hash, or an API key, whose identity id is its prefix); a
// reload applies to the next call. Once both listeners are bound it prints exactly these
// lines on stdout, with the actual addresses, and nothing else:
//
//	fingerprint ed25519:<64 lowercase hex>
//	listen quic <host:port>
//	listen tcp <host:port>
//	ssh-host-key ed25519:<64 lowercase hex>
//	ready
//
// With --metrics HOST:PORT a line "listen metrics <host:port>" follows "listen tcp":
// serve then serves Prometheus metrics at http://HOST:PORT/metrics on a plain-HTTP
// listener of its own, closed when serve stops (no TLS, no authentication: loopback
// suggested). Label values are never strings a client chose (paths, operation names
// the node does not serve, users, destinations).
//
// ssh-host-key is the fingerprint of the alknet/ssh host key: the node's fingerprint,
// or with a keystore the vault's SSH host key.
//
// Logs (log/slog text format) go to stderr at --log-level (debug, info, warn or error;
// default info): one line per connection, refusals, reloads, shutdown.
//
// SIGINT or SIGTERM stops accepting, cancels the handlers and waits up to --drain
// (default 2s) for them before closing what is left; serve then exits 0. A second
// SIGINT/SIGTERM kills the process at once. SIGHUP re-reads --config, validates it and
// swaps it in atomically for the next connection (the [ssh] table included: open SSH
// connections keep the one they started with); if the file is invalid the error is
// logged and the previous configuration stays. Without --config, SIGHUP only logs that
// there is nothing to reload.
//
// # alknet id
//
// id prints the node's fingerprint as one line, "ed25519:<64 lowercase hex>", and
// nothing else on stdout. With a keystore it needs the passphrase. id --ssh prints the
// fingerprint of serve's SSH host key as OpenSSH shows it ("SHA256:<base64>", as
// ssh-keygen -lf does), and id --authorized-key that key's "ssh-ed25519 AAAA... alknet"
// line, for known_hosts; with a keystore both are of the vault's SSH host key.
//
// # alknet config check, version
//
// config check --config FILE parses and validates FILE as serve does (the same
// function, every plugin's table) and prints "ok" (exit 0) or the one-line error
// (exit 2); it creates no key and binds no port. version prints the module version,
// the VCS revision, the Go version and the quic-go version; --version is the same.
// serve --log-format json writes each log line as a JSON object; an address --listen
// cannot be (a port outside 0..65535) is a usage error before any key is created.
//
// # Credentials
//
// apikey new mints an API key from crypto/rand and prints the token once on stdout and
// its [[api_keys]] block (the SHA-256 hash, never the token) on stderr; with --toml
// FILE the block is appended to FILE instead, atomically (a temporary file with the
// old mode, renamed over it) and only when the result is a configuration serve
// accepts. token new does the same for a peer token ("alkp_..."; a [[peers]] block
// with its token_hash), and peer add writes a [[peers]] block for a fingerprint (on
// stdout, or into --toml FILE). A running node takes them on SIGHUP.
//
// # alknet pipe
//
// pipe connects to HOST:PORT over QUIC (or TCP+TLS with --tcp) asking for --alpn,
// presenting the state directory's identity as its client certificate. The server is
// verified by --pin (its fingerprint, as "alknet id" or serve's first line prints it);
// --insecure accepts any server instead and prints
//
//	alknet: warning: --insecure: server identity not verified (fingerprint ed25519:...)
//
// on stderr. Exactly one of the two is required. pipe opens one stream, copies stdin to
// it and it to stdout; at the end of stdin it half-closes the stream and keeps reading
// until the server ends its side, then closes the connection and exits 0. A refused
// ALPN, a fingerprint mismatch, an unreachable server or a stream or connection the
// server ends with an error exit 1 with one line on stderr.
//
//	$ alknet pipe --alpn alknet/echo --pin ed25519:... 127.0.0.1:4433 <<<hello
//	hello
//
// # alknet call
//
// call connects to HOST:PORT with ALPN alknet/call like pipe (the state directory's
// identity as client certificate, --pin or --insecure, QUIC or TCP+TLS with --tcp),
// calls OPERATION (such as demo/echo; a leading "/" is accepted) with JSON-INPUT (any
// JSON value; absent means null) and prints each output as one line of compact JSON on
// stdout: one line for a query or mutation, one per event for a subscription, which it
// follows until the node completes it. It asks the node (services/schema) whether
// OPERATION is a subscription first. It then exits 0.
//
// --token TOKEN sends an API key ("alk_...") or a peer token with the call; the node
// runs the call as the token's identity, or as the connection's when the token resolves
// to nothing. The token is never printed or logged. --timeout DUR gives up after DUR
// (default: 30s for a query or mutation, no limit for a subscription).
//
// When the node answers with an error, call prints the CallError as one line of JSON on
// stderr, without the "alknet: " prefix, and exits 1:
//
//	{"code":"FORBIDDEN","message":"authentication required","retryable":false}
//
// The codes are those of the call protocol: NOT_FOUND (no such operation, or one the
// caller may not see), FORBIDDEN, INVALID_INPUT (JSON-INPUT does not match the
// operation's input schema; details lists why), INVALID_OPERATION_TYPE, INTERNAL (also
// a connection lost during the call), TIMEOUT (retryable), and operation-specific ones.
// A JSON-INPUT that is not valid JSON is a usage error (exit 2); write "--" before an
// input that starts with "-", such as -5. Ctrl-C (SIGINT or SIGTERM) aborts the call on
// the wire (call.aborted) and then closes the connection; call exits 1 with
// "alknet: call: interrupted". Failing to connect exits 1 with one "alknet: call: ..."
// line, as pipe does.
//
//	$ alknet call --pin ed25519:... 127.0.0.1:4433 demo/echo '{"a": [1, 2]}'
//	{"a":[1,2]}
//	$ alknet call --pin ed25519:... 127.0.0.1:4433 demo/ticks '{"count":3,"interval_ms":500}'
//	{"n":1}
//	{"n":2}
//	{"n":3}
//	$ alknet call --pin ed25519:... --token alk_... 127.0.0.1:4433 demo/whoami
//	{"id":"alk_abcd"}
//
// # SSH
//
// serve speaks SSH-2 on ALPN alknet/ssh, over the first stream of a QUIC connection or
// over the TCP+TLS connection. Clients log in with a public key whose fingerprint a
// [[peers]] entry lists (for the Ed25519 key of another node's DIR/node.key, exactly its
// node fingerprint), taking that peer's identity and scopes, or with an OpenSSH user
// certificate from one of [ssh]'s cert_authorities, as the principal they log in as
// with the scopes of cert_authority_scopes. There are no passwords. Commands run without
// a shell, only when their program (argv[0]) is on [ssh] exec_allow and the identity has
// scope ssh:exec; TCP forwards (direct-tcpip, so ssh -L, ssh -D and connect) follow
// [ssh.forwarding]; remote forwards (ssh -R) bind loopback addresses of the node only,
// for scope ssh:remote-forward. Shells, ptys, agent and X11 forwarding are refused; a
// refused command or subsystem writes its reason to the client's stderr and exits 126. Logs
// name identities, key fingerprints and the deciding rule, never a forwarding
// destination. Without an [ssh] table every command and forward is refused.
//
// The stock OpenSSH client reaches it through pipe:
//
//	ssh -o ProxyCommand='alknet pipe --alpn alknet/ssh --pin ed25519:... %h:%p' \
//	    -o HostKeyAlias=mynode -i ~/.alknet/node.key -p 4433 alice@127.0.0.1 uptime
//
// with the node's host key in known_hosts as "mynode ssh-ed25519 AAAA...". pipe ends
// quietly when ssh hangs it up (SIGHUP), closing its connection cleanly.
//
// # SFTP
//
// With [[sftp.exports]] in --config, serve gives file access without a shell, two ways
// in: raw SFTP on ALPN alknet/sftp (identity from the TLS client certificate; a client
// that is not a known peer is closed "unauthenticated") and the SSH subsystem sftp on
// alknet/ssh. The client sees "/" listing the exports it may read, "/<name>/..." inside
// one; scopes sftp:read:<export> and sftp:write:<export> (write implies read, "*" for
// every export) decide, an export it may not read does not exist for it. Uploads that
// truncate or create replace the file atomically at close (atomic_writes). The stock
// clients:
//
//	sftp -D 'alknet pipe --alpn alknet/sftp --pin ed25519:... 127.0.0.1:4433' -b batch
//	sftp -F /dev/null -o ProxyCommand='alknet pipe --alpn alknet/ssh --pin ed25519:... %h:%p' \
//	    -o HostKeyAlias=mynode -i ~/.alknet/node.key -P 4433 alice@127.0.0.1
//
// scp (OpenSSH 9 speaks SFTP) works through the same ProxyCommand. Without exports
// the node serves no sftp; adding the first export takes a restart.
//
// # Git
//
// With a [git] table in --config (root = "repos", relative to the file; engine = "auto",
// "binary" or "go-git"; max_depth = 3), serve serves the bare repositories under root on
// ALPN alknet/git and as the SSH commands git-upload-pack, git-receive-pack and
// git-upload-archive on alknet/ssh (routed ahead of the exec allow list). Scopes
// git:read:<glob> and git:write:<glob> decide; a repository an identity may not read
// answers exactly like a missing one. "alknet git init [--config FILE] NAME" creates
// ROOT/NAME.git (bare, branch main) and prints its path; an existing repository is exit
// 1, a bad name exit 2. The stock client:
//
//	git -c protocol.ext.allow=always clone 'ext::alknet pipe --alpn alknet/git --pin FP HOST:PORT %G/org/repo.git'
//	GIT_SSH_COMMAND="ssh -o ProxyCommand='alknet pipe --alpn alknet/ssh --pin FP %h:%p'" git clone ssh://git@HOST:PORT/org/repo.git
//
// # DNS
//
// With a [dns] table in --config, serve answers authoritatively over DNS over QUIC (ALPNs
// doq and alknet/dns) and DNS over TLS (dot, on the TCP+TLS listener) for the node zone
// "<z32>.<origin>." (origin = "" by default; <z32> is the z-base-32 form of the node's
// key), whose "_alknet" TXT and SVCB records list the node's ALPNs and addresses
// (addresses, default the listen address), for static zones (zones = [...] master
// files, re-read on SIGHUP; a broken file keeps the zones in use) and, with [dns.pkarr]
// relay = true, for the "<z32>." names of the pkarr packets its relay holds (PUT and GET
// https://HOST:PORT/pkarr/<z32> on the HTTP surface). [dns.pkarr] publish = [URLs]
// publishes the node's own signed packet to those relays, hourly. listen_plain =
// "127.0.0.1:5353" adds an unencrypted UDP+TCP listener for dig and kdig:
//
//	kdig +quic @127.0.0.1 -p 4433 _alknet.<z32> TXT
//
// "alknet dns query" asks a node (DoQ, or DoT with --tcp; --pin or --insecure as for
// pipe) and prints the answer as zone-file lines, exit 1 unless NOERROR. "alknet dns
// publish" signs the packet of the state directory's key (records for --addr and
// --alpn) and PUTs it to a relay; "alknet dns resolve" prints the verified records a
// relay holds for a key, exit 1 on 404 or a bad signature. For both, --pin verifies a
// relay that is an alknet node; without it the system roots apply.
//
// # Messages
//
// With a [msg] table in --config, serve answers alknet/msg: sealed store-and-forward
// messages (package github.com/alknet/alknet/msg). It hosts its own mailbox and those
// of the peers with scope msg:mailbox, takes deliveries from peers with scope msg:send
// (from anyone under allow_anonymous = true) and keeps the mailboxes in DIR/msg.db
// (store = "bbolt", the default), in PostgreSQL (store = "postgres", the DSN in
// postgres_dsn_file, mode 0600, shared by a fleet of nodes) or in memory. At start it
// publishes its own key bundle, so that messages can be sent to the node itself. Its
// X25519 key, and each client's, is the vault's (m/74'/2'/1'/0') with a keystore, else
// DIR/msg_x25519.key (PEM PKCS #8, created with mode 0600; never converted from the
// Ed25519 key).
//
// "alknet msg register" publishes the client's key bundle to its home node. "alknet msg
// send" seals stdin (at most 1 MiB, and what the node's max_frame_bytes allows) for the
// RECIPIENT fingerprint, delivers it and prints the message id. "alknet msg inbox"
// fetches every page of the client's mailbox (--wait long-polls an empty one, up to 1m),
// opens and verifies each message and prints one JSON line per message:
//
//	{"id":"<base64url>","from":"ed25519:<hex>","ts":"<RFC 3339, ms, UTC>","content_type":"...","body":"...","encoding":"text"}
//
// body is the body itself when it is valid UTF-8 (encoding "text") and standard base64
// otherwise (encoding "base64"). --ack deletes what was printed; a message that does
// not open or verify is reported on stderr and kept, and inbox then exits 1.
//
// # alknet connect
//
// connect dials HOST:PORT with ALPN alknet/ssh like pipe (the state directory's
// identity as TLS client certificate, --pin or --insecure, QUIC or TCP+TLS with --tcp)
// and logs in as --user (default "alknet") with the same identity key. The SSH host key
// must be --host-key, or by default the --pin fingerprint (a node's default host key is
// its identity key; a node running from a keystore has its own, the ssh-host-key line
// of serve, so pass that with --host-key). With --insecure and no --host-key, the host
// key must be the key the server presented in TLS.
//
// It then runs a SOCKS5 proxy (CONNECT without authentication; names are resolved by
// the node) on --socks (default 127.0.0.1:1080; --socks "" runs none), the local
// forwards -L bind:port:host:port (listen on bind:port here, connect to host:port from
// the node) and the remote forwards -R bind:port:host:port (listen on bind:port on the
// node's loopback, connect to host:port from here), each flag repeatable; port 0 picks
// a free port. A malformed spec is a usage error ("connect: invalid spec <spec>", exit
// 2). Once the first connection is up it prints one line per listener, then ready:
//
//	socks 127.0.0.1:1080
//	local 127.0.0.1:8080:db.internal:5432 127.0.0.1:8080
//	remote 127.0.0.1:0:127.0.0.1:3000 127.0.0.1:41023
//	ready
//
// (a remote line gives the address the node bound; a -R the node refuses gets a warning
// on stderr instead). The node's forwarding policy decides every connection. connect
// keeps the listeners up until SIGINT, SIGTERM or SIGHUP, redialling a lost connection
// with backoff (1s doubling to 30s; connection changes are logged on stderr), and then
// exits 0. The first connection failing (unreachable node, wrong pin or host key, a key
// the node does not know) exits 1 with one line saying why.
//
// --via chooses what carries the forwards: ssh (the above), forward (ALPN
// alknet/forward: each forwarded connection is its own QUIC stream, encrypted once by
// the connection's TLS, under the same [ssh] forwarding policy and the same identity;
// -R connections come as streams the node opens; not with --tcp) or auto, the
// default: forward on QUIC when neither -R nor --host-key is given and the node serves
// alknet/forward to this client, SSH otherwise. The choice is logged on stderr (via=forward or via=ssh). A node serves
// alknet/forward when its [ssh] forwarding policy can allow something, unless [ssh]
// disable_forward = true.
//
//	$ alknet connect --pin ed25519:... -L 127.0.0.1:5432:db.internal:5432 node.example:4433
//	$ curl --socks5-hostname 127.0.0.1:1080 http://intranet.internal/
//
// # alknet vault
//
// The vault keeps the node's keys as a BIP39 mnemonic (English word list), sealed in
// DIR/vault.keystore with a passphrase: Argon2id (t=3, 64 MiB, p=4) and AES-256-GCM,
// written atomically with mode 0600 and never overwritten.
//
// vault init generates a mnemonic of --words words (12, 15, 18, 21 or 24; default 24),
// writes the keystore and prints the mnemonic once on stdout, one line. On stderr it
// warns to write the words down (they will not be shown again), and prints the keystore
// path and "node fingerprint: ed25519:<hex>", plus a note when DIR/node.key exists, which
// the node no longer uses. It refuses (exit 1) when the keystore exists.
//
// vault recover reads a mnemonic from stdin (at most 1024 bytes; words separated by
// any white space), checks it (an invalid phrase is refused with the position of the
// offending word, never the word) and writes the keystore; it prints only the keystore
// path and the node fingerprint, on stderr. It also refuses an existing keystore.
//
// Both take --bip39-passphrase-file, an optional BIP39 passphrase (the "25th word"):
// another passphrase gives other keys, so recovering needs the same one.
//
// vault seal reads a secret from stdin (at most 64 KiB), strips one trailing "\n" or
// "\r\n" unless --raw is given, encrypts it with the vault key of --key-version (default
// 2) and prints the EncryptedData JSON blob, one line:
//
//	{"key_version":2,"salt":"<base64>","iv":"<base64>","data":"<base64>"}
//
// vault open reads such a blob from stdin (at most 1 MiB) and writes the plaintext to
// stdout exactly, without adding a newline. A malformed blob, or one sealed by another
// vault or altered, exits 1.
//
// # Passphrases
//
// Commands that unlock or write a keystore read its passphrase from --passphrase-file,
// or else prompt on the terminal (/dev/tty, without echo; init and recover ask twice).
// With neither a file nor a terminal they exit 2 with "no --passphrase-file given and no
// terminal to prompt on". Passphrases are never read from the environment.
//
// A passphrase file holds at most 1024 bytes plus one trailing "\n" or "\r\n", which is
// stripped (only one: "pw\n\n" is the passphrase "pw\n"); it must not be empty. A
// regular file must not be accessible by group or others (chmod 600), or it is refused;
// pipes such as <(pass show alknet) are read as they are. The same rules apply to
// --bip39-passphrase-file. A refused file exits 2; a wrong passphrase exits 1 with
//
//	alknet: id: vault: keystore DIR/vault.keystore: wrong passphrase or corrupted file
//
// # Configuration file
//
// --config names a TOML file (at most 1 MiB) with the node's live configuration: limits,
// known peers and API keys. Keys outside this schema are errors ("unknown key
// \"limits.max_conns\""), as are wrongly typed values; every error names the key or
// entry and the file.
//
//	[limits]
//	max_connections = 10000             # concurrent connections in total
//	max_connections_per_ip = 100        # concurrent connections per remote IP
//	handshake_timeout = "5s"            # Go duration syntax
//	idle_timeout = "30s"                # no traffic and no work in flight: closed ("-1s": never)
//	max_buffered_bytes = 268435456      # inbound bytes handlers buffer, whole node
//	max_buffered_bytes_per_ip = 134217728   # the same per remote IP
//	max_buffered_bytes_per_conn = 67108864  # the same per connection
//	max_anonymous_frame_bytes = 1048576 # one frame, message or body without a client identity
//
//	[[peers]]
//	id = "alice"                        # stable peer id, unique
//	fingerprints = ["ed25519:<hex>"]    # or "SHA256:<hex>" of a certificate
//	token_hash = "sha256:<hex>"         # optional: SHA-256 of the peer's token
//	scopes = ["admin"]
//	enabled = true                      # default true; false revokes the peer
//	[peers.resources]                   # resource ids by type, for this peer
//	service = ["gitea"]
//
//	[[api_keys]]
//	prefix = "alk_abcd"                 # first 8 characters of the token
//	hash = "sha256:<hex of the whole token>"
//	scopes = ["demo"]
//	expires_at = 1893456000             # optional, unix seconds; 0 or absent: never
//
// Extensions beyond that schema, also accepted:
//
//	[limits]
//	max_auth_attempts = 5               # protocol-level auth attempts per connection
//	per_ip_exempt = ["127.0.0.0/8"]     # CIDR networks exempt from max_connections_per_ip
//	ipv6_prefix_len = 64                # IPv6 peers count per /N for the per-IP limit (1-128)
//	[[peers]]
//	display_name = "Alice's laptop"     # for humans only
//	[[api_keys]]
//	description = "CI token"            # for humans only
//
// The [ssh] table configures alknet/ssh (see "SSH"); absent, it refuses every command
// and forward and accepts no certificate:
//
//	[ssh]
//	exec_allow = ["echo", "uptime"]     # programs (argv[0]) scope ssh:exec may run
//	cert_authorities = ["ssh-ed25519 AAAA... ops-ca"]  # authorized_keys lines of user CAs
//	cert_authority_scopes = ["ssh:exec"]  # extension: scopes of certificate logins
//	max_auth_attempts = 6               # failed attempts per connection; 0 default (6), <0 no limit
//	disable_forward = false             # true: no alknet/forward (else served when the policy allows something)
//	[ssh.forwarding]                    # decides direct-tcpip and alknet/forward alike
//	default = "deny"                    # "allow" or "deny" (default) when no rule matches
//	[[ssh.forwarding.rules]]            # first match wins
//	target = "cidr:127.0.0.0/8"         # any | host:<glob> | cidr:<net> | ports:<host-glob>:<lo>-<hi> | alknet
//	action = "allow"                    # "allow" or "deny", required
//	principals = ["alice"]              # peer ids, certificate principals or scopes; absent: everyone
//	transports = ["quic", "tls"]        # extension: quic, tls or tcp; absent: all
//
// A host name is resolved by the node and allowed only if every address is; a glob holds
// at most one "*". A cert_authorities line may start with the option
// permit-port-forwarding (certificates must then carry that extension).
//
// [[sftp.exports]] tables configure alknet/sftp and the SSH subsystem sftp (see
// "SFTP"); a reload applies them, with the peers' scopes, to new sessions:
//
//	[[sftp.exports]]
//	name = "data"                       # export name: [A-Za-z0-9._-]{1,64}, unique
//	root = "srv/data"                   # directory, relative to the config file; must exist
//	read_only = false                   # default false
//	atomic_writes = true                # default true: new content appears at close
//
// [[openapi]] and [[mcp]] tables import operations at start (a reload does not
// re-import them); an import that fails stops serve with an error naming the table:
//
//	[[openapi]]                         # an HTTP API described by an OpenAPI 3 document
//	namespace = "pets"                  # operations are pets/<operationId>
//	spec = "petstore.yaml"              # JSON or YAML, relative to the config file
//	base_url = "https://petstore.example/api/v3"
//	auth = "header:X-API-Key"           # none (default), bearer, basic or header:<Name>
//	credential_file = "pets.key"        # mode 0600; one trailing newline stripped
//	expose = true                       # default false: Internal, composition only
//	[[mcp]]                             # a streamable-HTTP MCP server's tools
//	namespace = "tools"                 # operations are tools/<tool>, Mutations
//	endpoint = "https://mcp.example/mcp"
//	credential_file = "tools.key"       # optional, mode 0600: a Bearer token
//	expose = false                      # default false: Internal, composition only
//
// In [limits], an absent or 0 value means the built-in default (10000 connections, 100
// per IP, 5s handshake, 5 auth attempts, /64) and a negative count means no limit.
// Tables, arrays and dotted keys may not nest more than 16 levels deep.
//
// # Exit codes
//
//	0  success (serve: stopped by SIGINT/SIGTERM; help)
//	1  runtime failure (cannot listen, cannot reach the server, refused ALPN, wrong
//	   passphrase, existing keystore, invalid mnemonic or blob, a call that ended
//	   with a CallError, ...)
//	2  usage or configuration error (unknown command or flag, missing or conflicting
//	   flags, invalid --config, refused passphrase file, no passphrase file and no
//	   terminal, --passphrase-file without a keystore)
//
// Every error is printed as one line on stderr, starting "alknet: ", except the
// CallError of a failed call, printed as one line of JSON.
//
// # Composition
//
// The command is a list of plugins over package
// github.com/alknet/alknet/examples/node, which owns everything above that no handler
// owns (flags, state and identity, --config with [limits], [[peers]] and [[api_keys]],
// the endpoint, reload, drain, logs, the stdout lines and exit codes). The handler
// plugins, in ALPN preference order, are echo (alknet/echo), call (alknet/call, the
// [[openapi]] and [[mcp]] imports), ssh (alknet/ssh, the [ssh] table, serving the sftp
// plugin's SSH subsystem and the git plugin's SSH commands), sftp (alknet/sftp,
// [[sftp.exports]]), git (alknet/git, [git], "git init") and http (alknet/http,
// h2, http/1.1, --demo-page, serving the call plugin's registry); the
// command plugins are id, pipe, callcmd (call), connect and vault. Command minimal in
// examples/minimal is a node of echo and ssh alone.
package main
