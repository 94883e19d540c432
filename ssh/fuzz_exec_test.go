package ssh_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/alknet/alknet/ssh"
)

var stSplitSeeds = []string{
	"", " ", "echo hello 'big world'", `a "b c" d\ e`, `'`, `"`, `\`, "a\\\nb", `"a\"b"`,
	`'it'\''s'`, "ls; rm -rf /", "echo $(id) `id`", "\t\n", "héllo\x00wörld", "a\rb\vc",
	`"\`, `""''`, `"a\$b\\c\` + "`" + `d"`, strings.Repeat("a ", 100),
}

// FuzzSplitCommand: SplitCommand never panics; words never hold a separator unless
// quoted or escaped; on inputs without quotes or backslashes it splits exactly like
// strings.Fields (for inputs whose only white space is space, tab and newline, the
// blanks a shell splits on); errors wrap ErrCommandSyntax and come without words.
func FuzzSplitCommand(f *testing.F) {
	for _, s := range stSplitSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := ssh.SplitCommand(s)
		if err != nil {
			if !errors.Is(err, ssh.ErrCommandSyntax) {
				t.Fatalf("SplitCommand(%q): error %v does not wrap ErrCommandSyntax", s, err)
			}
			if words != nil {
				t.Fatalf("SplitCommand(%q): words %q with error", s, words)
			}
			if !strings.ContainsAny(s, `'"\`) {
				t.Fatalf("SplitCommand(%q): error %v without quotes or backslashes", s, err)
			}
			return
		}
		if strings.ContainsAny(s, `'"\`) {
			return
		}
		for _, r := range s {
			if unicode.IsSpace(r) && r != ' ' && r != '\t' && r != '\n' {
				return // strings.Fields splits on more than a shell does
			}
		}
		if want := strings.Fields(s); !slices.Equal(words, want) {
			t.Fatalf("SplitCommand(%q) = %q, strings.Fields = %q", s, words, want)
		}
	})
}

// stShellQuote quotes w for a POSIX shell with single quotes.
func stShellQuote(w string) string {
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// FuzzSplitCommandQuoted: any list of words (here: the fuzz input cut at NUL bytes
// and at '|'), each single-quoted and joined with blanks, splits back into exactly
// those words; double-quoting with escapes does too.
func FuzzSplitCommandQuoted(f *testing.F) {
	for _, s := range stSplitSeeds {
		f.Add(s)
	}
	f.Add("a|b c|'|\"|\\|")
	f.Fuzz(func(t *testing.T, s string) {
		words := strings.FieldsFunc(s, func(r rune) bool { return r == 0 || r == '|' })
		if len(words) == 0 {
			return
		}
		var single, double []string
		for _, w := range words {
			single = append(single, stShellQuote(w))
			dq := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`").Replace(w)
			double = append(double, `"`+dq+`"`)
		}
		for _, line := range []string{strings.Join(single, " "), strings.Join(double, "\t"), strings.Join(single, "\n")} {
			got, err := ssh.SplitCommand(line)
			if err != nil || !slices.Equal(got, words) {
				t.Fatalf("SplitCommand(%q) = %q, %v; want %q", line, got, err, words)
			}
		}
	})
}

// FuzzParseCertAuthority: ParseCertAuthority never panics, and what it accepts has a
// key that is not a certificate.
func FuzzParseCertAuthority(f *testing.F) {
	f.Add("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBWHe1/Ir3zqTkhbx1cbd40t0LAw9vAn6P9YZ1LIhDyH ops-ca")
	f.Add("cert-authority,permit-port-forwarding ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBWHe1/Ir3zqTkhbx1cbd40t0LAw9vAn6P9YZ1LIhDyH")
	f.Add("no-pty ssh-ed25519 AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, line string) {
		ca, err := ssh.ParseCertAuthority(line)
		if err != nil {
			if !errors.Is(err, ssh.ErrInvalidKey) {
				t.Fatalf("error %v does not wrap ErrInvalidKey", err)
			}
			return
		}
		if ca.Key == nil {
			t.Fatal("accepted without a key")
		}
		if len(line) > ssh.MaxAuthorizedKeyLine {
			t.Fatalf("accepted a line of %d bytes", len(line))
		}
	})
}

// FuzzParsePrivateKey: ParsePrivateKey never panics; PEM armour is always ErrPEMKey.
func FuzzParsePrivateKey(f *testing.F) {
	f.Add([]byte("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ssh.ParsePrivateKey(data)
		if err == nil {
			if s == nil {
				t.Fatal("nil signer without error")
			}
			return
		}
		if s != nil {
			t.Fatal("signer with error")
		}
		if !errors.Is(err, ssh.ErrPEMKey) && !errors.Is(err, ssh.ErrInvalidKey) {
			t.Fatalf("error %v is neither ErrPEMKey nor ErrInvalidKey", err)
		}
	})
}
