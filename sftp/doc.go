// Package sftp serves files over SFTP v3 without a shell, two ways in over one
// backend:
//
//   - the raw ALPN alknet/sftp (Server is a core.ProtocolHandler): SFTP packets on the
//     first bidirectional stream of a QUIC connection, or on a TCP+TLS connection, as
//     the identity the endpoint resolved from the TLS client certificate. A connection
//     without a known identity is closed with core.CloseAuthRequired and a reason that
//     starts "unauthenticated", before any packet is read;
//   - the SSH subsystem "sftp" (Server.ServeSubsystem), as the identity SSH
//     authentication gave. This package does not import the ssh module: the assembly
//     layer plugs ServeSubsystem into ssh.Config.Subsystems.
//
// Both run pkg/sftp's request server (never its host-filesystem server) over a
// Backend per export; DirBackend serves a directory through an *os.Root, which
// refuses ".." and symbolic links leaving the directory at the syscall level.
//
// # Exports and access
//
// A server serves named exports. A client sees a virtual tree: "/" lists the exports
// it may read and only those, "/<name>/..." is inside one. The start directory (and
// the realpath of ".") is "/", or "/<name>" when the identity may read exactly one
// export. Scopes sftp:read:<export> and sftp:write:<export> (write implies read;
// <export> may be "*") decide; an export the identity may not read does not exist for
// it (no such file, exactly as a missing name), a read-only export refuses writes to
// everyone, and writes without the write scope get SSH_FX_PERMISSION_DENIED.
//
// Traversal, absolute names, NUL bytes, symbolic links leading outside, renames
// across exports and hard links end in SSH_FX_PERMISSION_DENIED or
// SSH_FX_NO_SUCH_FILE; symlink creation is allowed for a relative target that stays
// inside the export; chown is refused; unsupported requests get
// SSH_FX_OP_UNSUPPORTED.
//
// # Atomic uploads
//
// With Export.AtomicWrites a file opened for writing with truncate, or created, gets
// its new content when its handle closes: the bytes go to a hidden temporary file in
// the same directory (".<name>.alknet-upload-<random>"), renamed over the target at
// close; until then readers see the old file, and a session that breaks off leaves
// the old file intact and the temporary file removed. An open of an existing file
// without truncate (a resumed upload, random writes) writes in place. A node that
// crashes mid-upload leaves the temporary file behind.
//
// # Limits and logs
//
// Limits bounds handles per session, sessions per identity, the packet size (checked
// on the length prefix, before pkg/sftp allocates), the idle time of a session and
// the readdir page; a bad or oversized packet ends its session only (a packet that
// cannot be parsed is answered SSH_FX_BAD_MESSAGE first, or SSH_FX_OP_UNSUPPORTED for
// an unknown type, when its id arrived). Each session
// logs "sftp session opened" and "sftp session closed" (identity, transport, exports
// touched, files read and written, bytes each way, outcome, duration); no file path
// is ever logged.
//
// Dial is the client: a *sftp.Client of pkg/sftp over alknet/sftp, with core's
// dialer and pinning, so a program needs no SSH to reach a node's files.
package sftp
