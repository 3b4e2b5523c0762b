//go:build goexperiment.simd

package kernels

import "simd"

// The simd build: a blocked, packed GEMM in the style of Goto and van de
// Geijn over the portable simd package. Vector values never cross a function
// boundary (see the BUGs in `go doc simd`): every function below loads,
// computes and stores within itself and passes slices. The inner block
// (gemmBlock), the packing of B (packB) and the micro-kernels are in
// gemm_kernel_simd.go, and for WebAssembly in gemm_wasm.go.

// vecLen is the number of float32 lanes of a simd.Float32s: 4 with WASM
// SIMD128, 8 with AVX2, 16 with AVX-512. It is fixed for one execution but
// not at compile time, so it is asked for at run time (never in a var
// initializer).
func vecLen() int {
	var z simd.Float32s
	return z.Len()
}

// gemmNRVecs is the width of the micro-tile in vectors: the micro-kernel
// keeps simdMR x gemmNRVecs = 12 accumulators, plus 3 loads of B and one
// broadcast of A, within the 16 vector registers of AVX2 and of the x86
// hosts that run WASM SIMD128.
const gemmNRVecs = 3

// simdNR is the micro-tile width in columns of C.
func simdNR() int { return gemmNRVecs * vecLen() }

// simdMR is the number of rows of C of the micro-tile.
const simdMR = 4

// Cache blocking. A kc x nr sliver of packed B (at most 16 KiB) stays in L1
// while the micro-kernel walks a block of gemmMC rows of A (kc values of
// each: at most 256 KiB, kept in L2 across the slivers); the kc x nc panel
// of B (about 1.4 MiB with AVX2) is packed once per K slice.
const gemmMC = 256

func gemmKC() int { return max(64, 4096/simdNR()) }

func gemmNC() int { return 2048 / simdNR() * simdNR() }

// simdLayout is the simd GEMM's share of a workspace.
func simdLayout() wsLayout {
	kc, nc := gemmKC(), gemmNC()
	return wsLayout{b: kc * nc, col: kc * nc, tile: simdMR * simdNR()}
}

// packsIm2col reports whether the GEMM builds the im2col matrix of a
// convolution itself (gemmArgs.fromImage): gemm does, one kc x nc panel at
// a time, so that a convolution needs no scratch for the whole matrix.
const packsIm2col = true

// gemmSIMD computes C = act(A*B + bias) (see gemmArgs) with the workspace ws.
//
// Loops, outermost first: nc-wide panels of B; kc-deep slices of K (the
// panel's slice packed once, into nr-wide slivers); blocks of gemmMC rows of
// A; nr-wide slivers of the panel, each staying in L1 while the block's rows
// stream past it; groups of simdMR rows, each one micro-kernel call writing a
// tile of C. A is read in place: each of the micro-kernel's four rows is a
// contiguous run of kc values, which the hardware prefetches as well as a
// packed copy, and packing A would cost as much as the product when N is
// small (ResNet's 7x7 layers). The first K slice adds the bias, the last
// applies the activation, while the tile is still in registers.
func gemmSIMD(ws *workspace, g *gemmArgs) {
	m, n, k := g.m, g.n, g.k
	if k == 0 {
		for i := 0; i < m; i++ {
			fillBias(g.c[i*g.ldc:i*g.ldc+n], g.bias, i)
		}
		activateRows(g, 0, m)
		return
	}
	L := vecLen()
	nr, nc := simdNR(), gemmNC()
	// Split K into equal slices no deeper than gemmKC.
	slices := (k + gemmKC() - 1) / gemmKC()
	kcStep := (k + slices - 1) / slices
	for jc := 0; jc < n; jc += nc {
		ncur := min(nc, n-jc)
		for pc := 0; pc < k; pc += kcStep {
			kc := min(kcStep, k-pc)
			first, last := pc == 0, pc+kc == k
			if g.fromImage {
				// The panel of the im2col matrix, row by row (long runs
				// of the input), then packed like any B.
				col := ws.col[:kc*ncur]
				for p := 0; p < kc; p++ {
					im2colRange(&g.conv, g.b, pc+p, g.col0+jc, col[p*ncur:(p+1)*ncur])
				}
				packB(ws.b, col, ncur, kc, ncur, nr, L)
			} else {
				packB(ws.b, g.b[pc*g.ldb+jc:], g.ldb, kc, ncur, nr, L)
			}
			for ic := 0; ic < m; ic += gemmMC {
				mcur := min(gemmMC, m-ic)
				gemmBlock(ws, g, ic, mcur, jc, ncur, pc, kc, first, last)
			}
		}
	}
}

// sliverWidth is the packed width of a sliver holding cols columns: nr, or
// for the last, narrower sliver, cols rounded up to whole vectors.
func sliverWidth(cols, nr, L int) int {
	if cols == nr {
		return nr
	}
	return (cols + L - 1) / L * L
}

