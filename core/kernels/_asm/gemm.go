package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// isa describes one vector instruction set: its lane count, its vector
// registers and how many there are.
type isa struct {
	name  string // suffix of the generated functions
	lanes int    // float32 lanes per vector
	nregs int    // vector registers
	reg   func(i int) VecPhysical
}

var (
	avx512 = isa{"AVX512", 16, 32, zmm}
	avx2   = isa{"AVX2", 8, 16, ymm}
)

// Epilogue flags of the micro-kernels (gemm_amd64.go keeps the same values).
const (
	flagAccumulate = 1  // C += product (later K slices)
	flagBias       = 2  // C = product + bias[r] (first K slice with a bias)
	flagReLU       = 4  // then max(x, 0)
	flagLeaky      = 8  // with flagReLU: x > 0 ? x : x*slope
	flagResidual   = 16 // before the activation: + res[r][j] (the last K slice)
)

// gemmMR is the number of rows of A (output channels) of every micro-kernel.
const gemmMR = 6

// prefetchDistance is how far ahead of the k loop the rows of A are
// prefetched, in bytes.
const prefetchDistance = 0 // measured: 256 and 512 bytes ahead made no difference (within 3%)

// gemmKernels emits the micro-kernels the driver uses: up to 6 rows of A
// times 1 to 4 vectors of B with AVX-512 (6 x 4 for whole tiles, the others
// for the last rows of a block and the last sliver of a panel), 1 to 2
// vectors with AVX2. The tiles measured against these are listed in
// core/kernels/doc.go.
func gemmKernels() {
	for mr := 1; mr <= gemmMR; mr++ {
		for nrv := 1; nrv <= 4; nrv++ {
			gemmKernel(avx512, mr, nrv)
		}
	}
	for mr := 1; mr <= gemmMR; mr++ {
		for nrv := 1; nrv <= 2; nrv++ {
			gemmKernel(avx2, mr, nrv)
		}
	}
}

