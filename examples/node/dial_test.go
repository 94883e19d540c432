package node

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// TestDialOptionsResume checks that the dials of one invocation share a session cache:
// a command that reconnects to its pinned server (a tunnel's redial) resumes.
func TestDialOptionsResume(t *testing.T) {
	dir := t.TempDir()
	key, err := tlsconf.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := tlsconf.SaveKey(filepath.Join(dir, KeyFileName), key, "test"); err != nil {
		t.Fatal(err)
	}
	reg := core.NewRegistry()
	if err := reg.RegisterAs("alknet/echo", coretest.Echo()); err != nil {
		t.Fatal(err)
	}
	srv := coretest.NewServer(t, reg)

	c := (&Node{Name: "alknet"}).NewCLI(nil, io.Discard, io.Discard)
	f := &DialFlags{State: dir, Pin: srv.Identity.Fingerprint}
	if err := f.SetAddr("test", srv.Addr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i, wantResumed := range []bool{false, true, true} {
		opts, err := c.DialOptions("test", f)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := endpoint.Dial(ctx, srv.Addr, "alknet/echo", opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := coretest.RoundTrip(ctx, conn, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		st, _ := conn.TLSConnectionState()
		conn.Close(core.CloseNormal, "")
		if st.DidResume != wantResumed {
			t.Fatalf("dial %d: resumed %v, want %v", i, st.DidResume, wantResumed)
		}
		// The server's ticket reaches a QUIC client in the background.
		for deadline := time.Now().Add(time.Minute); opts.TLS.Sessions.Len() == 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no session ticket arrived")
			}
		}
	}
}