// epilogue moves a rows x cols tile t (row stride ldt) into C at c (row
// stride ldc): on the first K slice C = t + bias[i0+r], later C += t; on the
// last K slice the activation is applied.
func epilogue(t []float32, ldt int, c []float32, ldc, rows, cols int, bias []float32, i0 int, first, last bool, act Act) {
	var zero simd.Float32s
	L := zero.Len()
	relu := last && act.ReLU
	leaky := relu && act.Slope != 0
	for r := 0; r < rows; r++ {
		tr := t[r*ldt : r*ldt+ldt] // ldt >= cols rounded up to whole vectors
		cr := c[r*ldc : r*ldc+cols]
		base := zero
		if bias != nil {
			base = simd.BroadcastFloat32s(bias[i0+r])
		}
		for j := 0; j < cols; j += L {
			full := j+L <= cols
			v := simd.LoadFloat32s(tr[j:])
			switch {
			case first:
				v = v.Add(base)
			case full:
				v = v.Add(simd.LoadFloat32s(cr[j:]))
			default:
				old, _ := simd.LoadFloat32sPart(cr[j:])
				v = v.Add(old)
			}
			if leaky {
				v = v.Min(zero).MulAdd(simd.BroadcastFloat32s(act.Slope), v.Max(zero))
			} else if relu {
				v = v.Max(zero)
			}
			if full {
				v.Store(cr[j:])
			} else {
				v.StorePart(cr[j:])
			}
		}
	}
	clearUpper()
}

// gemv computes y[i*ldy] = act(dot(row i of A, x) + bias[i]) for i < m,
// four rows at a time sharing each vector load of x.
func gemv(m, k int, a []float32, lda int, x, y []float32, ldy int, bias []float32, act Act) {
	var z simd.Float32s
	L := z.Len()
	x = x[:k]
	kv := k - k%L
	var buf [4 * 16]float32 // lanes of the four accumulators (L <= 16)
	i := 0
	for ; i+4 <= m; i += 4 {
		r0 := a[i*lda : i*lda+k]
		r1 := a[(i+1)*lda : (i+1)*lda+k]
		r2 := a[(i+2)*lda : (i+2)*lda+k]
		r3 := a[(i+3)*lda : (i+3)*lda+k]
		s0, s1, s2, s3 := z, z, z, z
		for p := 0; p < kv; p += L {
			xv := simd.LoadFloat32s(x[p:])
			s0 = simd.LoadFloat32s(r0[p:]).MulAdd(xv, s0)
			s1 = simd.LoadFloat32s(r1[p:]).MulAdd(xv, s1)
			s2 = simd.LoadFloat32s(r2[p:]).MulAdd(xv, s2)
			s3 = simd.LoadFloat32s(r3[p:]).MulAdd(xv, s3)
		}
		s0.Store(buf[0:])
		s1.Store(buf[L:])
		s2.Store(buf[2*L:])
		s3.Store(buf[3*L:])
		clearUpper()
		for r := 0; r < 4; r++ {
			row := a[(i+r)*lda : (i+r)*lda+k]
			y[(i+r)*ldy] = finishDot(buf[r*L:(r+1)*L], row[kv:], x[kv:], bias, i+r, act)
		}
	}
	for ; i < m; i++ {
		row := a[i*lda : i*lda+k]
		s := z
		for p := 0; p < kv; p += L {
			s = simd.LoadFloat32s(row[p:]).MulAdd(simd.LoadFloat32s(x[p:]), s)
		}
		s.Store(buf[0:])
		clearUpper()
		y[i*ldy] = finishDot(buf[:L], row[kv:], x[kv:], bias, i, act)
	}
}

// finishDot adds up the lanes of a dot product, its scalar tail, the bias
// and applies the activation.
func finishDot(lanes, rowTail, xTail, bias []float32, i int, act Act) float32 {
	var s float32
	for _, v := range lanes {
		s += v
	}
	for p, v := range rowTail {
		s += v * xTail[p]
	}
	if bias != nil {
		s += bias[i]
	}
	return actScalar(s, act)
}

// activate applies act elementwise; out may alias in.
func activate(in, out []float32, act Act) {
	if !act.ReLU {
		copy(out[:len(in)], in)
		return
	}
	var zero simd.Float32s
	L := zero.Len()
	out = out[:len(in)]
	i := 0
	if act.Slope != 0 {
		slope := simd.BroadcastFloat32s(act.Slope)
		for ; i+L <= len(in); i += L {
			v := simd.LoadFloat32s(in[i:])
			v.Min(zero).MulAdd(slope, v.Max(zero)).Store(out[i:])
		}
	} else {
		for ; i+L <= len(in); i += L {
			simd.LoadFloat32s(in[i:]).Max(zero).Store(out[i:])
		}
	}
	clearUpper()
	activateGeneric(in[i:], out[i:], act)
}

// addAct computes out = act(a + b) elementwise; out may alias a or b.
func addAct(a, b, out []float32, act Act) {
	var zero simd.Float32s
	L := zero.Len()
	b, out = b[:len(a)], out[:len(a)]
	relu, leaky := act.ReLU, act.ReLU && act.Slope != 0
	slope := simd.BroadcastFloat32s(act.Slope)
	i := 0
	for ; i+L <= len(a); i += L {
		v := simd.LoadFloat32s(a[i:]).Add(simd.LoadFloat32s(b[i:]))
		if leaky {
			v = v.Min(zero).MulAdd(slope, v.Max(zero))
		} else if relu {
			v = v.Max(zero)
		}
		v.Store(out[i:])
	}
	clearUpper()
	addActGeneric(a[i:], b[i:], out[i:], act)
}
