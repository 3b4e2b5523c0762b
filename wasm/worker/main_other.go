//go:build !js

package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
)

// main serves the worker's handler as a plain HTTP server over a model
// directory: the same code the Cloudflare Worker runs, for debugging without
// wrangler (`go run ./wasm/worker -model weights/resnet50`). With the first
// argument "config" it is the stage configuration generator (config.go).
func main() {
	if len(os.Args) > 1 && os.Args[1] == "config" {
		if err := configMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	model := flag.String("model", "weights/resnet50", "converted model directory (manifest.json + shards)")
	addr := flag.String("addr", "127.0.0.1:8787", "listen address")
	flag.Parse()
	srv := NewServer(Config{Name: filepath.Base(*model), Source: dirSource(*model)})
	fmt.Fprintf(os.Stderr, "worker handler for %s on http://%s (POST /classify, GET /healthz)\n", *model, *addr)
	log.Fatal(http.ListenAndServe(*addr, srv))
}

// dirSource reads model files from a directory.
type dirSource string

func (d dirSource) Fetch(_ context.Context, name string, size int64) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(string(d), name))
	if err != nil {
		return nil, err
	}
	if size >= 0 && int64(len(b)) != size {
		return nil, fmt.Errorf("%s is %d bytes, the manifest says %d: convert the model again", name, len(b), size)
	}
	return b, nil
}
