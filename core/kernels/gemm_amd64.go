//go:build goexperiment.simd && amd64 && !noasm

package kernels

import "simd/archsimd"

// The amd64 build: GEMM micro-kernels in assembly (asm_amd64.s, generated
// by _asm with avo), AVX-512 or AVX2+FMA chosen at run time by CPU
// feature, under the same blocked driver scheme as the simd build. The simd
// GEMM remains the fallback on CPUs without AVX2 and FMA, and the twin the
// tests compare with.

// asmKernel is the signature of the generated micro-kernels: a rows x
// (vectors*lanes) tile of C from rows of A read in place (lda apart) and a
// packed sliver of B, the last vector's columns masked to last (see
// gemmKernel in _asm/gemm.go).
type asmKernel func(k int, a *float32, lda int, b, c *float32, ldc int, bias, res *float32, flags int, slope float32, last int)

// Epilogue flags of the micro-kernels (_asm/gemm.go has the same values).
const (
	flagAccumulate = 1  // C += product (K slices after the first)
	flagBias       = 2  // C = product + bias[row] (the first K slice, with a bias)
	flagReLU       = 4  // then max(x, 0) (the last K slice)
	flagLeaky      = 8  // with flagReLU: x > 0 ? x : x*slope
	flagResidual   = 16 // then + res (the last K slice), before the activation
)

// asmMR is the number of rows of C of every assembly micro-kernel: 6 rows
// times 4 vectors keep 24 of AVX-512's 32 registers as accumulators.
const asmMR = 6

// Cache blocking of the assembly GEMM. A kc x nr sliver of packed B (64
// KiB with AVX-512) is reused by the asmMC rows of a block of A, whose rows
// (kc values each, 72 KiB) stay in L2 across the slivers of a panel; the kc
// x nc panel of B (1 MiB) is packed once per K slice.
const (
	asmKC       = 256
	asmKCNarrow = 1024 // measured as good as 4096 (see doc.go)
	asmMC       = 72
	asmA        = asmMC * (asmKCNarrow + 16) // the workspace's float16 staging of A
)

// winoU is the size of a workspace's buffer for Winograd's transformed
// filters: 64 output channels of F(4x4) with 128 input channels (1.2 MB,
// which stays in L2 between the transform and the GEMMs), or fewer output
// channels per chunk with more input channels (up to 512).
const winoU = 36 * (128*64 + 16)

// variant is one instruction set's set of micro-kernels.
type variant struct {
	name    string
	lanes   int
	kernels [asmMR][]asmKernel // kernels[r-1][v-1] computes r rows, v vectors of columns
	peak    func(n int)        // fmaPeak loop (see peak.go)
}

// pack packs one sliver of B from runs of src (see packSliver in
// _asm/pack.go): for each of kc rows, nseg (source offset, packed offset,
// length) triples at segs relative to src+rows[p], then zeros up to width.
// It calls the assembly directly, not through a func value, which would
// make its stack arguments escape.
func (v *variant) pack(dst *float32, width, cols int, src *float32, rows *int, kc int, segs *int, nseg int) {
	if v == variantAVX512 {
		packSliverAVX512(dst, width, cols, src, rows, kc, segs, nseg)
	} else {
		packSliverAVX2(dst, width, cols, src, rows, kc, segs, nseg)
	}
}

func (v *variant) nr() int { return len(v.kernels[0]) * v.lanes }

func (v *variant) nc() int { return 1024 / v.nr() * v.nr() }

func (v *variant) layout() wsLayout {
	return wsLayout{b: asmKC * v.nc(), a: asmA, u: winoU}
}

var (
	variantAVX512 = &variant{name: "asm-avx512", lanes: 16,
		kernels: [asmMR][]asmKernel{
			{gemm1x1AVX512, gemm1x2AVX512, gemm1x3AVX512, gemm1x4AVX512},
			{gemm2x1AVX512, gemm2x2AVX512, gemm2x3AVX512, gemm2x4AVX512},
			{gemm3x1AVX512, gemm3x2AVX512, gemm3x3AVX512, gemm3x4AVX512},
			{gemm4x1AVX512, gemm4x2AVX512, gemm4x3AVX512, gemm4x4AVX512},
			{gemm5x1AVX512, gemm5x2AVX512, gemm5x3AVX512, gemm5x4AVX512},
			{gemm6x1AVX512, gemm6x2AVX512, gemm6x3AVX512, gemm6x4AVX512},
		},
		peak: fmaPeakAVX512}
	variantAVX2 = &variant{name: "asm-avx2", lanes: 8,
		kernels: [asmMR][]asmKernel{
			{gemm1x1AVX2, gemm1x2AVX2},
			{gemm2x1AVX2, gemm2x2AVX2},
			{gemm3x1AVX2, gemm3x2AVX2},
			{gemm4x1AVX2, gemm4x2AVX2},
			{gemm5x1AVX2, gemm5x2AVX2},
			{gemm6x1AVX2, gemm6x2AVX2},
		},
		peak: fmaPeakAVX2}
)

