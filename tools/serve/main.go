// Command serve serves residual's static site (dist/web, built by make web)
// on localhost for `make serve` and for the browser tests: correct MIME types
// (application/wasm for the WebAssembly builds, so browsers compile them
// while they download), precompressed NAME.gz answers when the client
// accepts gzip, no caching surprises (every answer is revalidated), and an
// optional access log that tests read to count requests.
//
// Usage:
//
//	go run ./tools/serve [-addr 127.0.0.1:8080] [-dir dist/web] [-prefix /PATH/] [-log FILE]
//
// -prefix serves the site under a sub-path (as a static host might), to
// check that the page uses relative URLs only; other paths answer 404.
// It prints "serving DIR at http://ADDR/" on stdout once it listens (with
// -addr 127.0.0.1:0 it picks a free port and prints it) and stops on SIGINT
// or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on (port 0 picks a free one)")
	dir := flag.String("dir", "dist/web", "directory to serve (run make web first)")
	logFile := flag.String("log", "", `append one line per request to this file ("-" for stderr)`)
	prefix := flag.String("prefix", "/", "URL path the site is served under, e.g. /demo/")
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("serve: unexpected arguments %q (use -dir)", flag.Args())
	}
	if err := run(*addr, *dir, *prefix, *logFile); err != nil {
		log.Fatalf("serve: %v", err)
	}
}

func run(addr, dir, prefix, logFile string) error {
	if !strings.HasPrefix(prefix, "/") || !strings.HasSuffix(prefix, "/") {
		return fmt.Errorf("-prefix %q must start and end with a slash", prefix)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("%s is not a directory: build the site first (make web)", dir)
	}
	var accessLog io.Writer
	switch logFile {
	case "":
	case "-":
		accessLog = os.Stderr
	default:
		f, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		accessLog = f
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           withLog(withPrefix(prefix, newHandler(os.DirFS(dir))), accessLog),
		ReadHeaderTimeout: 10 * time.Second,
	}
	fmt.Printf("serving %s at http://%s%s\n", dir, ln.Addr(), prefix)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
