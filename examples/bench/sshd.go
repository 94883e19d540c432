package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// findSSHD returns the absolute path of the sshd binary: bin where given, else sshd in
// PATH, else /usr/sbin/sshd (often not in a user's PATH). sshd needs an absolute path
// to re-execute itself.
func findSSHD(bin string) (string, error) {
	if bin == "" {
		if p, err := exec.LookPath("sshd"); err == nil {
			bin = p
		} else {
			bin = "/usr/sbin/sshd"
		}
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("sshd not found: %w", err)
	}
	return filepath.Abs(p)
}

// sshdVersion returns the first line sshd -V prints (OpenSSH's version), or "unknown".
func sshdVersion(bin string) string {
	out, _ := exec.Command(bin, "-V").CombinedOutput() // -V exits with status 1
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if !strings.Contains(line, "OpenSSH") {
		return "unknown"
	}
	return line
}

// sshdProcess is an OpenSSH sshd running in the foreground (-D -e) on a loopback port
// with a temporary configuration.
type sshdProcess struct {
	addr string // 127.0.0.1:port
	user string // the user it logs in: the current one
	dir  string // its configuration, keys and pid file
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited
	err  error         // its exit, once done
	log  lockedBuffer  // what it printed
}

// lockedBuffer is a bytes.Buffer written by exec's copying goroutine and read by us.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}

// sshdConfig is what differs between the benchmarks' sshd configurations.
type sshdConfig struct {
	// subsystem is sshd's sftp Subsystem; empty serves no sftp.
	subsystem string
	// forwarding allows direct-tcpip channels (AllowTcpForwarding local).
	forwarding bool
}

// startSSHD starts the sshd binary bin with a configuration in a new temporary
// directory: listening on a free loopback port, host's key as its host key, client's
// as the only authorized key of the current user, sftp and forwarding as c says, no
// PAM, no strict modes. It waits until the port accepts connections.
func startSSHD(ctx context.Context, bin string, c sshdConfig, host, client sshKey) (_ *sshdProcess, err error) {
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "alknet-bench-sshd-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	block, err := gossh.MarshalPrivateKey(host.key, "")
	if err != nil {
		return nil, err
	}
	hostKey, authKeys := filepath.Join(dir, "host_ed25519"), filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(hostKey, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(authKeys, gossh.MarshalAuthorizedKey(client.signer.PublicKey()), 0o600); err != nil {
		return nil, err
	}
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	conf := []string{
		"Port " + strconv.Itoa(port),
		"ListenAddress 127.0.0.1",
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + authKeys,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"UseDNS no",
		"PrintMotd no",
		"X11Forwarding no",
		"LogLevel ERROR",
	}
	if c.subsystem != "" {
		conf = append(conf, "Subsystem sftp "+c.subsystem)
	}
	if c.forwarding {
		conf = append(conf, "AllowTcpForwarding local", "PermitOpen any")
	} else {
		conf = append(conf, "AllowTcpForwarding no")
	}
	if os.Geteuid() == 0 {
		conf = append(conf, "PermitRootLogin yes")
		// As root, sshd wants its privilege separation directory; Debian's service
		// creates it at boot (RuntimeDirectory=sshd).
		if runtime.GOOS == "linux" {
			if _, err := os.Stat("/run/sshd"); errors.Is(err, os.ErrNotExist) {
				_ = os.Mkdir("/run/sshd", 0o755)
			}
		}
	}
	confFile := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(confFile, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}

	p := &sshdProcess{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), user: u.Username, dir: dir, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "-D", "-e", "-f", confFile)
	p.cmd.Stdout, p.cmd.Stderr = &p.log, &p.log
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	if err := p.waitReady(ctx); err != nil {
		_ = p.stop()
		return nil, err
	}
	return p, nil
}

// freeLoopbackPort returns a loopback TCP port that was free a moment ago.
func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return port, ln.Close()
}

// waitReady waits until sshd accepts connections, or fails with what it printed if it
// exits or does not within sftpStartTimeout.
func (p *sshdProcess) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, sftpStartTimeout)
	defer cancel()
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", p.addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-p.done:
			return fmt.Errorf("sshd exited (%v): %s", p.err, p.log.String())
		case <-ctx.Done():
			return fmt.Errorf("sshd not listening on %s after %s: %s", p.addr, sftpStartTimeout, p.log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop terminates sshd, waits for it and removes its directory. Its connections'
// processes end with their connections, which the clients have closed: it waits a
// moment for them first, so that sshd reaps them rather than leaving them to init.
func (p *sshdProcess) stop() error {
	select {
	case <-p.done:
	default:
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
			if _, n := procTree(p.cmd.Process.Pid); n <= 1 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	return os.RemoveAll(p.dir)
}

// cpu returns the CPU time (user + system) that sshd and its descendants have used so
// far, with the children they have waited for; zero where /proc is not readable.
func (p *sshdProcess) cpu() time.Duration {
	cpu, _ := procTree(p.cmd.Process.Pid)
	return cpu
}

// procs returns how many processes sshd and its descendants are (its connections'),
// zero where /proc is not readable.
func (p *sshdProcess) procs() int {
	_, n := procTree(p.cmd.Process.Pid)
	return n
}

// procTree returns the CPU time of the process root and its descendants from
// /proc/<pid>/stat (utime + stime + cutime + cstime, in USER_HZ ticks of 10 ms), and
// how many processes that is; zero where /proc is not readable.
func procTree(root int) (cpu time.Duration, procs int) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0
	}
	parent := make(map[int]int)
	ticks := make(map[int]int64)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// The command name is in parentheses and may hold spaces: the fields after
		// it start with the state (field 3); ppid is field 4, utime to cstime 14 to 17.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		parent[pid] = ppid
		var t int64
		for _, s := range f[11:15] {
			v, _ := strconv.ParseInt(s, 10, 64)
			t += v
		}
		ticks[pid] = t
	}
	var total int64
	for pid, t := range ticks {
		for q, hops := pid, 0; q > 0 && hops < 64; q, hops = parent[q], hops+1 {
			if q == root {
				total += t
				procs++
				break
			}
		}
	}
	return time.Duration(total) * 10 * time.Millisecond, procs
}