// availableVariants lists the assembly variants this CPU runs, best first:
// AVX-512 (F, CD, BW, DQ, VL), or AVX2 with FMA and F16C (every AVX2 CPU
// has F16C; it is checked because WidenF16 uses it).
func availableVariants() []*variant {
	var vs []*variant
	if archsimd.X86.AVX512() {
		vs = append(vs, variantAVX512)
	}
	if archsimd.X86.AVX2() && archsimd.X86.FMA() && cpuidF16C() {
		vs = append(vs, variantAVX2)
	}
	return vs
}

// active is the variant the kernels use; nil means the simd GEMM. Tests
// and benchmarks set it to run each variant in turn.
var active = bestVariant()

func bestVariant() *variant {
	if vs := availableVariants(); len(vs) > 0 {
		return vs[0]
	}
	return nil
}

// hasAsm reports whether the build has the assembly GEMM; usesImageB
// whether it is active (Conv2D then hands it the image form of B).
const hasAsm = true

func usesImageB() bool { return active != nil }

func implName() string {
	if v := active; v != nil {
		return v.name
	}
	return "simd"
}

// widenF16 converts with VCVTPH2PS (F16C, or AVX-512F), whole vectors in
// assembly and the rest with the scalar twin.
func widenF16(dst []float32, src []uint16) {
	v := active
	if v == nil || len(src) == 0 {
		widenF16SIMD(dst, src)
		return
	}
	dst = dst[:len(src)]
	var n int
	if v == variantAVX512 {
		n = widenF16AVX512(&dst[0], &src[0], len(src))
	} else {
		n = widenF16AVX2(&dst[0], &src[0], len(src))
	}
	widenF16Generic(dst[n:], src[n:])
}

func gemm(ws *workspace, g *gemmArgs) {
	if v := active; v != nil {
		gemmAsm(v, ws, g)
		return
	}
	gemmSIMD(ws, g)
}

func gemmNR() int {
	if v := active; v != nil {
		return v.nr()
	}
	return simdNR()
}

func gemmMR() int {
	if active != nil {
		return asmMR
	}
	return simdMR
}

// gemmLayout covers every variant, so that a workspace serves whichever
// one is active.
func gemmLayout() wsLayout {
	l := simdLayout()
	for _, v := range []*variant{variantAVX512, variantAVX2} {
		l = l.max(v.layout())
	}
	return l
}

// gemmAsm computes C = act(A*B + bias) (see gemmArgs) with the variant v's
// micro-kernels. Loops, outermost first: nc-wide panels of B; kc-deep
// slices of K (the panel's slice packed once into nr-wide slivers, built
// first from the image for a convolution); blocks of asmMC rows of A;
// slivers; groups of asmMR rows, one micro-kernel call each. The first K
// slice adds the bias, the last applies the activation, in registers.
func gemmAsm(v *variant, ws *workspace, g *gemmArgs) {
	m, n, k := g.m, g.n, g.k
	if k == 0 {
		for i := 0; i < m; i++ {
			fillBias(g.c[i*g.ldc:i*g.ldc+n], g.bias, i)
		}
		activateRows(g, 0, m)
		return
	}
	nc := v.nc()
	// K slices of asmKC, or deeper when the panel is narrow (ResNet's 7x7
	// and 14x14 layers: one to four slivers) and so fills ws.b less: each
	// row of A is then one long run that the hardware prefetches, rather
	// than runs of 1 KiB, and C is read and written fewer times.
	// The same slices with float16 A (whose blocks are staged in ws.a),
	// so that Conv2DF16 sums in Conv2D's order.
	kcMax := asmKC
	if w := (min(n, nc) + v.lanes - 1) / v.lanes * v.lanes; w > 0 {
		kcMax = max(asmKC, min(len(ws.b)/w, asmKCNarrow))
	}
	slices := (k + kcMax - 1) / kcMax
	kcStep := (k + slices - 1) / slices
	for jc := 0; jc < n; jc += nc {
		ncur := min(nc, n-jc)
		for pc := 0; pc < k; pc += kcStep {
			kc := min(kcStep, k-pc)
			packPanel(v, ws, g, pc, kc, jc, ncur)
			for ic := 0; ic < m; ic += asmMC {
				asmBlock(v, ws, g, ic, min(asmMC, m-ic), jc, ncur, pc, kc)
			}
		}
	}
}

