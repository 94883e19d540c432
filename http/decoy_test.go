package http

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// decoyGolden404 reads the golden nginx 404 page.
func decoyGolden404(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "decoy_404.html"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decoyRequest builds a request for target without any cleaning of the path: target
// is parsed as a request URI when it can be, and used verbatim as the decoded path
// otherwise (for a raw backslash or NUL).
func decoyRequest(method, target string) *http.Request {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		u = &url.URL{Path: target}
	}
	return &http.Request{
		Method:     method,
		URL:        u,
		RequestURI: target,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{},
		Host:       "example.com",
	}
}

// serveDecoy runs h on a recorder.
func serveDecoy(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, decoyRequest(method, target))
	return rec
}

// assertDecoyNoLeak fails when a header name, a header value or the body mentions
// Alknet or Go (case-insensitively: "alknet", "go", hence "Go-http" too), or when a
// header nginx would not send for these responses appears.
func assertDecoyNoLeak(t *testing.T, h http.Header, body []byte) {
	t.Helper()
	for name, values := range h {
		for _, s := range append([]string{name}, values...) {
			ls := strings.ToLower(s)
			if strings.Contains(ls, "alknet") || strings.Contains(ls, "go") {
				t.Errorf("header %s: %q reveals the implementation", name, s)
			}
		}
		if strings.EqualFold(name, "X-Content-Type-Options") {
			t.Errorf("unexpected header %s: %q", name, values)
		}
	}
	lb := bytes.ToLower(body)
	if bytes.Contains(lb, []byte("alknet")) || bytes.Contains(lb, []byte("go")) {
		t.Errorf("body reveals the implementation: %q", body)
	}
}

// assertDecoy404 checks the fake nginx 404 response, with or without its body.
func assertDecoy404(t *testing.T, rec *httptest.ResponseRecorder, golden []byte, withBody bool) {
	t.Helper()
	if rec.Code != http.StatusNotFound {
		t.Fatalf("status %d, want 404", rec.Code)
	}
	h := rec.Header()
	if got := h.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", got)
	}
	if got := h.Get("Server"); got != "nginx" {
		t.Errorf("Server %q", got)
	}
	if got := h.Get("Content-Length"); got != strconv.Itoa(len(golden)) {
		t.Errorf("Content-Length %q, want %d", got, len(golden))
	}
	if withBody {
		if !bytes.Equal(rec.Body.Bytes(), golden) {
			t.Errorf("body %q\nwant %q", rec.Body.Bytes(), golden)
		}
	} else if rec.Body.Len() != 0 {
		t.Errorf("HEAD got a body: %q", rec.Body.Bytes())
	}
	assertDecoyNoLeak(t, h, rec.Body.Bytes())
}

func TestDecoyNotFoundGolden(t *testing.T) {
	golden := decoyGolden404(t)
	if decoy404Body != string(golden) {
		t.Fatalf("decoy404Body differs from testdata/decoy_404.html:\n%q\n%q", decoy404Body, golden)
	}
	h := DecoyNotFound()
	for _, method := range []string{"GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"} {
		for _, target := range []string{"/", "/wp-login.php", "/.env", "/admin/config?x=1", "/../../etc/passwd"} {
			t.Run(method+" "+target, func(t *testing.T) {
				assertDecoy404(t, serveDecoy(h, method, target), golden, true)
			})
		}
	}
	t.Run("HEAD", func(t *testing.T) {
		assertDecoy404(t, serveDecoy(h, "HEAD", "/anything"), golden, false)
	})
}

