package vault

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The import boundary of ADR-018 / vault.md §2 and §10.14: only the examples module (the
// assembly layer, standing in for cmd/alknet) imports the vault, and the vault imports
// nothing else from alknet. Checked from the source tree, without the go tool or network.

// vaultModulePath returns the vault's module path, read from its go.mod, and the
// prefix every alknet module path shares (the module path without "vault").
func vaultModulePath(t *testing.T) (module, alknetPrefix string) {
	t.Helper()
	data, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			module = strings.TrimSpace(rest)
			break
		}
	}
	prefix, ok := strings.CutSuffix(module, "/vault")
	if !ok {
		t.Fatalf("vault/go.mod declares module %q; want a path ending in /vault", module)
	}
	return module, prefix + "/"
}

// repoRoot returns the repository root: the parent of the vault directory, which holds
// go.work.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("no go.work in %s (the parent of the vault directory): %v", root, err)
	}
	if _, err := os.Stat(filepath.Join(root, "vault", "go.mod")); err != nil {
		t.Fatalf("no vault/go.mod in %s: %v", root, err)
	}
	return root
}

// walkRepo calls fn for every regular file under root, skipping dot-directories and
// testdata directories. rel is slash-separated and relative to root.
func walkRepo(t *testing.T, root string, fn func(rel, path string)) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		fn(filepath.ToSlash(rel), path)
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
}

// topDir returns the first element of a slash-separated relative path.
func topDir(rel string) string {
	top, _, _ := strings.Cut(rel, "/")
	return top
}

// isVaultImport reports whether path is the vault module or a package under it.
func isVaultImport(vaultModule, path string) bool {
	return path == vaultModule || strings.HasPrefix(path, vaultModule+"/")
}

func TestBoundaryGoModFiles(t *testing.T) {
	t.Parallel()
	vaultModule, alknetPrefix := vaultModulePath(t)
	root := repoRoot(t)
	var mods []string
	walkRepo(t, root, func(rel, path string) {
		if filepath.Base(rel) != "go.mod" {
			return
		}
		mods = append(mods, rel)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		switch {
		case rel == "vault/go.mod":
			// Every mention of an alknet module other than the vault's own declaration.
			for i, line := range strings.Split(text, "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "module ") {
					continue
				}
				if strings.Contains(line, alknetPrefix) {
					t.Errorf("vault/go.mod:%d mentions another alknet module: %s", i+1, strings.TrimSpace(line))
				}
			}
		case topDir(rel) == "examples":
			// The assembly layer (examples/go.mod, and the modules under examples/ such
			// as the bench) may require the vault.
		default:
			if strings.Contains(text, vaultModule) {
				t.Errorf("%s mentions %s; only the go.mod files under examples/ may depend on the vault", rel, vaultModule)
			}
		}
	})
	if len(mods) < 2 {
		t.Errorf("found only %v; the walk did not see the repository", mods)
	}
}

func TestBoundaryGoImports(t *testing.T) {
	t.Parallel()
	vaultModule, alknetPrefix := vaultModulePath(t)
	root := repoRoot(t)
	fset := token.NewFileSet()
	var vaultFiles, otherFiles int
	walkRepo(t, root, func(rel, path string) {
		if !strings.HasSuffix(rel, ".go") {
			return
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			// A file whose imports do not parse could hide an import. The assembly
			// layer (examples/) may import the vault anyway, so its files are exempt.
			if topDir(rel) != "examples" {
				t.Errorf("parsing the imports of %s: %v", rel, err)
			}
			if f == nil {
				return
			}
		}
		for _, imp := range f.Imports {
			ip, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Errorf("%s: bad import %s", rel, imp.Path.Value)
				continue
			}
			switch topDir(rel) {
			case "vault":
				if strings.HasPrefix(ip, alknetPrefix) && !isVaultImport(vaultModule, ip) {
					t.Errorf("%s imports %s: the vault must import no other alknet module", rel, ip)
				}
			case "examples":
				// The assembly layer: allowed.
			default:
				if isVaultImport(vaultModule, ip) {
					t.Errorf("%s imports %s: only examples/ may import the vault", rel, ip)
				}
			}
		}
		if topDir(rel) == "vault" {
			vaultFiles++
		} else {
			otherFiles++
		}
	})
	if vaultFiles == 0 || otherFiles == 0 {
		t.Errorf("parsed %d vault and %d other .go files; the walk did not see the repository", vaultFiles, otherFiles)
	}
}

// TestNoSecretsFromEnvironment: no non-test file of the vault reads the environment
// (secrets never come from environment variables; vault.md §6).
func TestNoSecretsFromEnvironment(t *testing.T) {
	t.Parallel()
	forbidden := map[string]bool{"Getenv": true, "LookupEnv": true, "Environ": true, "ExpandEnv": true}
	matches, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range matches {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Errorf("parsing %s: %v", name, err)
			continue
		}
		checked++
		// The local names under which package os is imported.
		osNames := map[string]bool{}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "os" || p == "syscall" {
				switch {
				case imp.Name == nil:
					osNames[filepath.Base(p)] = true
				case imp.Name.Name == "." || imp.Name.Name == "_":
					if imp.Name.Name == "." {
						t.Errorf("%s dot-imports %s", name, p)
					}
				default:
					osNames[imp.Name.Name] = true
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && osNames[id.Name] && forbidden[sel.Sel.Name] {
				t.Errorf("%s: %s.%s reads the environment", fset.Position(sel.Pos()), id.Name, sel.Sel.Name)
			}
			return true
		})
	}
	if checked == 0 {
		t.Errorf("no non-test .go files checked")
	}
}
