//go:build !(js && wasm)

// Command benchgpu runs only as js/wasm under node with Dawn: make bench-gpu.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "benchgpu runs as js/wasm under node with npm webgpu: use make bench-gpu")
	os.Exit(2)
}
