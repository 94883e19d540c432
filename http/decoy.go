package http

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrDecoyConfig is wrapped by every error of a decoy constructor whose configuration
// cannot be used: a static-site root that is not an existing directory, a redirect
// target that is not an absolute http(s) URL or absolute path.
var ErrDecoyConfig = errors.New("http: invalid decoy configuration")

// MaxDecoyFileSize is the largest file the static-site decoy serves (16 MiB). Files
// are always streamed from disk, never held in memory; a larger file answers the fake
// 404 page, so that a decoy never becomes a bulk download point.
const MaxDecoyFileSize = 16 << 20

// decoyServer is the Server header of every decoy response: what nginx sends with
// server_tokens off.
const decoyServer = "nginx"

// decoy404Body is the page nginx serves for a missing file, byte for byte.
const decoy404Body = "<html>\r\n" +
	"<head><title>404 Not Found</title></head>\r\n" +
	"<body>\r\n" +
	"<center><h1>404 Not Found</h1></center>\r\n" +
	"<hr><center>nginx</center>\r\n" +
	"</body>\r\n" +
	"</html>\r\n"

// DecoyNotFound returns the default decoy: every request, whatever its method or path,
// gets status 404 with the classic nginx 404 page, Content-Type
// "text/html; charset=utf-8" and Server "nginx". A HEAD request gets the same headers
// (Content-Length included) and no body. Nothing in the response names Go or Alknet.
func DecoyNotFound() http.Handler {
	return http.HandlerFunc(writeDecoy404)
}

// writeDecoy404 writes the fake nginx 404. Headers are set explicitly and the body is
// written directly: http.Error would add X-Content-Type-Options, which nginx does not
// send.
func writeDecoy404(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Server", decoyServer)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(decoy404Body)))
	w.WriteHeader(http.StatusNotFound)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, decoy404Body)
	}
}

// staticDecoy serves the files of a directory; see DecoyStaticSite.
type staticDecoy struct {
	root string
}

// DecoyStaticSite returns a decoy that serves the files under root, a directory that
// must exist when the decoy is built (the error otherwise wraps ErrDecoyConfig); the
// directory is opened again for every request, so it may be replaced while serving.
//
// Only GET and HEAD are served; every other method gets the fake nginx 404 page of
// DecoyNotFound (not a 405, which would tell the resources apart). The request path is
// percent-decoded, with "+" read as a space, and mapped onto root: "/" and any
// directory serve their index.html, and there are never directory listings. The fake
// 404 page answers a missing file, a path with a ".." component, a NUL byte or a
// backslash, a path that is still absolute once the leading slash is removed ("//x"),
// a component starting with "." other than ".well-known" (no .git, .env or
// .htaccess), anything that is not a regular file, a file larger than
// MaxDecoyFileSize, and any path that leads outside root, including through a
// symbolic link (the files are opened with os.Root).
//
// The content type comes from the extension alone (html, css, js, json, png, jpg,
// jpeg, gif, svg, txt, ico, woff, woff2; anything else is application/octet-stream),
// and the Server header is "nginx".
func DecoyStaticSite(root string) (http.Handler, error) {
	if root == "" {
		return nil, fmt.Errorf("%w: static site root is empty", ErrDecoyConfig)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("%w: static site root: %v", ErrDecoyConfig, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: static site root %q is not a directory", ErrDecoyConfig, root)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("%w: static site root: %v", ErrDecoyConfig, err)
	}
	_ = r.Close()
	abs, err := filepath.Abs(root) // immune to later changes of the working directory
	if err != nil {
		return nil, fmt.Errorf("%w: static site root: %v", ErrDecoyConfig, err)
	}
	return &staticDecoy{root: abs}, nil
}

// ServeHTTP implements http.Handler.
func (d *staticDecoy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeDecoy404(w, r)
		return
	}
	name, dirOnly, ok := staticDecoyName(r.URL)
	if !ok {
		writeDecoy404(w, r)
		return
	}
	root, err := os.OpenRoot(d.root)
	if err != nil {
		writeDecoy404(w, r)
		return
	}
	defer root.Close()
	f, fi, name, ok := openDecoyTarget(root, name, dirOnly)
	if !ok {
		writeDecoy404(w, r)
		return
	}
	defer f.Close()
	size := fi.Size()
	h := w.Header()
	h.Set("Server", decoyServer)
	h.Set("Content-Type", decoyContentType(name))
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	// CopyN: a file that grows while being sent must not overrun Content-Length.
	_, _ = io.CopyN(w, f, size)
}

// openDecoyTarget opens the file a request names: name itself when it is a regular
// file (and dirOnly is false: "/index.html/" is not found, as with nginx), its
// index.html when it is a directory. It returns the file, its FileInfo and the name of
// the file actually opened (for the content type), or false.
func openDecoyTarget(root *os.Root, name string, dirOnly bool) (*os.File, fs.FileInfo, string, bool) {
	f, fi, ok := openDecoyFile(root, name)
	if !ok {
		return nil, nil, "", false
	}
	if !fi.IsDir() {
		if dirOnly {
			f.Close()
			return nil, nil, "", false
		}
		return f, fi, name, true
	}
	f.Close()
	name = path.Join(name, "index.html")
	f, fi, ok = openDecoyFile(root, name)
	if !ok {
		return nil, nil, "", false
	}
	if fi.IsDir() {
		f.Close()
		return nil, nil, "", false
	}
	return f, fi, name, true
}

