// Package git serves clone, fetch and push of bare repositories under one root
// directory, two ways in over one resolver and one access check:
//
//   - the raw ALPN alknet/git (Server is a core.ProtocolHandler): the first pkt-line
//     of each bidirectional stream is a git-daemon request ("git-upload-pack
//     /org/name.git\x00host=h\x00", optionally followed by "\x00version=2\x00"), and
//     the rest of the stream is an ordinary stateful pack session. One operation per
//     stream, many streams per connection, as the identity of the TLS client
//     certificate;
//   - SSH exec (Server.StartExec, Server.StartExecEnv): "git-upload-pack '<path>'",
//     "git-receive-pack '<path>'" and "git-upload-archive '<path>'" (or the "git
//     upload-pack" form), parsed strictly by ParseCommand. This package does not
//     import the ssh module: the assembly layer wraps StartExecEnv into an ssh
//     Executor.
//
// # Repositories and access
//
// Repositories are bare directories ROOT/name.git or ROOT/org/name.git, nested up to
// Config.MaxDepth elements. "/org/name", "org/name.git" and "~/org/name.git" name the
// same repository. A path that is malformed, leaves the root (lexically or through
// a symbolic link) or names no repository is answered exactly like a missing one
// ("repository not found"), and so is a repository the identity may not read: scopes
// git:read:<glob> (upload-pack, upload-archive) and git:write:<glob> (receive-pack,
// implies read), the glob (path.Match) over the name without ".git". Pushes never
// create repositories: Init does.
//
// # Push rules
//
// Unless Rules relax them, per server or per repository glob: no ref deletion, no
// tag overwrite, and only fast-forwards on refs/heads/*. Deletions and tag
// overwrites are refused by this package before the engine sees the commands (the
// client reads "[remote rejected] ... (rule: ...)"); fast-forwards are enforced by
// receive.denyNonFastForwards, passed on the command line, never by a hook a
// repository owner could edit.
//
// # Engines
//
// The binary engine runs git upload-pack, receive-pack or upload-archive with the
// repository as working directory, no shell and a fixed environment (GIT_PROTOCOL
// only for protocol version 2), its stderr to the log: full protocol v2, shallow and
// partial clones. The go-git engine needs no git executable: it negotiates
// upload-pack itself (multi_ack_detailed, no-done, side-band-64k; limits MaxWants
// and MaxHaves) and writes packs with go-git v5's encoder, and receives pushes through
// go-git v5's plumbing/transport/server (no thin packs). It answers protocol v2
// requests in v0 (a fallback the protocol allows), advertises no shallow capability
// (git reports "Server does not support shallow clients"), and refuses upload-archive
// with a message naming the engine. It checks the fast-forward and commit-tip rules
// itself, after the pack is stored and before any reference moves.
// NewEngine("auto") picks binary when git is found.
//
// # Go clients
//
// Transport is a go-git v5 client transport over alknet/git: install it once with
// go-git's client.InstallProtocol(Scheme, NewTransport(Dialer(opts))) and clone
// "alknet://HOST:PORT/org/name.git" with go-git as usual. Stock git clients use the
// ext:: recipe in the README (alknet pipe --alpn alknet/git).
package git
