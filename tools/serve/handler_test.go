package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func gzipped(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.Bytes()
}

func TestHandler(t *testing.T) {
	fsys := fstest.MapFS{
		"index.html":               {Data: []byte("<!doctype html>home")},
		"js/app.js":                {Data: []byte("export {}")},
		"residual-simd.wasm":       {Data: []byte("\x00asm-simd")},
		"residual-simd.wasm.gz":    {Data: gzipped("\x00asm-simd")},
		"models/index.json":        {Data: []byte(`{"models":[]}`)},
		"models/r50/shard-000.bin": {Data: []byte("0123456789")},
		"models/r50/manifest.json": {Data: []byte(`{}`)},
		"sub/index.html":           {Data: []byte("sub home")},
		"strange.xyz":              {Data: []byte("?")},
	}
	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		wantStatus int
		wantType   string
		wantEnc    string
		wantBody   string
	}{
		{"index", "GET", "/", nil, 200, "text/html; charset=utf-8", "", "<!doctype html>home"},
		{"module", "GET", "/js/app.js", nil, 200, "text/javascript; charset=utf-8", "", "export {}"},
		{"wasm plain", "GET", "/residual-simd.wasm", nil, 200, "application/wasm", "", "\x00asm-simd"},
		{"wasm gzip", "GET", "/residual-simd.wasm", map[string]string{"Accept-Encoding": "br, gzip"}, 200, "application/wasm", "gzip", "\x00asm-simd"},
		{"gzip refused", "GET", "/residual-simd.wasm", map[string]string{"Accept-Encoding": "gzip;q=0"}, 200, "application/wasm", "", "\x00asm-simd"},
		{"json", "GET", "/models/index.json", nil, 200, "application/json", "", `{"models":[]}`},
		{"shard", "GET", "/models/r50/shard-000.bin", nil, 200, "application/octet-stream", "", "0123456789"},
		{"shard range", "GET", "/models/r50/shard-000.bin", map[string]string{"Range": "bytes=2-4"}, 206, "application/octet-stream", "", "234"},
		{"unknown type", "GET", "/strange.xyz", nil, 200, "application/octet-stream", "", "?"},
		{"head", "HEAD", "/js/app.js", nil, 200, "text/javascript; charset=utf-8", "", ""},
		{"missing", "GET", "/nope.js", nil, 404, "", "", ""},
		{"dir redirect", "GET", "/sub", nil, 301, "", "", ""},
		{"sub path index", "GET", "/sub/", nil, 200, "text/html; charset=utf-8", "", "sub home"},
		{"dot dot stays inside", "GET", "/../../etc/passwd", nil, 404, "", "", ""},
		{"post", "POST", "/", nil, 405, "", "", ""},
	}
	var logBuf bytes.Buffer
	srv := httptest.NewServer(withLog(newHandler(fsys), &logBuf))
	defer srv.Close()
	client := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{DisableCompression: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			req.URL.Opaque = tt.path // keep ".." as sent
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus >= 300 {
				return
			}
			if got := resp.Header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type %q, want %q", got, tt.wantType)
			}
			if got := resp.Header.Get("Content-Encoding"); got != tt.wantEnc {
				t.Errorf("Content-Encoding %q, want %q", got, tt.wantEnc)
			}
			if tt.wantEnc == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(zr)
			}
			if string(body) != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
		})
	}
	// The access log has one line per request, with path and status.
	lines := strings.Split(strings.TrimSpace(logBuf.String()), "\n")
	if len(lines) != len(tests) {
		t.Fatalf("access log has %d lines, want %d:\n%s", len(lines), len(tests), logBuf.String())
	}
	if !strings.HasPrefix(lines[6], "GET /models/r50/shard-000.bin 200 10 - ") {
		t.Errorf("log line for the shard = %q", lines[6])
	}
}

func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"":                   false,
		"gzip":               true,
		"GZIP":               true,
		"deflate, gzip":      true,
		"gzip;q=0":           false,
		"gzip; q=0.5":        true,
		"br":                 false,
		"*":                  true,
		"identity, gzip;q=0": false,
	} {
		if got := acceptsGzip(header); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", header, got, want)
		}
	}
}

func TestPrefix(t *testing.T) {
	fsys := fstest.MapFS{"index.html": {Data: []byte("home")}, "js/app.js": {Data: []byte("js")}}
	var logBuf bytes.Buffer
	srv := httptest.NewServer(withLog(withPrefix("/demo/site/", newHandler(fsys)), &logBuf))
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]int{
		"/demo/site/":          200,
		"/demo/site/js/app.js": 200,
		"/demo/site":           3, // a redirect to the slash form (ServeMux picks the code)
		"/js/app.js":           404,
		"/":                    404,
	} {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.StatusCode; got != want && !(want == 3 && got/100 == 3) {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// The log shows paths as requested, prefix included.
	if !strings.Contains(logBuf.String(), "GET /demo/site/js/app.js 200 2 ") {
		t.Errorf("log lacks the full path:\n%s", logBuf.String())
	}
}