// TestDecoyRealServerHeaders runs each decoy behind a real net/http server and checks
// the complete header set: only what nginx would send (Date is added by the server).
func TestDecoyRealServerHeaders(t *testing.T) {
	golden := decoyGolden404(t)
	root := t.TempDir()
	writeDecoyFile(t, root, "index.html", "<p>welcome</p>")
	static, err := DecoyStaticSite(root)
	if err != nil {
		t.Fatal(err)
	}
	redirect, err := DecoyRedirect("https://example.com/")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		h          http.Handler
		method     string
		path       string
		status     int
		headers    []string
		body       string
		headerWant map[string]string
	}{
		{"notfound", DecoyNotFound(), "GET", "/x", 404,
			[]string{"Content-Length", "Content-Type", "Date", "Server"}, string(golden),
			map[string]string{"Content-Type": "text/html; charset=utf-8", "Server": "nginx"}},
		{"notfound HEAD", DecoyNotFound(), "HEAD", "/x", 404,
			[]string{"Content-Length", "Content-Type", "Date", "Server"}, "",
			map[string]string{"Content-Length": strconv.Itoa(len(golden))}},
		{"static", static, "GET", "/", 200,
			[]string{"Content-Length", "Content-Type", "Date", "Server"}, "<p>welcome</p>",
			map[string]string{"Content-Type": "text/html; charset=utf-8", "Server": "nginx"}},
		{"static missing", static, "GET", "/nope", 404,
			[]string{"Content-Length", "Content-Type", "Date", "Server"}, string(golden), nil},
		{"static POST", static, "POST", "/", 404,
			[]string{"Content-Length", "Content-Type", "Date", "Server"}, string(golden), nil},
		{"redirect", redirect, "GET", "/y", 302,
			[]string{"Content-Length", "Date", "Location", "Server"}, "",
			map[string]string{"Location": "https://example.com/", "Content-Length": "0", "Server": "nginx"}},
	}
	client := &http.Client{
		Transport:     &http.Transport{Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(c.h)
			defer srv.Close()
			req, err := http.NewRequest(c.method, srv.URL+c.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d", resp.StatusCode, c.status)
			}
			var names []string
			for k := range resp.Header {
				names = append(names, k)
			}
			slices.Sort(names)
			if !slices.Equal(names, c.headers) {
				t.Errorf("headers %v, want %v", names, c.headers)
			}
			for k, v := range c.headerWant {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if string(body) != c.body {
				t.Errorf("body %q, want %q", body, c.body)
			}
			// Date is the server's; it cannot reveal anything, but check it anyway.
			assertDecoyNoLeak(t, resp.Header, body)
		})
	}
}

