//go:build js && wasm

package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"syscall/js"
	"time"

	"github.com/residual-go/residual/wasm/worker/budget"
	"github.com/syumai/workers"
)

// main runs once per isolate: the entry module (worker.mjs) instantiates
// this program on the first request and keeps it. It registers the handler,
// signals readiness and then blocks forever, unlike workers.Serve, which
// returns after the first response and so would reload the weights per
// request.
func main() {
	rc := js.Global().Get("context") // the entry module's runtime context (wasm_exec_go.js proxies it)
	env := rc.Get("env")
	name := envString(env, "MODEL", "resnet50")
	must := func(n int64, err error) int64 {
		if err != nil {
			panic(err) // a configuration mistake: the entry module reports the exit
		}
		return n
	}
	limit := must(envInt(env, "MEMORY_BUDGET"))
	sl := slice{
		Stage:  int(must(envInt(env, "STAGE"))),
		Stages: int(must(envInt(env, "STAGES"))),
		First:  int(must(envInt(env, "FIRST"))),
		End:    int(must(envInt(env, "END"))),
	}
	timeout := time.Duration(must(envInt(env, "TIMEOUT_MS"))) * time.Millisecond

	// Memory policy for a 128 MB isolate: collect when the heap grows by
	// 10% over the live set (weights + activations), not 100%, and treat
	// the budget as a soft limit, so garbage from one request (body, decoded
	// image) does not grow the wasm memory, which never shrinks.
	debug.SetGCPercent(10)
	if limit <= 0 {
		limit = budget.Default
	}
	debug.SetMemoryLimit(limit)

	cfg := Config{
		Name:   name,
		Source: &assetsSource{dir: "/models/" + name + "/"},
		Budget: limit,
		WasmMemory: func() int64 {
			f := rc.Get("wasmMemoryBytes")
			if f.Type() != js.TypeFunction {
				return 0
			}
			return int64(f.Invoke().Float())
		},
		Slice:    sl,
		Worker:   envString(env, "WORKER", "residual"),
		NextName: envString(env, "NEXT_NAME", ""),
		StageKey: envString(env, "STAGE_KEY", ""),
		Timeout:  timeout,
		Access: Access{
			APIToken:   envString(env, "API_TOKEN", ""),
			Origins:    parseOrigins(envString(env, "ALLOWED_ORIGINS", "")),
			RatePeriod: int(must(envInt(env, "RATE_LIMIT_PERIOD"))),
		},
		Body: rawBody,
	}
	if sl.Stage+1 < max(sl.Stages, 1) {
		cfg.Next = bindingTransport{binding: "NEXT"}
	}
	if env.Get("RATE_LIMITER").Type() == js.TypeObject {
		cfg.Access.Limiter = jsLimiter{binding: "RATE_LIMITER"}
	}
	workers.ServeNonBlock(NewServer(cfg))
	workers.Ready()
	select {}
}

func envString(env js.Value, key, def string) string {
	if env.Type() != js.TypeObject {
		return def
	}
	if v := env.Get(key); v.Type() == js.TypeString && v.String() != "" {
		return v.String()
	}
	return def
}

func envInt(env js.Value, key string) (int64, error) {
	s := envString(env, key, "")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("worker: variable %s=%q: want a number, 0 or more", key, s)
	}
	return n, nil
}

// assetsSource reads the model from the Worker's static-assets binding
// (env.ASSETS, declared in the generated configuration). A shard is
// streamed: core reads it chunk by chunk through a jsReader, hashing all of
// it and keeping only the stage's tensors, so no JavaScript copy of a whole
// shard exists at any time.
type assetsSource struct {
	dir string // "/models/<name>/"
}

func (a *assetsSource) Open(ctx context.Context, name string) (r io.ReadCloser, size int64, err error) {
	defer func() {
		// A JavaScript exception thrown by a call below (js.Value.Call
		// panics with a js.Error) is this fetch's error, not a crash.
		if v := recover(); v != nil {
			if jerr, ok := v.(js.Error); ok {
				r, err = nil, fmt.Errorf("fetching %s%s: %w", a.dir, name, jerr)
				return
			}
			panic(v)
		}
	}()
	assets := js.Global().Get("context").Get("env").Get("ASSETS")
	if assets.Type() != js.TypeObject {
		return nil, 0, fmt.Errorf("the ASSETS binding is missing: the configuration must declare assets.binding = \"ASSETS\" (make worker-config writes it)")
	}
	path := a.dir + name
	resp, err := awaitCtx(ctx, assets.Call("fetch", "https://assets.invalid"+path), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("fetching %s from the static assets: %w", path, err)
	}
	if status := resp.Get("status").Int(); status != 200 {
		return nil, 0, fmt.Errorf("fetching %s from the static assets: HTTP %d; build the model into the assets directory (make web, make worker-config) and check the MODEL variable", path, status)
	}
	size = -1
	if cl := resp.Get("headers").Call("get", "Content-Length"); cl.Type() == js.TypeString {
		if n, err := strconv.ParseInt(cl.String(), 10, 64); err == nil {
			size = n
		}
	}
	return newJSReader(ctx, resp.Get("body"), path), size, nil
}