// asmBlock computes rows ic..ic+mcur-1, columns jc..jc+ncur-1 of C for the
// K slice pc..pc+kc-1, whose panel of B is packed in ws.b: groups of up to
// asmMR rows times each sliver, one micro-kernel call each, straight into
// C (the kernels mask the columns past ncur). Float16 A is widened into
// ws.a first, the block's rows kc apart.
func asmBlock(v *variant, ws *workspace, g *gemmArgs, ic, mcur, jc, ncur, pc, kc int) {
	L, nr := v.lanes, v.nr()
	first, last := pc == 0, pc+kc == g.k
	flags := 0
	switch {
	case !first:
		flags |= flagAccumulate
	case g.bias != nil:
		flags |= flagBias
	}
	if last && g.act.ReLU {
		flags |= flagReLU
		if g.act.Slope != 0 {
			flags |= flagLeaky
		}
	}
	if last && g.res != nil {
		flags |= flagResidual
	}
	// Row r of the block's A is a[(a0+r)*lda+k0:], for kc values.
	a, lda, a0, k0 := g.a, g.lda, ic, pc
	if g.a16 != nil {
		// Rows kc+16 apart: a multiple of 4 KiB would alias the six rows'
		// loads (and cache sets).
		lda = kc + 16
		a, a0, k0 = ws.a[:mcur*lda], 0, 0
		for r := 0; r < mcur; r++ {
			row := (ic + r) * g.lda
			widenF16(a[r*lda:r*lda+kc], g.a16[row+pc:row+pc+kc])
		}
	}
	for jr := 0; jr < ncur; jr += nr {
		cols := min(nr, ncur-jr)
		width := sliverWidth(cols, nr, L)
		kerns := v.kernels[:]
		lastLanes := cols - (width - L)
		bp := ws.b[jr*kc : jr*kc+kc*width]
		for i := 0; i < mcur; i += asmMR {
			rows := min(asmMR, mcur-i)
			ar := a[(a0+i)*lda+k0 : (a0+i+rows-1)*lda+k0+kc]
			cr := ic + i
			c := g.c[cr*g.ldc+jc+jr : (cr+rows-1)*g.ldc+jc+jr+cols]
			var bias, res *float32
			if flags&flagBias != 0 {
				bias = &g.bias[cr : cr+rows][0]
			}
			if flags&flagResidual != 0 {
				res = &g.res[cr*g.ldc+jc+jr : (cr+rows-1)*g.ldc+jc+jr+cols][0]
			}
			kerns[rows-1][width/L-1](kc, &ar[0], lda, &bp[0], &c[0], g.ldc, bias, res, flags, g.act.Slope, lastLanes)
		}
	}
}

// packPanel packs rows pc..pc+kc-1, columns jc..jc+ncur-1 of B into ws.b
// as slivers of nr columns (the last one narrower, whole vectors, zero
// padded), reading B in place or, for a convolution, from its image form.
func packPanel(v *variant, ws *workspace, g *gemmArgs, pc, kc, jc, ncur int) {
	L, nr := v.lanes, v.nr()
	// Row offsets a chunk of asmKC rows at a time.
	for p0 := 0; p0 < kc; p0 += asmKC {
		packChunk(v, ws, g, pc+p0, min(asmKC, kc-p0), p0, kc, jc, ncur)
	}
	_ = L
	_ = nr
}

// packChunk packs rows pc..pc+rows-1 of the panel (rows p0.. of its
// slivers, which hold kc rows each).
func packChunk(v *variant, ws *workspace, g *gemmArgs, pc, nrows, p0, kc, jc, ncur int) {
	L, nr := v.lanes, v.nr()
	var rowBuf [asmKC]int
	rows := rowBuf[:nrows]
	maxRow := 0
	for p := range rows {
		if g.img.on {
			rows[p] = g.img.rowOffset(&g.conv, pc+p)
		} else {
			rows[p] = (pc + p) * g.ldb
		}
		maxRow = max(maxRow, rows[p])
	}
	// One run per row for a matrix; for an image, one per output row the
	// sliver spans (at most nr+1 of one column each).
	var segBuf [3 * (64 + 2)]int
	for jr := 0; jr < ncur; jr += nr {
		cols := min(nr, ncur-jr)
		width := sliverWidth(cols, nr, L)
		segs, end := segBuf[:0], 0
		if g.img.on {
			segs, end = g.img.segments(&g.conv, g.col0+jc+jr, cols, segs)
		} else {
			segs, end = append(segs, jc+jr, 0, cols), jc+jr+cols
		}
		if maxRow+end > len(g.b) {
			panic("kernels: GEMM panel reads past B") // a broken invariant of the callers
		}
		dst := ws.b[jr*kc+p0*width : jr*kc+kc*width]
		v.pack(&dst[0], width, cols, &g.b[0], &rows[0], nrows, &segs[0], len(segs)/3)
	}
}
