//go:build goexperiment.simd && wasm

package kernels

// widenF16 converts eight values at a time in SIMD128 assembly
// (f16_wasm.s): the Go simd package has no 16-to-32-bit widening, and its
// two-pass workaround (f16_simd.go) ran at 0.7 GB/s in V8.
func widenF16(dst []float32, src []uint16) {
	n := len(src) &^ 7
	if n > 0 {
		_ = dst[n-1]
		widenF16x8(&dst[0], &src[0], n)
	}
	for i := n; i < len(src); i++ {
		dst[i] = f16to32(src[i])
	}
}

// widenF16x8 sets dst[i] = f16to32(src[i]) for i < n, n a multiple of 8.
//
//go:noescape
func widenF16x8(dst *float32, src *uint16, n int)