// writeDecoyFile writes content to root/name, creating parent directories.
func writeDecoyFile(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newDecoySite builds a site root (and a sibling directory "outside" it holding a
// secret) and returns the handler with both paths.
func newDecoySite(t *testing.T) (h http.Handler, root, outside string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "site")
	outside = filepath.Join(base, "outside")
	writeDecoyFile(t, root, "index.html", "<h1>home</h1>")
	writeDecoyFile(t, root, "sub/index.html", "<h1>sub</h1>")
	writeDecoyFile(t, root, "sub/deeper/index.html", "<h1>deeper</h1>")
	writeDecoyFile(t, root, "sub/page.html", "<h1>page</h1>")
	writeDecoyFile(t, root, "my file.txt", "spaced")
	writeDecoyFile(t, root, "a+b.txt", "plus")
	writeDecoyFile(t, root, ".env", "SECRET=1")
	writeDecoyFile(t, root, ".git/config", "[core]")
	writeDecoyFile(t, root, ".well-known/security.txt", "Contact: mailto:x@example.com")
	writeDecoyFile(t, root, "noindex/file.txt", "file")
	if err := os.MkdirAll(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeDecoyFile(t, root, "dirindex/index.html/placeholder.txt", "x")
	writeDecoyFile(t, outside, "secret.txt", "top secret")
	writeDecoyFile(t, outside, "index.html", "outside index")
	h, err := DecoyStaticSite(root)
	if err != nil {
		t.Fatal(err)
	}
	return h, root, outside
}

// assertDecoyFile checks a 200 response serving content with the given type.
func assertDecoyFile(t *testing.T, rec *httptest.ResponseRecorder, contentType, content string) {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200 (body %q)", rec.Code, rec.Body.Bytes())
	}
	h := rec.Header()
	if got := h.Get("Content-Type"); got != contentType {
		t.Errorf("Content-Type %q, want %q", got, contentType)
	}
	if got := h.Get("Server"); got != "nginx" {
		t.Errorf("Server %q", got)
	}
	if got := h.Get("Content-Length"); got != strconv.Itoa(len(content)) {
		t.Errorf("Content-Length %q, want %d", got, len(content))
	}
	if got := rec.Body.String(); got != content {
		t.Errorf("body %q, want %q", got, content)
	}
	assertDecoyNoLeak(t, h, rec.Body.Bytes())
}

func TestDecoyStaticSiteServes(t *testing.T) {
	h, _, _ := newDecoySite(t)
	const html = "text/html; charset=utf-8"
	cases := []struct {
		target, contentType, content string
	}{
		{"/", html, "<h1>home</h1>"},
		{"", html, "<h1>home</h1>"},
		{"/?q=1", html, "<h1>home</h1>"},
		{"/index.html", html, "<h1>home</h1>"},
		{"/./index.html", html, "<h1>home</h1>"},
		{"/sub/", html, "<h1>sub</h1>"},
		{"/sub", html, "<h1>sub</h1>"},
		{"/sub/deeper/", html, "<h1>deeper</h1>"},
		{"/sub//page.html", html, "<h1>page</h1>"},
		{"/sub/page.html", html, "<h1>page</h1>"},
		{"/%73ub/page.html", html, "<h1>page</h1>"},
		{"/sub%2Fpage.html", html, "<h1>page</h1>"},
		{"/my+file.txt", "text/plain; charset=utf-8", "spaced"},
		{"/my%20file.txt", "text/plain; charset=utf-8", "spaced"},
		{"/a%2Bb.txt", "text/plain; charset=utf-8", "plus"},
		{"/.well-known/security.txt", "text/plain; charset=utf-8", "Contact: mailto:x@example.com"},
		{"/noindex/file.txt", "text/plain; charset=utf-8", "file"},
	}
	for _, c := range cases {
		t.Run(c.target, func(t *testing.T) {
			assertDecoyFile(t, serveDecoy(h, "GET", c.target), c.contentType, c.content)
		})
	}
}

func TestDecoyStaticSiteContentTypes(t *testing.T) {
	root := t.TempDir()
	table := map[string]string{
		"a.html":  "text/html; charset=utf-8",
		"a.css":   "text/css; charset=utf-8",
		"a.js":    "text/javascript; charset=utf-8",
		"a.json":  "application/json",
		"a.png":   "image/png",
		"a.jpg":   "image/jpeg",
		"a.jpeg":  "image/jpeg",
		"a.gif":   "image/gif",
		"a.svg":   "image/svg+xml",
		"a.txt":   "text/plain; charset=utf-8",
		"a.ico":   "image/x-icon",
		"a.woff":  "font/woff",
		"a.woff2": "font/woff2",
		"A.PNG":   "image/png",
		"a.bin":   "application/octet-stream",
		"a.php":   "application/octet-stream",
		"noext":   "application/octet-stream",
	}
	for name := range table {
		// Content that sniffing would classify differently: the type must come from
		// the extension alone.
		writeDecoyFile(t, root, name, "<html>"+name)
	}
	h, err := DecoyStaticSite(root)
	if err != nil {
		t.Fatal(err)
	}
	for name, ct := range table {
		t.Run(name, func(t *testing.T) {
			assertDecoyFile(t, serveDecoy(h, "GET", "/"+name), ct, "<html>"+name)
		})
	}
}

func TestDecoyStaticSiteRefuses(t *testing.T) {
	golden := decoyGolden404(t)
	h, _, _ := newDecoySite(t)
	targets := []string{
		// Traversal, raw and encoded.
		"/../outside/secret.txt",
		"/sub/../../outside/secret.txt",
		"/%2e%2e/outside/secret.txt",
		"/%2E%2E/outside/secret.txt",
		"/sub/%2e%2e/%2e%2e/outside/secret.txt",
		"/..%2Foutside%2Fsecret.txt",
		"/sub%2F..%2F..%2Foutside%2Fsecret.txt",
		"/sub/../index.html", // ".." is refused even when it stays inside
		"/..",
		"/%2e%2e",
		// Absolute once the leading slash is gone.
		"//etc/passwd",
		"/%2Fetc%2Fpasswd",
		"/%2F",
		// NUL and backslash.
		"/index.html%00",
		"/index.html%00.txt",
		"/%00",
		"/sub%5Cpage.html",
		"/sub%5C..%5C..%5Coutside%5Csecret.txt",
		"/..%5Coutside%5Csecret.txt",
		// Hidden files.
		"/.env",
		"/.git/config",
		"/.git/",
		"/sub/.hidden",
		// Missing files and directories without an index.
		"/missing.html",
		"/sub/missing.html",
		"/empty/",
		"/empty",
		"/noindex/",
		"/dirindex/", // its index.html is a directory
		"/index.html/",
		"/index.html/x",
		// Undecodable.
		"/%zz",
	}
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			assertDecoy404(t, serveDecoy(h, "GET", target), golden, true)
		})
	}
	// Paths that cannot be written as a request URI, given decoded.
	for _, raw := range []string{"/sub\\page.html", "/index.html\x00", "\\index.html", "sub/page.html", "/a/../index.html"} {
		t.Run("decoded "+strconv.Quote(raw), func(t *testing.T) {
			rec := httptest.NewRecorder()
			r := decoyRequest("GET", "/")
			r.URL = &url.URL{Path: raw}
			h.ServeHTTP(rec, r)
			assertDecoy404(t, rec, golden, true)
		})
	}
	// The same traversals as a RawPath that differs from Path.
	t.Run("RawPath", func(t *testing.T) {
		rec := httptest.NewRecorder()
		r := decoyRequest("GET", "/")
		r.URL = &url.URL{Path: "/../outside/secret.txt", RawPath: "/%2e%2e%2Foutside/secret.txt"}
		h.ServeHTTP(rec, r)
		assertDecoy404(t, rec, golden, true)
	})
	t.Run("nil URL", func(t *testing.T) {
		rec := httptest.NewRecorder()
		r := decoyRequest("GET", "/")
		r.URL = nil
		h.ServeHTTP(rec, r)
		assertDecoy404(t, rec, golden, true)
	})
}

