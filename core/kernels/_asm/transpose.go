package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// transpose16 emits
//
//	func transpose16AVX512(dst *float32, dstStride int, src *float32, srcStride, rows, cols int)
//
// which sets dst[j*dstStride + i] = src[i*srcStride + j] for i < rows and
// j < cols (both at most 16): a 16 x 16 block transposed in registers.
// Source rows are read masked to cols lanes (rows past rows are zero);
// destination rows are written masked to rows lanes.
func transpose16() {
	name := "transpose16AVX512"
	TEXT(name, NOSPLIT, "func(dst *float32, dstStride int, src *float32, srcStride, rows, cols int)")
	Pragma("noescape")
	Doc(name + " transposes a block of at most 16 x 16 floats (see transpose16 in the generator).")
	src := Load(Param("src"), GP64())
	ss := Load(Param("srcStride"), GP64())
	SHLQ(U8(2), ss)
	rows := Load(Param("rows"), GP64())
	cols := Load(Param("cols"), GP64())
	t := GP64()
	// K1: the first cols lanes; K2: the first rows lanes.
	MOVQ(U32(1), t)
	SHLXQ(cols, t, t)
	DECQ(t)
	KMOVW(t.As32(), K1)
	MOVQ(U32(1), t)
	SHLXQ(rows, t, t)
	DECQ(t)
	KMOVW(t.As32(), K2)
	r := func(i int) VecPhysical { return zmm(i) }
	s := func(i int) VecPhysical { return zmm(16 + i) }
	for i := 0; i < 16; i++ {
		VXORPS(r(i), r(i), r(i))
	}
	for i := 0; i < 16; i++ {
		CMPQ(rows, U8(i))
		JLE(LabelRef(name + "_loaded"))
		VMOVUPS_Z(Mem{Base: src}, K1, r(i))
		ADDQ(ss, src)
	}
	Label(name + "_loaded")
	transposeRegs(r, s)
	dst := Load(Param("dst"), GP64())
	ds := Load(Param("dstStride"), GP64())
	SHLQ(U8(2), ds)
	for j := 0; j < 16; j++ {
		CMPQ(cols, U8(j))
		JLE(LabelRef(name + "_done"))
		VMOVUPS(r(j), K2, Mem{Base: dst})
		ADDQ(ds, dst)
	}
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// transposeRegs transposes the 16 x 16 matrix in registers r(0..15)
// (row i in r(i)) in place, with s(0..15) as temporaries: interleave
// 32-bit, then 64-bit pairs within 128-bit blocks, then move the blocks.
func transposeRegs(r, s func(int) VecPhysical) {
	for k := 0; k < 8; k++ {
		VUNPCKLPS(r(2*k+1), r(2*k), s(2*k))
		VUNPCKHPS(r(2*k+1), r(2*k), s(2*k+1))
	}
	// s(4k+0,1) from rows 4k, 4k+1; s(4k+2,3) from rows 4k+2, 4k+3.
	// r(4k+e): element e of each block, rows 4k..4k+3.
	for k := 0; k < 4; k++ {
		VUNPCKLPD(s(4*k+2), s(4*k), r(4*k))
		VUNPCKHPD(s(4*k+2), s(4*k), r(4*k+1))
		VUNPCKLPD(s(4*k+3), s(4*k+1), r(4*k+2))
		VUNPCKHPD(s(4*k+3), s(4*k+1), r(4*k+3))
	}
	// Column 4b+e of the input is block b of r(e), r(4+e), r(8+e), r(12+e).
	for e := 0; e < 4; e++ {
		b0, b1, b2, b3 := r(e), r(4+e), r(8+e), r(12+e)
		c0, c1, c2, c3 := s(4*e), s(4*e+1), s(4*e+2), s(4*e+3)
		VSHUFF32X4(U8(0x44), b1, b0, c0)
		VSHUFF32X4(U8(0xEE), b1, b0, c1)
		VSHUFF32X4(U8(0x44), b3, b2, c2)
		VSHUFF32X4(U8(0xEE), b3, b2, c3)
	}
	for e := 0; e < 4; e++ {
		c0, c1, c2, c3 := s(4*e), s(4*e+1), s(4*e+2), s(4*e+3)
		VSHUFF32X4(U8(0x88), c2, c0, r(e))
		VSHUFF32X4(U8(0xDD), c2, c0, r(4+e))
		VSHUFF32X4(U8(0x88), c3, c1, r(8+e))
		VSHUFF32X4(U8(0xDD), c3, c1, r(12+e))
	}
}
