package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// peak emits fmaPeakAVX512 and fmaPeakAVX2: n iterations of 12 independent
// vector FMAs on registers only (no memory operand), enough chains to cover
// the FMA latency (4 cycles) on two FMA units. They measure the
// machine's single-core FMA peak that the benchmarks report fractions of.
func peak() {
	for _, v := range []struct {
		name string
		regs func(i int) VecPhysical
	}{
		{"fmaPeakAVX512", func(i int) VecPhysical { return zmm(i) }},
		{"fmaPeakAVX2", func(i int) VecPhysical { return ymm(i) }},
	} {
		TEXT(v.name, NOSPLIT, "func(n int)")
		Doc(v.name + " runs n iterations of 12 independent register-only vector FMAs.")
		n := Load(Param("n"), GP64())
		for i := 0; i < 12; i++ {
			VXORPS(v.regs(i), v.regs(i), v.regs(i))
		}
		VXORPS(v.regs(14), v.regs(14), v.regs(14))
		VXORPS(v.regs(15), v.regs(15), v.regs(15))
		TESTQ(n, n)
		JLE(LabelRef(v.name + "_done"))
		Label(v.name + "_loop")
		for i := 0; i < 12; i++ {
			VFMADD231PS(v.regs(14), v.regs(15), v.regs(i))
		}
		DECQ(n)
		JNZ(LabelRef(v.name + "_loop"))
		Label(v.name + "_done")
		VZEROUPPER()
		RET()
	}
}

var zmms = []VecPhysical{Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
	Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31}

var ymms = []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15}

func zmm(i int) VecPhysical { return zmms[i] }
func ymm(i int) VecPhysical { return ymms[i] }

var _ = Mem{}
