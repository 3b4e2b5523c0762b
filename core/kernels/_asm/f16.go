package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// widen emits
//
//	func widenF16<ISA>(dst *float32, src *uint16, n int) int
//
// which converts binary16 values to float32 with VCVTPH2PS (exact; NaNs
// come out quiet with their payload), 4 vectors per iteration, and
// returns how many it converted: n rounded down to whole vectors (the
// caller converts the rest).
func widen(s isa) {
	name := "widenF16" + s.name
	TEXT(name, NOSPLIT, "func(dst *float32, src *uint16, n int) int")
	Pragma("noescape")
	Doc(name + " converts binary16 values to float32, whole vectors only (see widen in the generator).")
	dst := Load(Param("dst"), GP64())
	src := Load(Param("src"), GP64())
	n := Load(Param("n"), GP64())
	done := GP64()
	XORQ(done, done)
	L := s.lanes
	half := func(v VecPhysical) Op {
		if L == 16 {
			return v.AsY()
		}
		return v.AsX()
	}
	_ = half
	Label(name + "_loop4")
	t := GP64()
	MOVQ(n, t)
	SUBQ(done, t)
	CMPQ(t, U32(4*L))
	JL(LabelRef(name + "_loop1"))
	for u := 0; u < 4; u++ {
		VCVTPH2PS(Mem{Base: src, Index: done, Scale: 2, Disp: 2 * L * u}, s.reg(u))
	}
	for u := 0; u < 4; u++ {
		VMOVUPS(s.reg(u), Mem{Base: dst, Index: done, Scale: 4, Disp: 4 * L * u})
	}
	ADDQ(U32(4*L), done)
	JMP(LabelRef(name + "_loop4"))
	Label(name + "_loop1")
	MOVQ(n, t)
	SUBQ(done, t)
	CMPQ(t, U32(L))
	JL(LabelRef(name + "_done"))
	VCVTPH2PS(Mem{Base: src, Index: done, Scale: 2}, s.reg(0))
	VMOVUPS(s.reg(0), Mem{Base: dst, Index: done, Scale: 4})
	ADDQ(U32(L), done)
	JMP(LabelRef(name + "_loop1"))
	Label(name + "_done")
	Store(done, ReturnIndex(0))
	VZEROUPPER()
	RET()
}

// cpuid emits func cpuidF16C() bool: CPUID leaf 1, ECX bit 29 (F16C, the
// VCVTPH2PS of the AVX2 variant; AVX-512F has its own).
func cpuid() {
	TEXT("cpuidF16C", NOSPLIT, "func() bool")
	Doc("cpuidF16C reports whether the CPU has F16C (CPUID leaf 1, ECX bit 29).")
	MOVL(U32(1), EAX)
	XORL(ECX, ECX)
	CPUID()
	SHRL(U8(29), ECX)
	ANDL(U32(1), ECX)
	Store(CL, ReturnIndex(0))
	RET()
}
