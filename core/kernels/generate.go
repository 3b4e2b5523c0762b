package kernels

// The WebAssembly assembly (gemm_wasm.s, f16_wasm.s) is generated on the host.
//go:generate go run gemm_wasm_gen.go
