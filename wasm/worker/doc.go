// Command worker is residual's Cloudflare Worker: the ResNet classifier as an
// HTTP API (POST /classify, GET /healthz) with the demo page served from the
// same deploy as static assets. A model larger than one 128 MB isolate runs
// as a chain of stage Workers joined by Service Bindings, each holding one
// slice of the network (README.md, "Stages").
//
// Layout (the thin-bridge split of github.com/syumai/workers: everything but
// the JavaScript glue is plain Go and is tested on the host with httptest):
//
//	server.go     the http.Handler: routes, limits, JSON errors, panic recovery, /healthz of every stage
//	access.go     who may spend the account's CPU: API token, allowed origins, rate limit; the stage key
//	pipeline.go   the chain: a stage's POST /stage, the hop to the next stage, the last stage's answer
//	tensor.go     the message between stages (documented byte by byte; fuzzed)
//	model.go      loads a stage once per isolate, streaming only its slice's tensors from the assets,
//	              then lays the heap out for requests (reserve)
//	budget/       the memory arithmetic (a package without syscall/js, so that its figures are
//	              tested as js/wasm): each stage's memory from the manifest, the split into the
//	              fewest stages (Plan); a stage too big for its budget is refused (503), and so is
//	              a request whose image would not fit beside the front's slice (413), its need
//	              being core/preprocess's bound from the image's header
//	config.go     host: `go run ./wasm/worker config` writes one wrangler configuration per stage
//	main_js.go    js/wasm: reads the stage's variables and bindings, registers the handler, blocks forever
//	bridge_js.go  js/wasm: streams as io.Readers, the Service Binding as an http.RoundTripper, the rate limiter
//	main_other.go host: the same handler as a net/http server over a model directory (all stages in one
//	              process with -budget)
//	worker.mjs    the entry module: compiles the wasm once, instantiates Go once per isolate, passes env
//	              and the wasm memory size through the runtime context
//	worker.mk     make worker | worker-config | worker-dev | deploy | worker-test | worker-memory | worker-hops
//
// The per-request env reaches Go through one mutable context object that the
// entry module updates before each request; every request of an isolate sees
// the same bindings, so the object is shared safely. The entry module lets
// one request at a time into Go (Workers bind I/O objects to their request;
// see README.md).
package main
