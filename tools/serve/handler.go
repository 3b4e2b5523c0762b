package main

import (
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// contentTypes fixes the types that matter here instead of trusting the
// platform's MIME database (which may lack .wasm or call .js text/plain).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".json": "application/json",
	".wasm": "application/wasm",
	".bin":  "application/octet-stream",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".jpg":  "image/jpeg",
	".jpeg": "image/jpeg",
	".ico":  "image/x-icon",
	".txt":  "text/plain; charset=utf-8",
	".md":   "text/markdown; charset=utf-8",
}

// handler serves files from fsys.
type handler struct {
	fsys fs.FS
}

func newHandler(fsys fs.FS) http.Handler { return &handler{fsys: fsys} }

// withLog writes one line per request to w: method, path as requested,
// status, body bytes, content encoding and duration. A nil w logs nothing.
func withLog(h http.Handler, w io.Writer) http.Handler {
	if w == nil {
		return h
	}
	var mu sync.Mutex // one line at a time
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: rw}
		start := time.Now()
		path := r.URL.Path // before any prefix is stripped
		h.ServeHTTP(sw, r)
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s %s %d %d %s %s\n", r.Method, path, sw.status, sw.n,
			orDash(rw.Header().Get("Content-Encoding")), time.Since(start).Round(time.Microsecond))
	})
}

// statusWriter records the status and body size for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" {
		name = "."
	}
	st, err := fs.Stat(h.fsys, name)
	if err == nil && st.IsDir() {
		if !strings.HasSuffix(r.URL.Path, "/") {
			// Relative URLs in index.html need the trailing slash.
			http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
			return
		}
		name = path.Join(name, "index.html")
		st, err = fs.Stat(h.fsys, name)
	}
	if err != nil || st.IsDir() {
		http.Error(w, "404 not found: "+r.URL.Path, http.StatusNotFound)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", contentType(name))
	hdr.Set("Cache-Control", "no-cache") // always revalidate: a rebuilt site shows at once
	hdr.Set("X-Content-Type-Options", "nosniff")

	served, servedStat := name, st
	if gz, err := fs.Stat(h.fsys, name+".gz"); err == nil && !gz.IsDir() {
		hdr.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			served, servedStat = name+".gz", gz
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	f, err := h.fsys.Open(served)
	if err != nil {
		http.Error(w, "cannot open "+r.URL.Path, http.StatusInternalServerError)
		return
	}
	defer f.Close()
	rs, ok := f.(io.ReadSeeker)
	if !ok {
		http.Error(w, "cannot seek "+r.URL.Path, http.StatusInternalServerError)
		return
	}
	// ServeContent handles Range, If-Modified-Since and HEAD. (With gzip,
	// ranges apply to the compressed bytes, as for any precompressing server.)
	http.ServeContent(w, r, path.Base(name), servedStat.ModTime(), rs)
}

func contentType(name string) string {
	if t, ok := contentTypes[strings.ToLower(path.Ext(name))]; ok {
		return t
	}
	return "application/octet-stream"
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip
// (present and not refused with q=0).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.TrimSpace(coding) != "*" {
			continue
		}
		q := strings.ReplaceAll(params, " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// withPrefix serves h under the URL path prefix (ending in "/"); the bare
// prefix without its slash redirects, anything outside it is 404.
func withPrefix(prefix string, h http.Handler) http.Handler {
	if prefix == "/" {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle(prefix, http.StripPrefix(strings.TrimSuffix(prefix, "/"), h))
	return mux
}
