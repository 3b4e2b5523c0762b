// Command worker is residual's Cloudflare Worker: the ResNet classifier as an
// HTTP API (POST /classify, GET /healthz) with the demo page served from the
// same deploy as static assets.
//
// Layout (the thin-bridge split of github.com/syumai/workers: everything but
// the JavaScript glue is plain Go and is tested on the host with httptest):
//
//	server.go     the http.Handler: routes, CORS, limits, JSON errors, panic recovery
//	model.go      loads the model once per isolate (shared by concurrent first requests),
//	              then lays the heap out for requests (placeInputs, reserve)
//	budget/       the memory arithmetic (a package without syscall/js, so that its
//	              figures are tested as js/wasm): a model too big for 128 MB is refused
//	              (503), and so is a request whose image would not fit beside it (413);
//	              a request's need is core/preprocess's bound from the image's header
//	main_js.go    js/wasm: reads wrangler vars, streams shards from env.ASSETS,
//	              registers the handler with workers.ServeNonBlock and blocks forever
//	main_other.go host: the same handler as a net/http server over a model directory
//	worker.mjs    the entry module: compiles the wasm once, instantiates Go once per
//	              isolate, passes env and the wasm memory size through the runtime context
//	worker.mk     make worker | worker-dev | deploy | worker-test | worker-memory
//
// The per-request env reaches Go through one mutable context object that the
// entry module updates before each request; every request of an isolate sees
// the same bindings, so the object is shared safely. The entry module lets
// one request at a time into Go (Workers bind I/O objects to their request;
// see README.md).
package main
