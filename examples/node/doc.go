// Package node is the assembly every Alknet binary shares, and the plugin contract
// through which a binary says what it serves.
//
// A binary is a Node: a name and an ordered list of plugins, in the manner of CoreDNS's
// plugin.cfg. Nothing registers itself; a binary links exactly the plugins it lists:
//
//	calls, files := call.New(), sftp.New()
//	n := &node.Node{Name: "alknet", Plugins: []node.Plugin{
//		echo.New(), calls, ssh.New(ssh.WithSubsystem("sftp", files.SSHSubsystem)), files, http.New(calls), // handlers, in ALPN preference order
//		id.New(), pipe.New(), callcmd.New(), connect.New(), vault.New(), // client commands
//	}}
//	n.Main()
//
// The node knows no handler module. It owns the command line (serve, config check,
// version, help and the plugins' subcommands, flags before or after arguments, exit
// codes 0, 1 and 2), the
// state directory and identity (node.key, or the vault keystore unlocked with
// --passphrase-file or a terminal prompt), the --config file (1 MiB and 16 levels of
// nesting at most; keys spelled exactly; errors naming file and key), the [limits],
// [[peers]] and [[api_keys]] tables and the core.DynamicStore they feed, the endpoint
// (QUIC and TCP+TLS on one port), reload on SIGHUP, drain on SIGINT and SIGTERM, the
// slog log on stderr (text, or JSON with --log-format json) and serve's stdout lines:
//
//	fingerprint ed25519:<hex>
//	listen quic <host:port>
//	listen tcp <host:port>
//	listen metrics <host:port>   (with --metrics only)
//	ssh-host-key ed25519:<hex>
//	ready
//
// serve --metrics HOST:PORT serves Prometheus metrics at /metrics on a plain-HTTP
// listener of its own (loopback suggested; package metrics): the endpoint's counters,
// the reloads', the Go runtime's and the process's, and those the plugins add with
// Env.AddMetrics, all read from the modules' Stats snapshots when scraped.
//
// # Plugins
//
// A Plugin has a name. Everything else is optional and discovered by type assertion:
//
//   - Configurable: the plugin owns top-level keys of --config. NewConfig returns a
//     pointer to a struct whose toml-tagged fields are those keys; the node decodes each
//     key straight into its field (the module's own types), checks that every key under
//     it is spelled exactly as a tag, and calls the config's Validate, so that a rule
//     lives in one place. A PathResolver config resolves relative paths first.
//   - Provisioner: Setup(ctx, *Env) returns the plugin's handlers. Env holds the node's
//     key and SSH host key (and, from a keystore, the vault's msg X25519 key), state
//     directory, live store, identity provider, logger and the plugin's decoded config. The handlers of all plugins, in list order, are the
//     node's ALPN preference order.
//   - Reloader: on SIGHUP the node re-reads --config; once the whole file is valid and
//     the store took it, each Reloader gets its new config and returns attributes for
//     the "config reloaded" log line.
//   - Checker: checks of its config that Setup makes without network or state (the
//     call plugin parses its [[openapi]] documents); "config check" runs them.
//   - Flagger: flags of its own on serve (the http plugin's --demo-page).
//   - Commander: client subcommands, listed in the usage text in plugin order.
//
// "config check" runs the loading serve runs (one function) and CLI.CheckConfig
// exposes it to plugins that write a --config file (the creds plugin's --toml).
//
// Handlers that are io.Closers are closed once the endpoint has shut down, and
// Env.OnClose functions run when serve returns. Env.OnReady functions run once the
// node listens, before its "ready" line, with the listen addresses and the final ALPN
// list (Ready). Env.HandleHTTP mounts a plugin's http.Handler on the node's HTTP
// surface: the http plugin serves Env.HTTPRoutes behind its reserved routes.
// Env.AddMetrics hands the node a metrics.Source, a function returning the plugin's
// counters as metrics.Family values (no Prometheus type), which serve --metrics calls
// at every scrape.
//
// Plugins that need each other are wired explicitly in the list: the http plugin takes
// the call plugin as its constructor argument and reads its registry in Setup, which
// is why call comes first; the ssh plugin takes the sftp plugin's SSHSubsystem method
// as the handler of the subsystem "sftp".
package node
