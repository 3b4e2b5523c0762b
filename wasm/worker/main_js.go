//go:build js && wasm

package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"strconv"
	"syscall/js"

	"github.com/residual-go/residual/wasm/jsbridge"
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
	limit, err := envInt(env, "MEMORY_BUDGET")
	if err != nil {
		panic(err) // a configuration mistake: the entry module reports the exit
	}

	// Memory policy for a 128 MB isolate: collect when the heap grows by
	// 10% over the live set (weights + activations), not 100%, and treat
	// the budget as a soft limit, so garbage from one request (body, decoded
	// image) does not grow the wasm memory, which never shrinks.
	debug.SetGCPercent(10)
	if limit <= 0 {
		limit = budget.Default
	}
	debug.SetMemoryLimit(limit)

	srv := NewServer(Config{
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
	})
	workers.ServeNonBlock(srv)
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
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("worker: variable %s=%q: want a positive number of bytes", key, s)
	}
	return n, nil
}

// assetsSource reads the model from the Worker's static-assets binding
// (env.ASSETS, declared in wrangler.jsonc). Shards are streamed chunk by
// chunk into one Go slice of the size the manifest gives, so no JavaScript
// copy of a whole shard exists at any time.
type assetsSource struct {
	dir string // "/models/<name>/"
}

func (a *assetsSource) Fetch(ctx context.Context, name string, size int64) (b []byte, err error) {
	defer func() {
		// A JavaScript exception thrown by a call below (js.Value.Call
		// panics with a js.Error) is this fetch's error, not a crash.
		if v := recover(); v != nil {
			if jerr, ok := v.(js.Error); ok {
				b, err = nil, fmt.Errorf("fetching %s%s: %w", a.dir, name, jerr)
				return
			}
			panic(v)
		}
	}()
	assets := js.Global().Get("context").Get("env").Get("ASSETS")
	if assets.Type() != js.TypeObject {
		return nil, fmt.Errorf("the ASSETS binding is missing: wrangler.jsonc must declare assets.binding = \"ASSETS\"")
	}
	path := a.dir + name
	resp, err := jsbridge.Await(assets.Call("fetch", "https://assets.invalid"+path))
	if err != nil {
		return nil, fmt.Errorf("fetching %s from the static assets: %w", path, err)
	}
	if status := resp.Get("status").Int(); status != 200 {
		return nil, fmt.Errorf("fetching %s from the static assets: HTTP %d; build the model into the assets directory (make web) and check the MODEL variable in wrangler.jsonc", path, status)
	}
	if size < 0 { // the manifest: small, read whole
		ab, err := jsbridge.Await(resp.Call("arrayBuffer"))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		return jsbridge.Bytes(ab, path)
	}
	buf := make([]byte, size)
	if err := readInto(ctx, resp.Get("body"), buf, path); err != nil {
		return nil, err
	}
	return buf, nil
}

// readChunk is the most a single read asks for: the only JavaScript copy of
// shard bytes that exists at any time.
const readChunk = 1 << 20

// readInto fills buf from the ReadableStream body, which must hold exactly
// len(buf) bytes. It asks for readChunk bytes a read through a BYOB reader
// (readAtLeast, a Workers extension, or the standard read(view, {min})), so
// a 25 MiB shard costs about 25 round trips between Go and JavaScript rather
// than thousands of small chunks; a body that is not a byte stream is read
// chunk by chunk with the default reader.
func readInto(ctx context.Context, body js.Value, buf []byte, path string) error {
	reader, byob := tryByob(body)
	var view js.Value // the reused JS buffer (transferred by each BYOB read)
	if byob {
		view = js.Global().Get("Uint8Array").New(min(readChunk, max(len(buf), 1)))
	}
	read := func(want int) (js.Value, error) {
		if !byob {
			return jsbridge.Await(reader.Call("read"))
		}
		v := js.Global().Get("Uint8Array").New(view.Get("buffer"), 0, want)
		if reader.Get("readAtLeast").Type() == js.TypeFunction {
			return jsbridge.Await(reader.Call("readAtLeast", want, v))
		}
		return jsbridge.Await(reader.Call("read", v, map[string]any{"min": want}))
	}
	off := 0
	for {
		if err := ctx.Err(); err != nil {
			reader.Call("cancel")
			return err
		}
		// At the end, one more read of 1 byte must report done (a file
		// longer than the manifest says is an error, not a truncation).
		r, err := read(max(min(readChunk, len(buf)-off), 1))
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		chunk := r.Get("value")
		n := 0
		if chunk.Type() == js.TypeObject {
			n = chunk.Get("byteLength").Int()
			if byob {
				view = js.Global().Get("Uint8Array").New(chunk.Get("buffer"))
			}
		}
		if off+n > len(buf) {
			reader.Call("cancel")
			return fmt.Errorf("%s is longer than the %d bytes the manifest says: convert and deploy the model again", path, len(buf))
		}
		if n > 0 {
			js.CopyBytesToGo(buf[off:off+n], chunk)
			off += n
		}
		if r.Get("done").Bool() {
			break
		}
	}
	if off != len(buf) {
		return fmt.Errorf("%s is %d bytes, the manifest says %d: convert and deploy the model again", path, off, len(buf))
	}
	return nil
}

// tryByob returns a BYOB reader of body when body is a byte stream, else
// its default reader.
func tryByob(body js.Value) (reader js.Value, byob bool) {
	defer func() {
		if recover() != nil { // not a byte stream: getReader threw a TypeError
			reader, byob = body.Call("getReader"), false
		}
	}()
	return body.Call("getReader", map[string]any{"mode": "byob"}), true
}
