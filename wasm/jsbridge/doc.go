// Package jsbridge holds the helpers every js/wasm front end of residual
// shares: it turns Go calls into JavaScript Promises, Go errors into rejected
// Promises carrying an Error with a readable message, and panics into
// rejections (so one bad call never kills the instance); it owns the js.Func
// values it creates and releases them; and it moves bytes between JavaScript
// typed arrays and Go memory exactly once.
//
// It knows nothing about models or images: the browser classifier
// (wasm/browser) and the Cloudflare Worker build on it, and all the work
// they expose happens in package core.
//
// Layout:
//
//	memfs.go     MemFS, an fs.ReadFileFS whose files are filled chunk by chunk
//	             (builds everywhere, so its tests run on the host too)
//	promise.go   Async, Sync, Await, Error, PanicError         (js && wasm)
//	object.go    Object: a JS object whose methods are Go funcs (js && wasm)
//	values.go    Bytes, CopyInto, ValueOf and argument helpers  (js && wasm)
//
// Run the js/wasm tests in node:
//
//	PATH="$(go env GOROOT)/lib/wasm:$PATH" GOOS=js GOARCH=wasm go test ./wasm/...
package jsbridge
