package creds_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/alknet/alknet/examples/node/plugins/creds"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// accept is a check that takes anything.
func accept([]byte, string) error { return nil }

func TestAppendConfigKeepsModeAndLink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.toml")
	if err := os.WriteFile(target, []byte("[limits]\nmax_connections = 1"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(target, 0o640); err != nil { // whatever the umask
		t.Fatal(err)
	}
	link := filepath.Join(dir, "node.toml")
	if err := os.Symlink("real.toml", link); err != nil {
		t.Fatal(err)
	}
	var checked string
	err := creds.AppendConfig(link, []byte("[[peers]]\nid = \"a\"\n"), func(data []byte, path string) error {
		checked = path + ":" + string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "[limits]\nmax_connections = 1\n\n[[peers]]\nid = \"a\"\n"
	if checked != link+":"+want {
		t.Errorf("check saw %q, want the new contents under the given name", checked)
	}
	got, err := os.ReadFile(target)
	if err != nil || string(got) != want {
		t.Errorf("target holds %q, %v; want %q", got, err, want)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v, %v", st, err)
	}
	if st, err := os.Stat(target); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("target mode %v, %v; want 0640", st.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want the file and the link (no temporary file)", len(entries))
	}
}

func TestAppendConfigRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.toml")
	if err := os.WriteFile(path, []byte("# mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := errors.New("duplicate peer_id: a")
	err := creds.AppendConfig(path, []byte("[[peers]]\nid = \"a\"\n"), func([]byte, string) error { return bad })
	if !errors.Is(err, bad) || !strings.Contains(err.Error(), "not changed") {
		t.Fatalf("AppendConfig = %v, want the check's error", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "# mine\n" {
		t.Errorf("file changed to %q", got)
	}
}

func TestAppendConfigLimits(t *testing.T) {
	dir := t.TempDir()
	if err := creds.AppendConfig(dir, []byte("x = 1\n"), accept); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, make([]byte, 1<<20+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := creds.AppendConfig(big, []byte("x = 1\n"), accept); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("a file over 1 MiB: %v", err)
	}
	// Exactly 1 MiB is read (the check, here, decides).
	edge := filepath.Join(dir, "edge.toml")
	if err := os.WriteFile(edge, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := creds.AppendConfig(edge, []byte("x = 1\n"), accept); err != nil {
		t.Errorf("a file of exactly 1 MiB: %v", err)
	}
}

// AppendConfig appends a block to a config file, creating it with mode 0600, once the
// check (CLI.CheckConfig in a node) accepts the result.
func ExampleAppendConfig() {
	dir, err := os.MkdirTemp("", "creds")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "node.toml")
	for _, id := range []string{"alice", "bob"} {
		block := fmt.Sprintf("[[peers]]\nid = %q\n", id)
		if err := creds.AppendConfig(path, []byte(block), accept); err != nil {
			fmt.Println(err)
			return
		}
	}
	data, _ := os.ReadFile(path)
	st, _ := os.Stat(path)
	fmt.Printf("%s%v\n", data, st.Mode().Perm())
	// Output:
	// [[peers]]
	// id = "alice"
	//
	// [[peers]]
	// id = "bob"
	// -rw-------
}