// openDecoyFile opens name inside root and returns it with its FileInfo when it is a
// regular file of at most MaxDecoyFileSize bytes or a directory. The kind is checked
// before opening (a FIFO would block the open) and again on the open file.
func openDecoyFile(root *os.Root, name string) (*os.File, fs.FileInfo, bool) {
	fi, err := root.Stat(name)
	if err != nil || !servableDecoyMode(fi) {
		return nil, nil, false
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, nil, false
	}
	fi, err = f.Stat()
	if err != nil || !servableDecoyMode(fi) {
		f.Close()
		return nil, nil, false
	}
	return f, fi, true
}

// servableDecoyMode reports whether fi is a directory or a regular file within the
// size limit.
func servableDecoyMode(fi fs.FileInfo) bool {
	if fi.IsDir() {
		return true
	}
	return fi.Mode().IsRegular() && fi.Size() <= MaxDecoyFileSize
}

// staticDecoyName maps a request URL onto a slash-separated name relative to the
// static root ("." for the root itself) and whether the path ended with a slash (it
// must then name a directory), or reports false when the path must get the fake 404.
func staticDecoyName(u *url.URL) (name string, dirOnly, ok bool) {
	if u == nil {
		return "", false, false
	}
	// Decode from the escaped form: "%2F" and "%2e%2e" are looked at after decoding,
	// and "+" is a space.
	p, err := url.QueryUnescape(u.EscapedPath())
	if err != nil {
		return "", false, false
	}
	if strings.ContainsAny(p, "\x00\\") {
		return "", false, false
	}
	rel, found := strings.CutPrefix(p, "/")
	if !found && p != "" {
		return "", false, false
	}
	if strings.HasPrefix(rel, "/") {
		return "", false, false // absolute once the leading slash is gone: "//etc/passwd"
	}
	for seg := range strings.SplitSeq(rel, "/") {
		if seg == ".." {
			return "", false, false
		}
		if strings.HasPrefix(seg, ".") && seg != "." && seg != ".well-known" {
			return "", false, false
		}
	}
	name = path.Clean(rel)
	if name == "" || path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
		return "", false, false
	}
	return name, strings.HasSuffix(rel, "/"), true
}

// decoyContentType returns the Content-Type of a served file from its extension.
func decoyContentType(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".html", ".htm":
		return "text/html; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".json":
		return "application/json"
	case ".png":
		return "image/png"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".gif":
		return "image/gif"
	case ".svg":
		return "image/svg+xml"
	case ".txt":
		return "text/plain; charset=utf-8"
	case ".ico":
		return "image/x-icon"
	case ".woff":
		return "font/woff"
	case ".woff2":
		return "font/woff2"
	default:
		return "application/octet-stream"
	}
}

// redirectDecoy answers every request with a 302; see DecoyRedirect.
type redirectDecoy struct {
	to string
}

// DecoyRedirect returns a decoy that answers every request, whatever its method or
// path, with status 302, "Location: to", Server "nginx" and an empty body.
//
// to is checked here, not at request time: it must be an absolute http or https URL
// with a host ("https://example.com/") or an absolute path ("/welcome"; not "//host",
// which is a network-path reference), written as a URI: printable ASCII only, so no
// spaces and no control characters that could split the header. Otherwise the error
// wraps ErrDecoyConfig.
func DecoyRedirect(to string) (http.Handler, error) {
	if to == "" {
		return nil, fmt.Errorf("%w: redirect target is empty", ErrDecoyConfig)
	}
	for i := 0; i < len(to); i++ {
		if c := to[i]; c <= ' ' || c >= 0x7f {
			return nil, fmt.Errorf("%w: redirect target has a byte 0x%02x at offset %d (only printable ASCII)", ErrDecoyConfig, c, i)
		}
	}
	u, err := url.Parse(to)
	if err != nil {
		return nil, fmt.Errorf("%w: redirect target: %v", ErrDecoyConfig, err)
	}
	switch {
	case u.Scheme != "":
		if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
			return nil, fmt.Errorf("%w: redirect target scheme %q is not http or https", ErrDecoyConfig, u.Scheme)
		}
		if u.Host == "" || u.Opaque != "" {
			return nil, fmt.Errorf("%w: redirect target %q has no host", ErrDecoyConfig, to)
		}
	case strings.HasPrefix(to, "/") && !strings.HasPrefix(to, "//"):
		// An absolute path.
	default:
		return nil, fmt.Errorf("%w: redirect target %q is neither an absolute http(s) URL nor an absolute path", ErrDecoyConfig, to)
	}
	return &redirectDecoy{to: to}, nil
}

// ServeHTTP implements http.Handler.
func (d *redirectDecoy) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Server", decoyServer)
	h.Set("Location", d.to)
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusFound)
}
