//go:build !goexperiment.simd

package kernels

// The scalar build: every kernel is its portable twin.

func implName() string { return "scalar" }

func gemm(ws *workspace, g *gemmArgs) { gemmGeneric(g) }

func gemv(m, k int, a []float32, lda int, x, y []float32, ldy int, bias []float32, act Act) {
	gemvGeneric(m, k, a, lda, x, y, ldy, bias, act)
}

// gemmNR and gemmMR are the column and row granularities used to split
// work between goroutines.
func gemmNR() int { return 16 }

func gemmMR() int { return 4 }

func gemmLayout() wsLayout { return wsLayout{} }

// packsIm2col reports whether the GEMM builds the im2col matrix of a
// convolution itself (gemmArgs.fromImage): the scalar GEMM does not.
const packsIm2col = false

func activate(in, out []float32, act Act) { activateGeneric(in, out, act) }

func addAct(a, b, out []float32, act Act) { addActGeneric(a, b, out, act) }

func widenF16(dst []float32, src []uint16) { widenF16Generic(dst, src) }

// hasAsm reports whether the build has the assembly GEMM; usesImageB
// whether it is active.
const hasAsm = false

func usesImageB() bool { return false }

func maxInto(m, x []float32) { maxIntoGeneric(m, x) }

func windowMax(dst, src []float32, k int) { windowMaxGeneric(dst, src, k) }
