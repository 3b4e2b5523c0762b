package main

import (
	"fmt"
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Winograd minimal filtering F(m x m, 3 x 3) (Lavin and Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2016): an output tile of
// m x m is A^T [(G g G^T) . (B^T d B)] A for a 3 x 3 filter g and an
// (m+2) x (m+2) input tile d. The generated functions work on 16 channels
// at once (one AVX-512 vector), one tile per call.
type winograd struct {
	name string
	m    int
	bt   [][]float64 // B^T, (m+2) x (m+2)
	g    [][]float64 // G, (m+2) x 3
	at   [][]float64 // A^T, m x (m+2)
}

// winoF4 interpolates at 0, 1, -1, 1/2, -2 and infinity rather than the
// usual 0, +-1, +-2: measured in a float32 simulation of random tiles, half
// the mean error (1.5e-7 vs 2.9e-7 of the sum of |terms|), as Barabasz et
// al. found ("Error analysis and improving the accuracy of Winograd
// convolution for deep neural networks", ACM TOMS 2020). B^T = V^-T for the
// Vandermonde matrix V of the points, each row scaled to integers (G's row
// by the inverse), A^T = V's first m columns transposed, G = its first 3.
var winoF4 = winograd{
	name: "F4",
	m:    4,
	bt: [][]float64{
		{2, -3, -4, 3, 2, 0},
		{0, -2, 1, 5, 2, 0},
		{0, -2, 5, -1, -2, 0},
		{0, 32, 16, -32, -16, 0},
		{0, 1, -2, -1, 2, 0},
		{0, 2, -3, -4, 3, 2},
	},
	g: [][]float64{
		{1.0 / 2, 0, 0},
		{1.0 / 6, 1.0 / 6, 1.0 / 6},
		{1.0 / 6, -1.0 / 6, 1.0 / 6},
		{1.0 / 15, 1.0 / 30, 1.0 / 60},
		{1.0 / 30, -1.0 / 15, 2.0 / 15},
		{0, 0, 1.0 / 2},
	},
	at: [][]float64{
		{1, 1, 1, 1, 1, 0},
		{0, 1, -1, 1.0 / 2, -2, 0},
		{0, 1, 1, 1.0 / 4, 4, 0},
		{0, 1, -1, 1.0 / 8, -8, 1},
	},
}

var winoF2 = winograd{
	name: "F2",
	m:    2,
	bt: [][]float64{
		{1, 0, -1, 0},
		{0, 1, 1, 0},
		{0, -1, 1, 0},
		{0, 1, 0, -1},
	},
	g: [][]float64{
		{1, 0, 0},
		{0.5, 0.5, 0.5},
		{0.5, -0.5, 0.5},
		{0, 0, 1},
	},
	at: [][]float64{
		{1, 1, 1, 0},
		{0, 1, -1, -1},
	},
}

func winogradKernels() {
	for _, w := range []winograd{winoF4, winoF2} {
		w.weights()
		w.input()
		w.output()
	}
	emitConstants()
}

// The float32 constants of the transforms live in one RODATA table,
// emitted at the end (emitConstants) since DATA adds to the latest GLOBL.
var (
	constTable  = Mem{Symbol: Symbol{Name: "winoConst", Static: true}, Base: StaticBase}
	constOffset = map[float32]int{}
	constOrder  []float32
)

func constant(c float64) Mem {
	f := float32(c)
	off, ok := constOffset[f]
	if !ok {
		off = 4 * len(constOrder)
		constOffset[f] = off
		constOrder = append(constOrder, f)
	}
	return constTable.Offset(off)
}

func emitConstants() {
	GLOBL("winoConst", RODATA|NOPTR)
	for i, f := range constOrder {
		// As bits: the assembler reads an integral F32 ("$(4)") as an integer.
		DATA(4*i, U32(math.Float32bits(f)))
	}
}

// lincomb emits dst = sum_k c[k]*x[k] over the nonzero coefficients: a
// move, negation or multiplication for the first term, then additions,
// subtractions or fused multiply-adds (the constant broadcast from memory).
func lincomb(dst VecPhysical, c []float64, x []VecPhysical) {
	first := true
	for k, ck := range c {
		if ck == 0 {
			continue
		}
		switch {
		case first && ck == 1:
			VMOVAPS(x[k], dst)
		case first && ck == -1:
			VXORPS(dst, dst, dst)
			VSUBPS(x[k], dst, dst)
		case first:
			VMULPS_BCST(constant(ck), x[k], dst)
		case ck == 1:
			VADDPS(x[k], dst, dst)
		case ck == -1:
			VSUBPS(x[k], dst, dst)
		default:
			VFMADD231PS_BCST(constant(ck), x[k], dst)
		}
		first = false
	}
	if first {
		VXORPS(dst, dst, dst)
	}
}

// transform2D emits Y = P X P^T for P (rows x cols) on 16-lane vectors:
// load(k, j, reg) fills X[k][j] (k, j < cols); store(i, j, reg) receives
// Y[i][j] (i, j < rows). Z = P X goes column by column through tmp (a
// rows x cols array of vectors on the stack), then Y row by row.
func transform2D(p [][]float64, tmp Mem, load func(k, j int, r VecPhysical), store func(i, j int, r VecPhysical)) {
	rows, cols := len(p), len(p[0])
	x := make([]VecPhysical, cols)
	for k := range x {
		x[k] = zmm(k)
	}
	z := make([]VecPhysical, rows)
	for i := range z {
		z[i] = zmm(16 + i)
	}
	for j := 0; j < cols; j++ {
		for k := 0; k < cols; k++ {
			load(k, j, x[k])
		}
		for i := 0; i < rows; i++ {
			lincomb(z[i], p[i], x)
			VMOVUPS(z[i], tmp.Offset(64*(i*cols+j)))
		}
	}
	for i := 0; i < rows; i++ {
		for k := 0; k < cols; k++ {
			VMOVUPS(tmp.Offset(64*(i*cols+k)), x[k])
		}
		for j := 0; j < rows; j++ {
			lincomb(z[j], p[j], x)
			store(i, j, z[j])
		}
	}
}

// weights emits
//
//	func winoWeights<F>(u *float32, uStride, ldu int, w *float32, inC int)
//
// which transforms the 3 x 3 filters of 16 output channels for every input
// channel ic: w holds them channel-blocked (w[(ic*9 + k)*16 + lane] is tap
// k of output channel lane, see transpose16); U[q] = (G g G^T)[q] of the
// 16 channels goes to u + q*uStride + ic*ldu (floats): the packed-sliver
// layout of the GEMM's B operand, ldu output channels per sliver row.
func (wg winograd) weights() {
	name := "winoWeights" + wg.name + "AVX512"
	TEXT(name, 0, "func(u *float32, uStride, ldu int, w *float32, inC int)")
	Pragma("noescape")
	Doc(name + " transforms the 3x3 filters of 16 output channels (see weights in the generator).")
	a := wg.m + 2
	tmp := AllocLocal(64 * a * 3)
	u := Load(Param("u"), GP64())
	us := Load(Param("uStride"), GP64())
	SHLQ(U8(2), us)
	ldu := Load(Param("ldu"), GP64())
	SHLQ(U8(2), ldu)
	w := Load(Param("w"), GP64())
	n := Load(Param("inC"), GP64())
	q := GP64()
	Label(name + "_ic")
	TESTQ(n, n)
	JE(LabelRef(name + "_done"))
	MOVQ(u, q)
	transform2D(wg.g, tmp,
		func(k, j int, r VecPhysical) { VMOVUPS(Mem{Base: w, Disp: 64 * (k*3 + j)}, r) },
		func(i, j int, r VecPhysical) {
			VMOVUPS(r, Mem{Base: q})
			ADDQ(us, q)
		})
	ADDQ(ldu, u)
	ADDQ(U32(64*9), w) // the next input channel's filters
	DECQ(n)
	JMP(LabelRef(name + "_ic"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// input emits
//
//	func winoInput<F>(v *float32, vStride int, src *float32, wp, groups, groupStride int)
//
// which transforms one input tile of groups x 16 channels: src points at
// the tile's top-left value in a zero-padded, channel-blocked input
// (src[(y*wp + x)*16 + lane], groups groupStride floats apart); V[q] =
// (B^T d B)[q] of channels c..c+15 goes to v + q*vStride + c (floats).
func (wg winograd) input() {
	name := "winoInput" + wg.name + "AVX512"
	TEXT(name, 0, "func(v *float32, vStride int, src *float32, wp, groups, groupStride int)")
	Pragma("noescape")
	Doc(name + " transforms one input tile (see input in the generator).")
	a := wg.m + 2
	tmp := AllocLocal(64 * a * a)
	v := Load(Param("v"), GP64())
	vs := Load(Param("vStride"), GP64())
	SHLQ(U8(2), vs)
	src := Load(Param("src"), GP64())
	wp := Load(Param("wp"), GP64())
	SHLQ(U8(6), wp) // bytes per padded row
	groups := Load(Param("groups"), GP64())
	gs := Load(Param("groupStride"), GP64())
	SHLQ(U8(2), gs)
	row, q := GP64(), GP64()
	Label(name + "_group")
	TESTQ(groups, groups)
	JE(LabelRef(name + "_done"))
	MOVQ(v, q)
	transform2D(wg.bt, tmp,
		func(k, j int, r VecPhysical) {
			// d[k][j]: src + k*wp + j vectors.
			if k == 0 {
				MOVQ(src, row)
			} else {
				ADDQ(wp, row)
			}
			VMOVUPS(Mem{Base: row, Disp: 64 * j}, r)
		},
		func(i, j int, r VecPhysical) {
			VMOVUPS(r, Mem{Base: q})
			ADDQ(vs, q)
		})
	ADDQ(gs, src)
	ADDQ(U8(64), v)
	DECQ(groups)
	JMP(LabelRef(name + "_group"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// output emits
//
//	func winoOutput<F>(out *float32, ow, groupStride int, m *float32, mStride int, bias *float32, flags, rows, cols, groups int)
//
// which transforms one tile of the products back, for groups x 16 output
// channels: M[q] of channels c..c+15 is at m + q*mStride + c; Y = A^T M A
// plus bias[c] (flags has 2), through ReLU (flags has 4), goes to the
// rows x cols pixels (at most m x m: the rest of a tile at the image's edge
// is dropped) of a channel-blocked output, out + ((i*ow + j)*16 + lane),
// groups groupStride floats apart.
func (wg winograd) output() {
	name := "winoOutput" + wg.name + "AVX512"
	TEXT(name, 0, "func(out *float32, ow, groupStride int, m *float32, mStride int, bias *float32, flags, rows, cols, groups int)")
	Pragma("noescape")
	Doc(name + " transforms one tile of products back to the output (see output in the generator).")
	a := wg.m + 2
	tmp := AllocLocal(64 * wg.m * a)
	out := Load(Param("out"), GP64())
	owb := Load(Param("ow"), GP64())
	SHLQ(U8(6), owb) // bytes per output row
	gs := Load(Param("groupStride"), GP64())
	SHLQ(U8(2), gs)
	m := Load(Param("m"), GP64())
	ms := Load(Param("mStride"), GP64())
	SHLQ(U8(2), ms)
	bias := Load(Param("bias"), GP64())
	flags := Load(Param("flags"), GP64())
	rows := Load(Param("rows"), GP64())
	cols := Load(Param("cols"), GP64())
	groups := Load(Param("groups"), GP64())
	zero, bv := zmm(30), zmm(29)
	VXORPS(zero, zero, zero)
	t, p := GP64(), GP64()
	Label(name + "_group")
	TESTQ(groups, groups)
	JE(LabelRef(name + "_done"))
	// The bias of these 16 channels, or zero.
	VXORPS(bv, bv, bv)
	TESTQ(U32(2), flags)
	JZ(LabelRef(name + "_nobias"))
	VMOVUPS(Mem{Base: bias}, bv)
	Label(name + "_nobias")
	transform2D(wg.at, tmp,
		func(k, j int, r VecPhysical) {
			IMUL3Q(U32(k*a+j), ms, t)
			VMOVUPS(Mem{Base: m, Index: t, Scale: 1}, r)
		},
		func(i, j int, r VecPhysical) {
			skip := fmt.Sprintf("%s_skip%d_%d", name, i, j)
			CMPQ(rows, U8(i))
			JLE(LabelRef(skip))
			CMPQ(cols, U8(j))
			JLE(LabelRef(skip))
			VADDPS(bv, r, r)
			TESTQ(U32(4), flags)
			JZ(LabelRef(skip + "_store"))
			VMAXPS(r, zero, r) // -0 and NaN pass unchanged (see gemmKernel)
			Label(skip + "_store")
			IMUL3Q(U8(i), owb, p)
			VMOVUPS(r, Mem{Base: out, Index: p, Scale: 1, Disp: 64 * j})
			Label(skip)
		})
	ADDQ(gs, out)
	ADDQ(U8(64), m)
	ADDQ(U8(64), bias)
	DECQ(groups)
	JMP(LabelRef(name + "_group"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}
