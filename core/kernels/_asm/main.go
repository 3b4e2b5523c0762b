// Command _asm generates the amd64 assembly of package kernels with avo
// (github.com/mmcloughlin/avo): the GEMM micro-kernels in AVX-512 and
// AVX2+FMA variants, and the register-only FMA loops that measure the
// machine's peak. It is its own module so that avo is not a dependency of
// residual's main module. Run it through go generate in core/kernels:
//
//	go generate ./core/kernels
package main

import (
	. "github.com/mmcloughlin/avo/build"
)

func main() {
	ConstraintExpr("goexperiment.simd,amd64,!noasm")
	peak()
	gemmKernels()
	packSliver(avx512)
	packSliver(avx2)
	transpose16()
	widen(avx512)
	widen(avx2)
	cpuid()
	winogradKernels()
	Generate()
}
