//go:build !js

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/wasm/worker/budget"
)

// main serves the worker's handler as a plain HTTP server over a model
// directory: the same code the Cloudflare Worker runs, for debugging without
// wrangler (`go run ./wasm/worker -model weights/resnet50`). With -budget
// it runs the model split into stages as the Workers would, all in this
// process, each stage's handler calling the next directly. (The stage
// configurations for wrangler are written by ./wasm/worker/config.)
func main() {
	model := flag.String("model", "weights/resnet50", "converted model directory (manifest.json + shards)")
	addr := flag.String("addr", "127.0.0.1:8787", "listen address")
	budget := flag.Int64("budget", 0, "split the model into stages of this many bytes, run in this process (0: one stage)")
	flag.Parse()
	var front http.Handler = NewServer(Config{Name: filepath.Base(*model), Source: dirSource(*model)})
	if *budget > 0 {
		stages, err := localPipeline(*model, *budget, Config{})
		if err != nil {
			log.Fatal(err)
		}
		front = stages[0]
		fmt.Fprintf(os.Stderr, "%d stages in this process\n", len(stages))
	}
	fmt.Fprintf(os.Stderr, "worker handler for %s on http://%s (POST /classify, GET /healthz)\n", *model, *addr)
	log.Fatal(http.ListenAndServe(*addr, front))
}

// dirSource reads model files from a directory.
type dirSource string

func (d dirSource) Open(_ context.Context, name string) (io.ReadCloser, int64, error) {
	f, err := os.Open(filepath.Join(string(d), name))
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// handlerTransport calls a handler in this process as if through a Service
// Binding.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

// localPipeline plans the model in dir into stages of stageBudget bytes and
// returns their handlers, each joined to the next in this process; base
// configures them all (Source, Name and the slice are set here).
func localPipeline(dir string, stageBudget int64, base Config) ([]*Server, error) {
	raw, err := os.ReadFile(filepath.Join(dir, weights.ManifestFile))
	if err != nil {
		return nil, err
	}
	m, err := weights.ParseManifest(raw)
	if err != nil {
		return nil, err
	}
	plan, err := budget.Plan(m, stageBudget, true)
	if err != nil {
		return nil, err
	}
	ranges := make([]core.Range, len(plan))
	for i, e := range plan {
		ranges[i] = core.Range{First: e.First, End: e.End}
	}
	return joinStages(dir, ranges, base), nil
}

// joinStages returns the handlers of the stages of the model in dir that
// run the given ranges, each joined to the next in this process.
func joinStages(dir string, ranges []core.Range, base Config) []*Server {
	var key [16]byte
	rand.Read(key[:])
	servers := make([]*Server, len(ranges))
	for i := len(ranges) - 1; i >= 0; i-- {
		cfg := base
		if cfg.Name == "" {
			cfg.Name = filepath.Base(dir)
		}
		if cfg.Source == nil {
			cfg.Source = dirSource(dir)
		}
		cfg.Slice = slice{Stage: i, Stages: len(ranges), First: ranges[i].First, End: ranges[i].End}
		cfg.Worker = fmt.Sprintf("local-stage-%d", i)
		cfg.StageKey = hex.EncodeToString(key[:])
		if i+1 < len(ranges) {
			cfg.NextName, cfg.Next = servers[i+1].cfg.Worker, handlerTransport{servers[i+1]}
		}
		servers[i] = NewServer(cfg)
	}
	return servers
}
