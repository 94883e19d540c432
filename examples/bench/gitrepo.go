package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// gitRepoShape is the shape of the repository the git benchmark serves.
type gitRepoShape struct {
	commits    int // in the repository the clients start from
	files      int // files in its tree (the first commit adds them all)
	newCommits int // added on top for the fetch metric
}

// Constants of the generated repository.
const (
	gitRepoSeed      = 16            // the generator's seed: the same shape gives the same repository
	gitFileLines     = 40            // lines of each file in the first commit
	gitChangesPerCom = 3             // files each later commit changes
	gitFilesPerDir   = 50            // files per directory
	gitEpoch         = 1_700_000_000 // the first commit's time (Unix seconds); each next one is a minute later
)

// gitRepoGen writes a deterministic history as a git fast-import stream: the first
// commit adds every file (gitFileLines lines of pseudo-random hex each), every later
// one rewrites a line of gitChangesPerCom files and appends a line to half of them.
type gitRepoGen struct {
	rng   *rand.Rand
	files [][]uint64 // each file's lines, as the numbers they print
	n     int        // commits written so far
}

func newGitRepoGen(files int) *gitRepoGen {
	g := &gitRepoGen{rng: rand.New(rand.NewPCG(gitRepoSeed, uint64(files))), files: make([][]uint64, files)}
	for i := range g.files {
		lines := make([]uint64, gitFileLines)
		for j := range lines {
			lines[j] = g.rng.Uint64()
		}
		g.files[i] = lines
	}
	return g
}

func gitFilePath(i int) string {
	return fmt.Sprintf("src/d%03d/f%05d.txt", i/gitFilesPerDir, i)
}

// write writes the fast-import commands of commits more commits on refs/heads/main,
// continuing its history where the generator has written some already.
func (g *gitRepoGen) write(w *bufio.Writer, commits int) error {
	var blob bytes.Buffer
	for c := range commits {
		changed := make([]int, 0, gitChangesPerCom)
		if g.n == 0 {
			for i := range g.files {
				changed = append(changed, i)
			}
		} else {
			for range gitChangesPerCom {
				i := g.rng.IntN(len(g.files))
				lines := g.files[i]
				lines[g.rng.IntN(len(lines))] = g.rng.Uint64()
				if g.rng.IntN(2) == 0 {
					g.files[i] = append(lines, g.rng.Uint64())
				}
				changed = append(changed, i)
			}
		}
		when := int64(gitEpoch) + int64(g.n)*60
		msg := fmt.Sprintf("commit %d\n", g.n+1)
		fmt.Fprintf(w, "commit refs/heads/main\nauthor Bench <bench@example.com> %d +0000\ncommitter Bench <bench@example.com> %d +0000\ndata %d\n%s",
			when, when, len(msg), msg)
		if c == 0 && g.n > 0 {
			// A new fast-import run on an existing repository needs to be told where
			// the branch starts; later commits continue it.
			fmt.Fprintf(w, "from refs/heads/main^0\n")
		}
		for _, i := range changed {
			blob.Reset()
			for j, v := range g.files[i] {
				fmt.Fprintf(&blob, "line %d: %016x\n", j, v)
			}
			fmt.Fprintf(w, "M 100644 inline %s\ndata %d\n", gitFilePath(i), blob.Len())
			_, _ = w.Write(blob.Bytes())
		}
		_ = w.WriteByte('\n')
		g.n++
	}
	return w.Flush()
}

// fastImport runs git fast-import in the bare repository dir and feeds it commits
// more commits of g.
func (g *gitRepoGen) fastImport(ctx context.Context, env []string, dir string, commits int) error {
	cmd := exec.CommandContext(ctx, "git", "-C", dir, "fast-import", "--quiet", "--done")
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	w := bufio.NewWriterSize(in, 256<<10)
	werr := g.write(w, commits)
	if werr == nil {
		_, werr = io.WriteString(in, "done\n")
	}
	_ = in.Close()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("git fast-import: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return werr
}

// gitOutput runs git with args in env and returns its trimmed standard output.
func gitOutput(ctx context.Context, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// gitEnv returns the environment of every git process the benchmark runs: the
// process's own, with no system or global configuration (HOME set to home) and no
// prompts; of the process's GIT_ variables only GIT_TRACE* (for debugging) pass.
func gitEnv(home string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == "HOME" || strings.HasPrefix(k, "GIT_") && !strings.HasPrefix(k, "GIT_TRACE")
	})
	return append(env, "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
}

// gitVersion returns git --version without its prefix ("2.39.5"), or "unknown".
func gitVersion() string {
	out, err := exec.Command("git", "--version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "git version ")
}