// gemmKernel emits a micro-kernel computing an mr x nrv-vector tile of C:
//
//	func gemm<mr>x<nrv><ISA>(k int, a *float32, lda int, b, c *float32, ldc int, bias, res *float32, flags int, slope float32, last int)
//
// Row r of the tile's A is the k values at a + r*lda (read in place: each
// is a contiguous run of weights); b is a packed sliver of B, k steps of
// nrv*lanes values; the tile's rows are ldc floats apart in c, and only
// the first last (1..lanes) columns of its last vector are C's (the
// others are neither read nor written: masked); res, when flags say so, is
// a residual laid out like c, added after the bias and C's earlier sum,
// before the activation. The accumulators stay in
// registers across the k rank-1 updates (each a broadcast of one value of A
// times the sliver's vectors); the epilogue (flags) runs on them before the
// single store.
func gemmKernel(s isa, mr, nrv int) {
	name := fmt.Sprintf("gemm%dx%d%s", mr, nrv, s.name)
	nacc := mr * nrv
	nbc := min(2, s.nregs-nacc-nrv) // broadcast registers, alternated when there are two
	if nbc < 1 || nrv > 4 {
		panic(name + ": too many registers")
	}
	TEXT(name, NOSPLIT, "func(k int, a *float32, lda int, b, c *float32, ldc int, bias, res *float32, flags int, slope float32, last int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s computes a %d x %d tile of C = A*B (see gemmKernel in the generator).", name, mr, nrv*s.lanes))
	acc := func(r, v int) VecPhysical { return s.reg(r*nrv + v) }
	breg := func(v int) VecPhysical { return s.reg(nacc + v) }
	bc := func(i int) VecPhysical { return s.reg(nacc + nrv + i%nbc) }
	free := func(i int) VecPhysical { return s.reg(nacc + i) } // B and broadcast registers, free after the loop
	vbytes := 4 * s.lanes
	nr := nrv * s.lanes

	k := Load(Param("k"), GP64())
	pb := Load(Param("b"), GP64())
	// Row r of A is at bases[r/3] + (r%3)*lda: bases 3 rows apart, so
	// that every row is one addressing mode (scale 1 or 2).
	lda := Load(Param("lda"), GP64())
	SHLQ(U8(2), lda)
	bases := []Register{Load(Param("a"), GP64())}
	for r := 3; r < mr; r += 3 {
		b := GP64()
		LEAQ(Mem{Base: bases[len(bases)-1], Index: lda, Scale: 2}, b)
		ADDQ(lda, b)
		bases = append(bases, b)
	}
	aMem := func(u, r int) Mem {
		m := Mem{Base: bases[r/3], Disp: 4 * u}
		if r%3 > 0 {
			m.Index, m.Scale = lda, byte(r%3)
		}
		return m
	}
	for r := 0; r < mr; r++ {
		for v := 0; v < nrv; v++ {
			VXORPS(acc(r, v), acc(r, v), acc(r, v))
		}
	}
	step := func(u int) {
		for v := 0; v < nrv; v++ {
			VMOVUPS(Mem{Base: pb, Disp: 4*u*nr + v*vbytes}, breg(v))
		}
		for r := 0; r < mr; r++ {
			VBROADCASTSS(aMem(u, r), bc(r))
			for v := 0; v < nrv; v++ {
				VFMADD231PS(breg(v), bc(r), acc(r, v))
			}
		}
	}
	advance := func(steps int) {
		for _, b := range bases {
			ADDQ(U32(4*steps), b)
		}
		ADDQ(U32(4*steps*nr), pb)
	}
	const unroll = 4
	Label(name + "_loop4")
	CMPQ(k, U8(unroll))
	JL(LabelRef(name + "_tail"))
	for u := 0; u < unroll; u++ {
		step(u)
	}
	// A is read in place from the filters, which stream from memory once
	// per image: prefetch each row prefetchDistance bytes ahead (the
	// hardware prefetchers see six strided streams late).
	for r := 0; r < mr && prefetchDistance > 0; r++ {
		m := aMem(0, r)
		m.Disp += prefetchDistance
		PREFETCHT0(m)
	}
	advance(unroll)
	SUBQ(U8(unroll), k)
	JMP(LabelRef(name + "_loop4"))
	Label(name + "_tail")
	TESTQ(k, k)
	JE(LabelRef(name + "_epilogue"))
	step(0)
	advance(1)
	DECQ(k)
	JMP(LabelRef(name + "_tail"))

	Label(name + "_epilogue")
	pc := Load(Param("c"), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), ldc)
	flags := Load(Param("flags"), GP64())
	row := GP64()
	// The last vector's lane mask: K1 with AVX-512, a vector register
	// (the last free one) with AVX2; full tells the unmasked path.
	last := Load(Param("last"), GP64())
	var lastMask mask
	if s.lanes == 16 {
		lastMask = setMask(s, last, false, 0)
	} else {
		lastMask = setMask(s, last, false, s.nregs-1)
	}
	full := func(label string) {
		CMPQ(last, U8(s.lanes))
		JE(LabelRef(label))
	}
	eachRow := func(f func(r int)) {
		MOVQ(pc, row)
		for r := 0; r < mr; r++ {
			f(r)
			if r < mr-1 {
				ADDQ(ldc, row)
			}
		}
	}
	// C += product, the last vector masked unless full.
	TESTQ(U32(flagAccumulate), flags)
	JZ(LabelRef(name + "_noacc"))
	full(name + "_accfull")
	eachRow(func(r int) {
		for v := 0; v < nrv-1; v++ {
			VADDPS(Mem{Base: row, Disp: v * vbytes}, acc(r, v), acc(r, v))
		}
		m := Mem{Base: row, Disp: (nrv - 1) * vbytes}
		if s.lanes == 16 {
			VADDPS(m, acc(r, nrv-1), lastMask.k, acc(r, nrv-1))
		} else {
			VMASKMOVPS(m, lastMask.v, free(0))
			VADDPS(free(0), acc(r, nrv-1), acc(r, nrv-1))
		}
	})
	JMP(LabelRef(name + "_noacc"))
	Label(name + "_accfull")
	eachRow(func(r int) {
		for v := 0; v < nrv; v++ {
			VADDPS(Mem{Base: row, Disp: v * vbytes}, acc(r, v), acc(r, v))
		}
	})
	Label(name + "_noacc")
	// + bias[r].
	TESTQ(U32(flagBias), flags)
	JZ(LabelRef(name + "_nobias"))
	pbias := Load(Param("bias"), GP64())
	for r := 0; r < mr; r++ {
		VBROADCASTSS(Mem{Base: pbias, Disp: 4 * r}, free(0))
		for v := 0; v < nrv; v++ {
			VADDPS(free(0), acc(r, v), acc(r, v))
		}
	}
	Label(name + "_nobias")
	// + res (the residual), the last vector masked unless full.
	TESTQ(U32(flagResidual), flags)
	JZ(LabelRef(name + "_nores"))
	pres := Load(Param("res"), GP64())
	addRows := func(masked bool) {
		for r := 0; r < mr; r++ {
			for v := 0; v < nrv; v++ {
				m := Mem{Base: pres, Disp: v * vbytes}
				switch {
				case !masked || v < nrv-1:
					VADDPS(m, acc(r, v), acc(r, v))
				case s.lanes == 16:
					VADDPS(m, acc(r, v), lastMask.k, acc(r, v))
				default:
					VMASKMOVPS(m, lastMask.v, free(0))
					VADDPS(free(0), acc(r, v), acc(r, v))
				}
			}
			if r < mr-1 {
				ADDQ(ldc, pres)
			}
		}
	}
	full(name + "_resfull")
	addRows(true)
	JMP(LabelRef(name + "_nores"))
	Label(name + "_resfull")
	addRows(false)
	Label(name + "_nores")
	// ReLU, plain or leaky.
	TESTQ(U32(flagReLU), flags)
	JZ(LabelRef(name + "_store"))
	zero := free(0)
	VXORPS(zero, zero, zero)
	TESTQ(U32(flagLeaky), flags)
	JNZ(LabelRef(name + "_leaky"))
	// max(0, x) with x as the second source: VMAXPS returns it when the
	// two compare equal or unordered, so -0 and NaN pass unchanged, as in
	// actScalar (x > 0 ? x : x*slope).
	for r := 0; r < mr; r++ {
		for v := 0; v < nrv; v++ {
			VMAXPS(acc(r, v), zero, acc(r, v))
		}
	}
	JMP(LabelRef(name + "_store"))
	Label(name + "_leaky")
	slope, neg := free(1), free(2)
	VBROADCASTSS(paramAddr("slope"), slope)
	for r := 0; r < mr; r++ {
		for v := 0; v < nrv; v++ {
			VMINPS(acc(r, v), zero, neg)
			VMAXPS(acc(r, v), zero, acc(r, v))
			VFMADD231PS(slope, neg, acc(r, v))
		}
	}
	Label(name + "_store")
	full(name + "_storefull")
	eachRow(func(r int) {
		for v := 0; v < nrv-1; v++ {
			VMOVUPS(acc(r, v), Mem{Base: row, Disp: v * vbytes})
		}
		m := Mem{Base: row, Disp: (nrv - 1) * vbytes}
		if s.lanes == 16 {
			VMOVUPS(acc(r, nrv-1), lastMask.k, m)
		} else {
			VMASKMOVPS(acc(r, nrv-1), lastMask.v, m)
		}
	})
	VZEROUPPER()
	RET()
	Label(name + "_storefull")
	eachRow(func(r int) {
		for v := 0; v < nrv; v++ {
			VMOVUPS(acc(r, v), Mem{Base: row, Disp: v * vbytes})
		}
	})
	VZEROUPPER()
	RET()
}

// paramAddr is the stack address of a parameter, for instructions that take
// it as a memory operand directly.
func paramAddr(name string) Mem {
	b, err := Param(name).Resolve()
	if err != nil {
		panic(err)
	}
	return b.Addr
}
