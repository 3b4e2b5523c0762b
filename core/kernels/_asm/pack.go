package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// packSliver emits
//
//	func packSliver<ISA>(dst *float32, width, cols int, src *float32, rows *int, kc int, segs *int, nseg int)
//
// which packs one sliver of B: for each of the kc rows p, the row's values
// are copied from nseg segments of src (segment s: segs[3s] is its offset
// from src+rows[p], segs[3s+1] its offset in the packed row, segs[3s+2] its
// length), then the packed row's columns cols..width-1 are zeroed. Packed
// rows are width floats apart in dst. A plain matrix B is one segment per
// row; an image, one segment per output row the sliver's columns span.
func packSliver(s isa) {
	name := "packSliver" + s.name
	TEXT(name, NOSPLIT, "func(dst *float32, width, cols int, src *float32, rows *int, kc int, segs *int, nseg int)")
	Pragma("noescape")
	Doc(name + " packs one sliver of B from segments of src (see packSliver in the generator).")
	vb := 4 * s.lanes
	dst := Load(Param("dst"), GP64())
	width := Load(Param("width"), GP64())
	SHLQ(U8(2), width)
	rows := Load(Param("rows"), GP64())
	kc := Load(Param("kc"), GP64())
	v := s.reg(0)
	zero := s.reg(1)
	VXORPS(zero, zero, zero)
	// The tail mask: columns cols%lanes.. of the last vector are zeroed;
	// tailOff is the byte offset of that vector in a packed row.
	cols := Load(Param("cols"), GP64())
	tailOff := GP64()
	tailN := GP64()
	MOVQ(cols, tailN)
	ANDQ(U32(s.lanes-1), tailN)
	MOVQ(cols, tailOff)
	SUBQ(tailN, tailOff)
	SHLQ(U8(2), tailOff)
	tailMask := setMask(s, tailN, true, 2)

	Label(name + "_row")
	TESTQ(kc, kc)
	JE(LabelRef(name + "_done"))
	base := Load(Param("src"), GP64())
	r := GP64()
	MOVQ(Mem{Base: rows}, r)
	LEAQ(Mem{Base: base, Index: r, Scale: 4}, base)
	seg := Load(Param("segs"), GP64())
	nseg := Load(Param("nseg"), GP64())
	Label(name + "_seg")
	TESTQ(nseg, nseg)
	JE(LabelRef(name + "_tail"))
	sp, dp, n := GP64(), GP64(), GP64()
	MOVQ(Mem{Base: seg}, sp)
	LEAQ(Mem{Base: base, Index: sp, Scale: 4}, sp)
	MOVQ(Mem{Base: seg, Disp: 8}, dp)
	LEAQ(Mem{Base: dst, Index: dp, Scale: 4}, dp)
	MOVQ(Mem{Base: seg, Disp: 16}, n)
	Label(name + "_vec")
	CMPQ(n, U8(s.lanes))
	JL(LabelRef(name + "_part"))
	VMOVUPS(Mem{Base: sp}, v)
	VMOVUPS(v, Mem{Base: dp})
	ADDQ(U8(vb), sp)
	ADDQ(U8(vb), dp)
	SUBQ(U8(s.lanes), n)
	JMP(LabelRef(name + "_vec"))
	Label(name + "_part")
	TESTQ(n, n)
	JE(LabelRef(name + "_next"))
	m := setMask(s, n, false, 3)
	maskedCopy(s, m, Mem{Base: sp}, Mem{Base: dp}, v)
	Label(name + "_next")
	ADDQ(U8(24), seg)
	DECQ(nseg)
	JMP(LabelRef(name + "_seg"))

	Label(name + "_tail")
	// Zero columns cols..width-1: the rest of the vector holding column
	// cols (when cols is not a whole number of vectors), then whole vectors.
	tp := GP64()
	LEAQ(Mem{Base: dst, Index: tailOff, Scale: 1}, tp)
	end := GP64()
	LEAQ(Mem{Base: dst, Index: width, Scale: 1}, end)
	TESTQ(tailN, tailN)
	JE(LabelRef(name + "_zvec"))
	maskedZero(s, tailMask, Mem{Base: tp}, zero)
	ADDQ(U8(vb), tp)
	Label(name + "_zvec")
	CMPQ(tp, end)
	JAE(LabelRef(name + "_rowdone"))
	VMOVUPS(zero, Mem{Base: tp})
	ADDQ(U8(vb), tp)
	JMP(LabelRef(name + "_zvec"))
	Label(name + "_rowdone")
	ADDQ(width, dst)
	ADDQ(U8(8), rows)
	DECQ(kc)
	JMP(LabelRef(name + "_row"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// mask is a lane mask: a K register (AVX-512) or a vector of all-ones and
// zero lanes (AVX2).
type mask struct {
	k Register
	v VecPhysical
}

// setMask builds the mask of the first n lanes (n < lanes), or with
// invert, of lanes n.. . With AVX2 it uses vector register vreg.
func setMask(s isa, n Register, invert bool, vreg int) mask {
	if s.lanes == 16 {
		t := GP64()
		MOVQ(U32(1), t)
		SHLXQ(n, t, t)
		DECQ(t)
		if invert {
			NOTQ(t)
		}
		k := K1
		if invert {
			k = K2
		}
		KMOVW(t.As32(), k)
		return mask{k: k}
	}
	// AVX2: lanes i < n are all ones: compare the lane indices with n.
	t := GP64()
	MOVQ(n, t)
	mv := s.reg(vreg)
	VMOVD(t.As32(), mv.AsX())
	VPBROADCASTD(mv.AsX(), mv)
	idx := laneIndex()
	if invert {
		// lanes i >= n, that is i > n-1
		t := s.reg(15)
		VPCMPEQD(t, t, t)
		VPADDD(t, mv, mv)
		VMOVDQU(idx, t)
		VPCMPGTD(mv, t, mv) // mv = idx > n-1
	} else {
		VPCMPGTD(idx, mv, mv) // mv = n > idx
	}
	return mask{v: mv}
}

var laneIdx *Mem

// laneIndex is a constant vector of the lane numbers 0..7.
func laneIndex() Mem {
	if laneIdx == nil {
		m := GLOBL("laneIndex", RODATA|NOPTR)
		for i := 0; i < 8; i++ {
			DATA(4*i, U32(i))
		}
		laneIdx = &m
	}
	return *laneIdx
}

func maskedCopy(s isa, m mask, from, to Mem, v VecPhysical) {
	if m.k != nil {
		VMOVUPS_Z(from, m.k, v)
		VMOVUPS(v, m.k, to)
		return
	}
	VMASKMOVPS(from, m.v, v)
	VMASKMOVPS(v, m.v, to)
}

func maskedZero(s isa, m mask, to Mem, zero VecPhysical) {
	if m.k != nil {
		VMOVUPS(zero, m.k, to)
		return
	}
	VMASKMOVPS(zero, m.v, to)
}