func TestDecoyStaticSiteMethods(t *testing.T) {
	golden := decoyGolden404(t)
	h, _, _ := newDecoySite(t)
	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND"} {
		t.Run(method, func(t *testing.T) {
			assertDecoy404(t, serveDecoy(h, method, "/index.html"), golden, true)
		})
	}
	t.Run("HEAD", func(t *testing.T) {
		rec := serveDecoy(h, "HEAD", "/")
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d", rec.Code)
		}
		if got := rec.Header().Get("Content-Length"); got != strconv.Itoa(len("<h1>home</h1>")) {
			t.Errorf("Content-Length %q", got)
		}
		if got := rec.Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
			t.Errorf("Content-Type %q", got)
		}
		if rec.Body.Len() != 0 {
			t.Errorf("HEAD body %q", rec.Body.Bytes())
		}
		assertDecoyNoLeak(t, rec.Header(), nil)
	})
	t.Run("HEAD missing", func(t *testing.T) {
		assertDecoy404(t, serveDecoy(h, "HEAD", "/missing"), golden, false)
	})
}

func TestDecoyStaticSiteSymlinks(t *testing.T) {
	golden := decoyGolden404(t)
	h, root, outside := newDecoySite(t)
	link := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Skipf("symlinks unavailable: %v", err)
		}
	}
	link(filepath.Join(outside, "secret.txt"), "abs-file.txt")
	link(filepath.Join("..", "outside", "secret.txt"), "rel-file.txt")
	link(outside, "abs-dir")
	link(filepath.Join("..", "outside"), "rel-dir")
	link("index.html", "inside.html")
	link("sub", "inside-dir")
	for _, target := range []string{
		"/abs-file.txt", "/rel-file.txt",
		"/abs-dir/secret.txt", "/rel-dir/secret.txt",
		"/abs-dir/", "/rel-dir/", "/abs-dir", "/rel-dir",
	} {
		t.Run(target, func(t *testing.T) {
			rec := serveDecoy(h, "GET", target)
			assertDecoy404(t, rec, golden, true)
			if strings.Contains(rec.Body.String(), "secret") || strings.Contains(rec.Body.String(), "outside") {
				t.Fatalf("leaked a file outside the root: %q", rec.Body.String())
			}
		})
	}
	// A relative link that stays inside the root is followed.
	t.Run("inside", func(t *testing.T) {
		assertDecoyFile(t, serveDecoy(h, "GET", "/inside.html"), "text/html; charset=utf-8", "<h1>home</h1>")
		assertDecoyFile(t, serveDecoy(h, "GET", "/inside-dir/page.html"), "text/html; charset=utf-8", "<h1>page</h1>")
	})
}

