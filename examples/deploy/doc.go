// Package deploy holds what runs an alknet node as a service, and the tests that check it:
//
//   - alknet.service, a hardened systemd unit (DynamicUser, StateDirectory and
//     ConfigurationDirectory, ProtectSystem=strict, an empty capability set, reload on
//     SIGHUP), checked with systemd-analyze verify and systemd-analyze security where
//     installed, and parsed for its required directives everywhere;
//   - fail2ban/filter.d/alknet.conf and fail2ban/jail.d/alknet.conf, a filter matching the
//     "auth failure" line every handler writes (core.LogAuthFailure) in slog's text and JSON
//     formats, from the journal or a file, and a jail banning UDP and TCP on the node's port;
//     checked with fail2ban-regex and fail2ban-client where installed.
//
// The package has no API: its files are copied into place (README.md, "Run it as a
// service"). Lines captured from a running node are checked against the filter by the tests
// of examples/alknet.
package deploy
