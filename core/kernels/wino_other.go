//go:build !goexperiment.simd || !amd64 || noasm

package kernels

// winoPlan: this build convolves directly (Winograd needs the AVX-512
// assembly).
func winoPlan(p *ConvParams, act Act) int { return 0 }

func winoPhase(t *winoTask, w, nw int, ws *workspace) { panic("kernels: no Winograd in this build") }
