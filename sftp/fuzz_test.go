package sftp_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/alknet/alknet/core"
	alksftp "github.com/alknet/alknet/sftp"
)

// packet frames an SFTP packet of type typ with payload.
func packet(typ byte, payload ...[]byte) []byte {
	body := append([]byte{typ}, bytes.Join(payload, nil)...)
	out := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	return append(out, body...)
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func str(s string) []byte { return append(u32(uint32(len(s))), s...) }

// fuzzSession is a session's byte stream: it reads the fuzzer's input and discards
// what the server writes.
type fuzzSession struct{ io.Reader }

func (fuzzSession) Write(p []byte) (int, error) { return len(p), nil }
func (fuzzSession) Close() error                { return nil }

// FuzzSession feeds arbitrary packets to a served session, after the init packet, as
// an identity that may write: the session must end (never the process), and nothing
// may appear outside the export.
func FuzzSession(f *testing.F) {
	init := packet(1, u32(3))
	f.Add([]byte{})
	f.Add(packet(17, u32(1), str("/data/f")))                   // stat
	f.Add(packet(17, u32(1), str("/data/../../etc/passwd")))    // stat outside
	f.Add(packet(3, u32(2), str("/data/n"), u32(0x1a), u32(0))) // open creat|trunc|write
	f.Add(append(packet(3, u32(2), str("/data/n"), u32(0x1a), u32(0)), packet(6, u32(3), str("1"))...))
	f.Add(packet(20, u32(4), str("../x"), str("/data/l")))                                 // symlink
	f.Add(packet(200, u32(5), str("posix-rename@openssh.com"), str("/data/f"), str("/x"))) // extended
	f.Add(packet(11, u32(6), str("/")))                                                    // opendir /
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})                                               // oversized
	f.Add([]byte{0, 0, 0, 0})                                                              // empty packet
	f.Add(packet(3, u32(7), []byte{0xff, 0xff, 0xff, 0xf0}))                               // string longer than the packet
	f.Fuzz(func(t *testing.T, in []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "export")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		srv, err := alksftp.NewServer(alksftp.Config{
			Exports: []alksftp.Export{{Name: "data", Dir: dir, AtomicWrites: true}},
			Logger:  slog.New(slog.DiscardHandler),
			Limits:  alksftp.Limits{MaxHandles: 8},
		})
		if err != nil {
			t.Fatal(err)
		}
		id := core.Identity{ID: "fuzz", Scopes: []string{"sftp:write:*"}}
		_ = srv.ServeSubsystem(context.Background(), fuzzSession{io.MultiReader(bytes.NewReader(init), bytes.NewReader(in))}, id)
		ents, err := os.ReadDir(parent)
		if err != nil || len(ents) != 1 {
			t.Fatalf("something appeared beside the export: %v %v", ents, err)
		}
	})
}