func TestDecoyStaticSiteSizeLimit(t *testing.T) {
	golden := decoyGolden404(t)
	root := t.TempDir()
	for name, size := range map[string]int64{"limit.bin": MaxDecoyFileSize, "over.bin": MaxDecoyFileSize + 1} {
		f, err := os.Create(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	h, err := DecoyStaticSite(root)
	if err != nil {
		t.Fatal(err)
	}
	rec := serveDecoy(h, "HEAD", "/limit.bin")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Length") != strconv.Itoa(MaxDecoyFileSize) {
		t.Errorf("file at the limit: status %d, Content-Length %q", rec.Code, rec.Header().Get("Content-Length"))
	}
	rec = serveDecoy(h, "GET", "/limit.bin")
	if rec.Code != http.StatusOK || rec.Body.Len() != MaxDecoyFileSize {
		t.Errorf("file at the limit: status %d, %d bytes", rec.Code, rec.Body.Len())
	}
	assertDecoy404(t, serveDecoy(h, "GET", "/over.bin"), golden, true)
}

func TestDecoyStaticSiteConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.txt")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{"", filepath.Join(dir, "missing"), file} {
		h, err := DecoyStaticSite(root)
		if !errors.Is(err, ErrDecoyConfig) || h != nil {
			t.Errorf("DecoyStaticSite(%q) = %v, %v; want ErrDecoyConfig", root, h, err)
		}
	}
	// The root may disappear after construction: every request then gets the fake 404.
	gone := filepath.Join(dir, "gone")
	writeDecoyFile(t, gone, "index.html", "here")
	h, err := DecoyStaticSite(gone)
	if err != nil {
		t.Fatal(err)
	}
	assertDecoyFile(t, serveDecoy(h, "GET", "/"), "text/html; charset=utf-8", "here")
	if err := os.RemoveAll(gone); err != nil {
		t.Fatal(err)
	}
	assertDecoy404(t, serveDecoy(h, "GET", "/"), decoyGolden404(t), true)
}

func TestDecoyRedirect(t *testing.T) {
	for _, to := range []string{
		"https://example.com/",
		"http://example.com",
		"HTTPS://Example.com/landing?utm=1#top",
		"http://user@example.com:8080/x%20y",
		"/",
		"/welcome?from=decoy",
	} {
		h, err := DecoyRedirect(to)
		if err != nil {
			t.Fatalf("DecoyRedirect(%q): %v", to, err)
		}
		for _, method := range []string{"GET", "HEAD", "POST", "DELETE"} {
			for _, target := range []string{"/", "/admin", "/../etc/passwd"} {
				rec := serveDecoy(h, method, target)
				if rec.Code != http.StatusFound {
					t.Errorf("%s %s → %q: status %d", method, target, to, rec.Code)
				}
				if got := rec.Header().Get("Location"); got != to {
					t.Errorf("Location %q, want %q", got, to)
				}
				if got := rec.Header().Get("Server"); got != "nginx" {
					t.Errorf("Server %q", got)
				}
				if got := rec.Header().Get("Content-Length"); got != "0" {
					t.Errorf("Content-Length %q", got)
				}
				if rec.Body.Len() != 0 {
					t.Errorf("body %q", rec.Body.Bytes())
				}
				assertDecoyNoLeak(t, rec.Header(), rec.Body.Bytes())
			}
		}
	}
}

func TestDecoyRedirectConfig(t *testing.T) {
	for _, to := range []string{
		"http://x\r\nSet-Cookie: a",
		"http://x\nSet-Cookie: a",
		"/x\r\nSet-Cookie: a",
		"/x\x00",
		"/x\x7f",
		"/a b",
		"/a\tb",
		"http://exämple.com/",
		"foo",
		"foo/bar",
		"",
		"//evil.example/",
		"ftp://example.com/",
		"javascript:alert(1)",
		"mailto:a@example.com",
		"http://",
		"http:/path",
		"http:opaque",
		"https:///path",
		"?q=1",
		"#frag",
		"http://[::1", // unparseable
	} {
		h, err := DecoyRedirect(to)
		if !errors.Is(err, ErrDecoyConfig) || h != nil {
			t.Errorf("DecoyRedirect(%q) = %v, %v; want ErrDecoyConfig", to, h, err)
		}
	}
}
