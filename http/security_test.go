package http_test

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	alkhttp "github.com/alknet/alknet/http"
)

// TestSecurityInternalHiddenEverywhere (http.md §7.3): an Internal operation, even one
// the caller's scopes would pass, answers exactly as an unknown one on every route —
// /call, /schema, /subscribe, /batch items — and is named neither by /search nor by
// /openapi.json.
func TestSecurityInternalHiddenEverywhere(t *testing.T) {
	srv := htServe(t, alkhttp.Config{})
	same := func(route string, internal, unknown htResp, iname, uname string) {
		t.Helper()
		ib := bytes.ReplaceAll(internal.body, []byte(iname), []byte("X"))
		ub := bytes.ReplaceAll(unknown.body, []byte(uname), []byte("X"))
		if internal.status != unknown.status || !bytes.Equal(stripRequestIDs(ib), stripRequestIDs(ub)) {
			t.Errorf("%s: Internal answered %d %s, unknown %d %s", route, internal.status, internal.body, unknown.status, unknown.body)
		}
	}
	for _, tok := range []string{"", htTokUser, htTokAdmin} {
		same("/call", htPost(t, srv, "/call", tok, `{"operation":"demo/secret"}`), htPost(t, srv, "/call", tok, `{"operation":"demo/nosuch"}`), "demo/secret", "demo/nosuch")
		same("/schema", htGet(t, srv, "/schema?name=demo/secret", tok), htGet(t, srv, "/schema?name=demo/nosuch", tok), "demo/secret", "demo/nosuch")
		same("/subscribe", htPost(t, srv, "/subscribe", tok, `{"operation":"demo/hidden"}`), htPost(t, srv, "/subscribe", tok, `{"operation":"demo/nosuch"}`), "demo/hidden", "demo/nosuch")
		same("/batch", htPost(t, srv, "/batch", tok, `[{"operation":"demo/secret"}]`), htPost(t, srv, "/batch", tok, `[{"operation":"demo/nosuch"}]`), "demo/secret", "demo/nosuch")
		for _, path := range []string{"/search", "/openapi.json"} {
			if b := htGet(t, srv, path, tok).body; bytes.Contains(b, []byte("demo/secret")) || bytes.Contains(b, []byte("demo/hidden")) {
				t.Errorf("%s names an Internal operation: %s", path, b)
			}
		}
	}
}

// stripRequestIDs blanks the values of "request_id" keys (fresh per call).
func stripRequestIDs(b []byte) []byte {
	const key = `"request_id":"`
	var out []byte
	for {
		i := bytes.Index(b, []byte(key))
		if i < 0 {
			return append(out, b...)
		}
		out = append(out, b[:i+len(key)]...)
		b = b[i+len(key):]
		if j := bytes.IndexByte(b, '"'); j >= 0 {
			b = b[j:]
		}
	}
}

// TestSecurityNoEnvironmentNoProcesses (http.md §7.3): no file of the module (tests
// aside) reads the environment, takes proxies or the default client from it, or starts
// a process.
func TestSecurityNoEnvironmentNoProcesses(t *testing.T) {
	forbiddenCalls := map[string]bool{
		"os.Getenv": true, "os.LookupEnv": true, "os.Environ": true, "os.ExpandEnv": true,
		"http.ProxyFromEnvironment": true, "http.DefaultTransport": true, "http.DefaultClient": true,
		"http.Get": true, "http.Post": true, "http.Head": true, "http.PostForm": true,
		"os.StartProcess": true, "syscall.Exec": true, "syscall.ForkExec": true,
	}
	forbiddenImports := map[string]bool{"os/exec": true, "plugin": true}
	files := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		files++
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); forbiddenImports[p] {
				t.Errorf("%s imports %s", path, p)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && forbiddenCalls[x.Name+"."+sel.Sel.Name] {
				t.Errorf("%s uses %s.%s", path, x.Name, sel.Sel.Name)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 10 {
		t.Fatalf("checked only %d files: is the walk rooted at the module?", files)
	}
}

// Embedders who do not import package mcp must not link the MCP SDK: the http package
// and its other subpackages do not depend on it.
func TestSecurityMCPSDKOnlyInPackageMCP(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", ".", "./client", "./openapi").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if strings.HasPrefix(line, "github.com/modelcontextprotocol/") {
			t.Errorf("package http links %s", line)
		}
	}
}
