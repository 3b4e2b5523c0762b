//go:build goexperiment.simd && !wasm && (!amd64 || noasm)

package kernels

// widenF16 is the simd package's two-pass widening where there is neither
// assembly for amd64 (gemm_amd64.go) nor for WebAssembly (f16_wasm.go).
func widenF16(dst []float32, src []uint16) { widenF16SIMD(dst, src) }
