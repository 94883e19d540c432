package mcp

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSecurityNoEnvironmentNoProcesses (http.md §7.3): no source of the package (tests
// aside) reads the environment, takes a proxy or the default client from it, starts a
// process, or names one of the SDK's process or stdio transports.
func TestSecurityNoEnvironmentNoProcesses(t *testing.T) {
	forbiddenSelectors := map[string]bool{
		"os.Getenv": true, "os.LookupEnv": true, "os.Environ": true, "os.ExpandEnv": true,
		"os.Stdin": true, "os.Stdout": true, "os.StartProcess": true,
		"http.ProxyFromEnvironment": true, "http.DefaultTransport": true, "http.DefaultClient": true,
		"http.Get": true, "http.Post": true, "http.Head": true, "http.PostForm": true,
		"syscall.Exec": true, "syscall.ForkExec": true,
	}
	forbiddenSDK := []string{"CommandTransport", "StdioTransport", "IOTransport", "InMemoryTransport", "NewInMemoryTransports"}
	forbiddenImports := map[string]bool{"os/exec": true, "plugin": true, "syscall": true, "os": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		checked++
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); forbiddenImports[p] {
				t.Errorf("%s imports %s", path, p)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && forbiddenSelectors[x.Name+"."+n.Sel.Name] {
					t.Errorf("%s uses %s.%s", path, x.Name, n.Sel.Name)
				}
			case *ast.Ident:
				for _, name := range forbiddenSDK {
					if n.Name == name {
						t.Errorf("%s names %s", path, name)
					}
				}
			}
			return true
		})
	}
	if checked < 5 {
		t.Fatalf("checked only %d files: is the test running in the package directory?", checked)
	}
}

// TestSDKProcessTransportsNotLinked (http.md §4.4): a program using NewHandler,
// Mount and NewImporter (testdata/linkcheck) links the SDK's streamable-HTTP
// transports and neither its command nor its stdio transports nor os/exec: the
// linker drops them because nothing here refers to them.
func TestSDKProcessTransportsNotLinked(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	bin := filepath.Join(t.TempDir(), "linkcheck")
	build := exec.CommandContext(t.Context(), goTool, "build", "-o", bin, "./testdata/linkcheck")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(t.Context(), goTool, "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	if !bytes.Contains(out, []byte("modelcontextprotocol/go-sdk/mcp.(*StreamableClientTransport)")) ||
		!bytes.Contains(out, []byte("modelcontextprotocol/go-sdk/mcp.(*StreamableHTTPHandler)")) {
		t.Fatal("the binary does not link the SDK's streamable transports: the check proves nothing")
	}
	for _, forbidden := range []string{"CommandTransport", "StdioTransport", "IOTransport", "os/exec."} {
		for line := range strings.SplitSeq(string(out), "\n") {
			if strings.Contains(line, forbidden) {
				t.Errorf("linked: %s", strings.TrimSpace(line))
				break
			}
		}
	}
}
