//go:build goexperiment.simd && (!amd64 || noasm)

package kernels

// The portable simd build: the simd package's GEMM everywhere (WASM
// SIMD128, arm64, and amd64 with the noasm tag).

func implName() string { return "simd" }

func gemm(ws *workspace, g *gemmArgs) { gemmSIMD(ws, g) }

func gemmNR() int { return simdNR() }

func gemmMR() int { return simdMR }

func gemmLayout() wsLayout { return simdLayout() }

// hasAsm reports whether the build has the assembly GEMM; usesImageB
// whether it is active.
const hasAsm = false

func usesImageB() bool { return false }
