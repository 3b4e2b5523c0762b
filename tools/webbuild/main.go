// Command webbuild assembles residual's static site (make web): the page from
// web/, the two WebAssembly builds of wasm/browser, Go's wasm_exec.js, and
// every converted model found as weights/NAME/manifest.json, listed in
// models/index.json for the page's model selector. The result is a
// self-contained directory any static host can serve, under any path.
//
// Usage (make web runs it after building the .wasm files):
//
//	go run ./tools/webbuild -out dist/web -simd build/residual-simd.wasm \
//	    -scalar build/residual-scalar.wasm -wasm-exec "$(go env GOROOT)/lib/wasm/wasm_exec.js"
//
// The site is built in a temporary directory beside -out and renamed into
// place, so a failed build leaves the previous site untouched. Shards are
// hard-linked when the file system allows it (they are large and immutable)
// and copied otherwise; their sizes are checked against the manifest. Text
// assets and the .wasm files also get a gzip twin (NAME.gz) that tools/serve
// answers with when the browser accepts gzip.
package main

import (
	"flag"
	"fmt"
	"log"
)

func main() {
	var c config
	flag.StringVar(&c.Out, "out", "dist/web", "output directory (replaced)")
	flag.StringVar(&c.Web, "web", "web", "directory of the page's static files")
	flag.StringVar(&c.Weights, "weights", "weights", "directory holding converted models (NAME/manifest.json)")
	flag.StringVar(&c.SIMD, "simd", "", "residual-simd.wasm built with GOEXPERIMENT=simd (required)")
	flag.StringVar(&c.Scalar, "scalar", "", "residual-scalar.wasm built without the simd experiment (required)")
	flag.StringVar(&c.WasmExec, "wasm-exec", "", "Go's wasm_exec.js: $(go env GOROOT)/lib/wasm/wasm_exec.js (required)")
	flag.BoolVar(&c.Gzip, "gzip", true, "write NAME.gz beside .wasm, .js, .css, .html and .json files")
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("webbuild: unexpected arguments %q", flag.Args())
	}
	sum, err := build(c)
	if err != nil {
		log.Fatalf("webbuild: %v", err)
	}
	fmt.Print(sum)
}
