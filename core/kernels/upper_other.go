//go:build goexperiment.simd && !amd64

package kernels

// clearUpper is a no-op where vector and scalar registers do not interfere
// (WASM SIMD128, arm64).
func clearUpper() {}
