package git_test

import (
	"bytes"
	"strings"
	"testing"

	alkgit "github.com/alknet/alknet/git"
)

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"git-upload-pack /org/repo.git\x00host=h\x00",
		"git-receive-pack /r.git\x00host=h\x00\x00version=2\x00",
		"git-upload-archive r\x00",
		"git-upload-pack /x\n",
		"bogus /x\x00",
		"0000",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := alkgit.ParseRequest(line)
		if err != nil {
			return
		}
		switch req.Service {
		case alkgit.ServiceUploadPack, alkgit.ServiceReceivePack, alkgit.ServiceUploadArchive:
		default:
			t.Fatalf("service %q accepted", req.Service)
		}
		if req.Path == "" || req.Version != 0 && req.Version != 2 {
			t.Fatalf("bad result %+v", req)
		}
		// The framed form reads back the same.
		framed := []byte(fmtPkt(line))
		got, err := alkgit.ReadRequest(bytes.NewReader(framed), alkgit.MaxPktLine)
		if len(line)+4 <= alkgit.MaxPktLine && (err != nil || got != req) {
			t.Fatalf("ReadRequest = %+v, %v; want %+v", got, err, req)
		}
	})
}

func fmtPkt(b []byte) string {
	const hex = "0123456789abcdef"
	n := len(b) + 4
	if n > 0xffff {
		return "ffff"
	}
	return string([]byte{hex[n>>12&15], hex[n>>8&15], hex[n>>4&15], hex[n&15]}) + string(b)
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"git-upload-pack '/org/repo.git'",
		"git receive-pack 'r.git'",
		"git-upload-archive '~/x.git'",
		"git-upload-pack 'a' 'b'",
		"git-upload-pack '/x'; rm -rf /",
		"git-upload-pack \"x\"",
		"sh -c 'x'",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmd string) {
		service, p, err := alkgit.ParseCommand(cmd)
		if err != nil {
			return
		}
		if strings.ContainsAny(p, "'\x00\n") {
			t.Fatalf("path %q accepted", p)
		}
		verb := strings.Replace(service, "git-", "", 1)
		if cmd != service+" '"+p+"'" && cmd != "git "+verb+" '"+p+"'" {
			t.Fatalf("%q parsed as %q %q", cmd, service, p)
		}
	})
}

func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"/org/repo.git", "~/x.git", "../x.git", "a/./b", "a//b", "%2e%2e/x", "a/b/c/d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		name, err := alkgit.CleanName(p, alkgit.DefaultMaxDepth)
		if err != nil {
			return
		}
		for _, e := range strings.Split(name, "/") {
			if e == "" || e[0] == '.' || strings.ContainsAny(e, "%\\\x00") {
				t.Fatalf("%q cleaned to %q", p, name)
			}
		}
	})
}

func TestParseCommandStrict(t *testing.T) {
	good := map[string]string{
		"git-upload-pack '/org/repo.git'": "/org/repo.git",
		"git upload-pack 'org/repo.git'":  "org/repo.git",
		"git-receive-pack '~/name.git'":   "~/name.git",
		"git-upload-archive 'org/r.git'":  "org/r.git",
	}
	for cmd, want := range good {
		if _, p, err := alkgit.ParseCommand(cmd); err != nil || p != want {
			t.Errorf("%q: %q, %v", cmd, p, err)
		}
	}
	for _, cmd := range []string{
		"git-upload-pack /org/repo.git", "git-upload-pack 'a' 'b'", "git-upload-pack ''",
		"git-upload-pack 'a'; id", "git-upload-pack  'a'", "git-shell -c 'a'", "git-upload-pack 'a\nb'",
		"git-upload-pack 'it'\\''s'", "rm 'x'",
	} {
		if _, _, err := alkgit.ParseCommand(cmd); err == nil {
			t.Errorf("%q accepted", cmd)
		}
	}
}

func TestReadRequestLimit(t *testing.T) {
	line := "git-upload-pack /" + strings.Repeat("a", 5000) + "\x00"
	if _, err := alkgit.ReadRequest(strings.NewReader(fmtPkt([]byte(line))), 4096); err == nil {
		t.Fatal("long request line accepted")
	}
}
