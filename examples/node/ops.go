package node

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/alknet/alknet/core"
)

// This file holds the operator's built-in commands beside serve: version and config
// check, and the checks serve makes of its flags before it touches the state directory.

// quicGoModule is the module whose version "version" reports beside Go's.
const quicGoModule = "github.com/quic-go/quic-go"

// version prints the binary's module version and VCS revision, the Go version and the
// quic-go version, from the build information the Go toolchain embeds.
func (c *CLI) version(args []string) error {
	cmd := c.NewFlagSet("version", c.node.Name+" version")
	pos, err := cmd.ParseArgs(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return Usagef(`version: unexpected argument %q (run "%s version -h" for usage)`, pos[0], c.node.Name)
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("version: the binary carries no build information")
	}
	_, err = io.WriteString(c.Stdout, VersionText(c.node.Name, bi))
	return err
}

// VersionText is what "version" prints for the build information bi: the program
// name and main module version ("(devel)" for a build from a checkout), the VCS
// revision ("unknown" when the build recorded none) with " (modified)" for a build
// from a tree with local changes, the Go version and platform, and the quic-go
// version ("none" when the binary does not contain it).
func VersionText(name string, bi *debug.BuildInfo) string {
	settings := make(map[string]string)
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	rev := settings["vcs.revision"]
	if rev == "" {
		rev = "unknown"
	}
	if settings["vcs.modified"] == "true" {
		rev += " (modified)"
	}
	quic := "none"
	for _, d := range bi.Deps {
		if d.Path != quicGoModule {
			continue
		}
		quic = d.Version
		if d.Replace != nil && d.Replace.Version != "" {
			quic = d.Replace.Version
		}
	}
	mainVersion := bi.Main.Version
	if mainVersion == "" {
		mainVersion = "(devel)"
	}
	goVersion := bi.GoVersion
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", name, mainVersion)
	fmt.Fprintf(&b, "revision %s\n", rev)
	fmt.Fprintf(&b, "go %s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "quic-go %s\n", quic)
	return b.String()
}

// configCommand runs "config check".
func (c *CLI) configCommand(args []string) error {
	name := c.node.Name
	if len(args) == 0 || args[0] != "check" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			_, err := fmt.Fprintf(c.Stdout, "Usage: %s config check --config FILE\n", name)
			if err != nil {
				return err
			}
			return flag.ErrHelp
		}
		return Usagef(`config: want "config check" (run "%s help config" for usage)`, name)
	}
	cmd := c.NewFlagSet("config check", name+" config check --config FILE")
	path := cmd.String("config", "", "the TOML `FILE` to check as serve --config would read it")
	pos, err := cmd.ParseArgs(args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return Usagef(`config check: unexpected argument %q (run "%s config check -h" for usage)`, pos[0], name)
	}
	if *path == "" {
		return Usagef(`config check: --config FILE is required (run "%s config check -h" for usage)`, name)
	}
	pc, _, _, err := c.loadServeConfig(*path)
	if err != nil {
		return &ConfigError{fmt.Errorf("config check: %w", err)}
	}
	for _, p := range c.node.Plugins {
		if ch, ok := p.(Checker); ok {
			if err := ch.Check(pc.Config(p)); err != nil {
				return &ConfigError{fmt.Errorf("config check: config %s: %w", *path, err)}
			}
		}
	}
	_, err = io.WriteString(c.Stdout, "ok\n")
	return err
}

// loadServeConfig is serve's configuration: the --config file at path (none: the
// defaults) parsed and validated for the node's plugins, the live store over it and
// the directory relative paths in it resolve against. Errors are *ConfigError.
// "config check" runs exactly this, then the plugins' Checker checks (what their
// Setup checks without network or state); neither creates keys nor binds ports.
func (c *CLI) loadServeConfig(path string) (*Parsed, *core.DynamicStore, string, error) {
	if path == "" {
		store, err := core.NewDynamicStore(defaultConfig(c.node.Plugins).Dynamic)
		if err != nil {
			return nil, nil, "", &ConfigError{fmt.Errorf("config: %w", err)}
		}
		return defaultConfig(c.node.Plugins), store, "", nil
	}
	data, err := readConfigFile(path)
	if err != nil {
		return nil, nil, "", &ConfigError{err}
	}
	pc, store, err := c.parseServeConfig(data, path)
	if err != nil {
		return nil, nil, "", err
	}
	return pc, store, filepath.Dir(path), nil
}

// parseServeConfig parses data, the contents of the --config file at path, as serve
// does.
func (c *CLI) parseServeConfig(data []byte, path string) (*Parsed, *core.DynamicStore, error) {
	pc, err := ParseConfig(data, filepath.Dir(path), c.node.Plugins)
	if err != nil {
		return nil, nil, &ConfigError{fmt.Errorf("config %s: %w", path, err)}
	}
	store, err := core.NewDynamicStore(pc.Dynamic)
	if err != nil {
		return nil, nil, &ConfigError{fmt.Errorf("config %s: %w", path, err)}
	}
	return pc, store, nil
}

// CheckConfig reports whether data, meant as the --config file at path (relative
// paths in it resolve against its directory), is a configuration serve of this node
// accepts, by the same parsing and validation serve runs. The error is a
// *ConfigError naming path and the first problem. Commands that write a config file
// (such as "apikey new --toml") check the result with it before they replace the file.
func (c *CLI) CheckConfig(data []byte, path string) error {
	_, _, err := c.parseServeConfig(data, path)
	return err
}

// checkListenAddr reports whether addr is an address serve can listen on: HOST:PORT
// with a port number 0..65535 (or a service name the system knows) and a host that is
// empty, an IP address or a host name. It resolves nothing over the network.
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if port == "" {
		return errors.New("missing port")
	}
	if n, err := strconv.ParseUint(port, 10, 64); err == nil {
		if n > 65535 {
			return fmt.Errorf("port %d is out of range 0..65535", n)
		}
	} else if _, err := net.LookupPort("udp", port); err != nil {
		return fmt.Errorf("unknown port %q", port)
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if !validHostName(host) {
		return fmt.Errorf("invalid host %q", host)
	}
	return nil
}

// validHostName reports whether s is a DNS host name: dot-separated labels of 1..63
// letters, digits, hyphens and underscores, 253 bytes at most.
func validHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			b := label[i]
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
				return false
			}
		}
	}
	return true
}

// Log formats of serve's --log-format.
const (
	LogFormatText = "text"
	LogFormatJSON = "json"
)

// checkLogFormat reports whether format is a --log-format value.
func checkLogFormat(format string) error {
	switch format {
	case LogFormatText, LogFormatJSON:
		return nil
	}
	return errors.New("want text or json")
}

// newLogger returns serve's logger writing to w: slog's text handler (key=value
// lines) or, for LogFormatJSON, its JSON handler (one object a line). Both write the
// same attributes; core.LogAuthFailure's line has msg "auth failure" in either.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == LogFormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// helpConfig prints the usage of "config" for "help config".
func (c *CLI) helpConfig(args []string) error {
	if len(args) > 1 {
		return Usagef("help: too many arguments")
	}
	if len(args) == 1 && args[0] == "check" {
		return c.configCommand([]string{"check", "-h"})
	}
	if len(args) == 1 {
		return Usagef(`help: unknown command "config %s"; run "%s help" for usage`, args[0], c.node.Name)
	}
	return c.configCommand([]string{"-h"})
}
