package node

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestCheckListenAddr(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:0", true},
		{"127.0.0.1:65535", true},
		{"127.0.0.1:65536", false},
		{"127.0.0.1:99999", false},
		{"127.0.0.1:18446744073709551616", false},
		{"127.0.0.1:-1", false},
		{"127.0.0.1:", false},
		{"127.0.0.1", false},
		{":4433", true},
		{"[::1]:4433", true},
		{"[fe80::1%eth0]:4433", true},
		{"localhost:4433", true},
		{"node-1.example.org.:4433", true},
		{"-bad.example:4433", false},
		{"bad host:4433", false},
		{strings.Repeat("a", 64) + ".example:4433", false},
		{"127.0.0.1:https", true},
		{"127.0.0.1:no-such-service-name", false},
	} {
		if err := checkListenAddr(tc.addr); (err == nil) != tc.ok {
			t.Errorf("checkListenAddr(%q) = %v, want ok %v", tc.addr, err, tc.ok)
		}
	}
}

func TestNewLoggerFormats(t *testing.T) {
	var text, js bytes.Buffer
	newLogger(&text, LogFormatText, slog.LevelInfo).Warn("auth failure", slog.String("remote_ip", "192.0.2.1"))
	newLogger(&js, LogFormatJSON, slog.LevelInfo).Warn("auth failure", slog.String("remote_ip", "192.0.2.1"))
	newLogger(&js, LogFormatJSON, slog.LevelWarn).Info("dropped below the level")
	if !strings.Contains(text.String(), `msg="auth failure" remote_ip=192.0.2.1`) {
		t.Errorf("text line %q", text.String())
	}
	var rec map[string]any
	if err := json.Unmarshal(js.Bytes(), &rec); err != nil || rec["msg"] != "auth failure" || rec["remote_ip"] != "192.0.2.1" || rec["level"] != "WARN" {
		t.Errorf("JSON line %q: %v", js.String(), err)
	}
	for _, f := range []string{"text", "json"} {
		if err := checkLogFormat(f); err != nil {
			t.Errorf("checkLogFormat(%q) = %v", f, err)
		}
	}
	for _, f := range []string{"", "JSON", "logfmt"} {
		if checkLogFormat(f) == nil {
			t.Errorf("checkLogFormat(%q) accepted", f)
		}
	}
}
