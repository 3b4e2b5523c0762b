//go:build goexperiment.simd && amd64

package kernels

import "simd/archsimd"

// clearUpper ends a stretch of 256/512-bit vector code (VZEROUPPER). Go's
// scalar float code uses legacy SSE encodings, and running them while the
// upper halves of the vector registers are dirty costs a state transition
// or a false dependency on many x86 cores; measured here, an epilogue with a
// few scalar loads after the micro-kernel ran 20x slower without it. Every
// simd function that returns to scalar code calls it last.
func clearUpper() { archsimd.ClearAVXUpperBits() }
