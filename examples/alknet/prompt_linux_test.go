//go:build linux

package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/alknet/alknet/vault"
)

// openPTY opens a pseudo-terminal pair and returns its master side and the path of its
// terminal side, so that the real terminal prompt can be driven without a user.
func openPTY(t *testing.T) (master *os.File, tty string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pseudo-terminal number: %v", err)
	}
	tty = "/dev/pts/" + strconv.Itoa(n)
	// Hold the terminal side open for the whole test: when no process has it open,
	// reads on the master fail with EIO instead of waiting for the next prompt.
	s, err := os.OpenFile(tty, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open %s: %v", tty, err)
	}
	t.Cleanup(func() { s.Close() })
	return m, tty
}

// readUntil reads from r until the output so far contains want, and returns it.
func readUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	var out []byte
	buf := make([]byte, 256)
	for !bytes.Contains(out, []byte(want)) {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			t.Fatalf("reading the terminal: %v (so far %q, want %q)", err, out, want)
		}
	}
	return string(out)
}

// TestTerminalPromptOnPTY runs the real prompt on a pseudo-terminal: the message is
// written to the terminal, the line typed there is the passphrase, and the terminal's
// echo setting is restored afterwards.
func TestTerminalPromptOnPTY(t *testing.T) {
	master, tty := openPTY(t)
	prompt := terminalPrompt(t.Context(), tty)

	type result struct {
		p   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := prompt("Passphrase for test: ")
		done <- result{p, err}
	}()
	readUntil(t, master, "Passphrase for test: ")
	if _, err := master.WriteString("pty secret\n"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("prompt: %v", r.err)
	}
	if string(r.p) != "pty secret" {
		t.Errorf("prompt returned %q, want %q", r.p, "pty secret")
	}

	// ReadPassword turns echo off while it reads and back on when it returns.
	f, err := os.OpenFile(tty, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tios, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tios.Lflag&unix.ECHO == 0 {
		t.Error("echo is still off after the prompt returned")
	}
}

// TestVaultCommandsPromptOnPTY drives init (asked twice) and id (asked once) through the
// real terminal prompt: no --passphrase-file, the passphrase typed on a terminal.
func TestVaultCommandsPromptOnPTY(t *testing.T) {
	master, tty := openPTY(t)
	state := t.TempDir()

	run := func(args []string, answers ...string) (string, error) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		c := &cli{
			stdin:          strings.NewReader(""),
			stdout:         &stdout,
			stderr:         &stderr,
			prompt:         terminalPrompt(t.Context(), tty),
			keystoreParams: vault.MinKeystoreParams(),
		}
		done := make(chan error, 1)
		go func() { done <- c.run(t.Context(), args) }()
		for _, a := range answers {
			readUntil(t, master, "assphrase")
			if _, err := master.WriteString(a + "\n"); err != nil {
				t.Fatal(err)
			}
		}
		err := <-done
		return stdout.String(), err
	}

	phrase, err := run([]string{"vault", "init", "--state", state, "--words", "12"}, "typed passphrase", "typed passphrase")
	if err != nil {
		t.Fatalf("vault init: %v", err)
	}
	m, err := vault.ParseMnemonic([]byte(phrase))
	if err != nil {
		t.Fatalf("init printed %q, not a mnemonic: %v", phrase, err)
	}
	defer m.Destroy()
	if _, err := os.Stat(filepath.Join(state, keystoreFileName)); err != nil {
		t.Fatalf("no keystore after init: %v", err)
	}

	fp, err := run([]string{"id", "--state", state}, "typed passphrase")
	if err != nil {
		t.Fatalf("id: %v", err)
	}
	want, err := mnemonicFingerprint(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(fp) != want {
		t.Errorf("id printed %q, want %q", fp, want)
	}

	_, err = run([]string{"id", "--state", state}, "wrong passphrase")
	if !errors.Is(err, vault.ErrKeystorePassphrase) {
		t.Errorf("id with a wrong typed passphrase: %v, want ErrKeystorePassphrase", err)
	}
}
