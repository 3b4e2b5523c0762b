//go:build goexperiment.simd && !wasm

package kernels

import "simd"

// The inner block of the simd GEMM (see gemm_simd.go), its packing of B and
// its micro-kernels, in the portable simd package. WebAssembly has its own,
// in assembly (gemm_wasm.go).

// gemmBlock computes the tile rows ic..ic+mcur-1, columns jc..jc+ncur-1 of
// C for the K slice pc..pc+kc-1, whose panel of B is packed in ws.b.
func gemmBlock(ws *workspace, g *gemmArgs, ic, mcur, jc, ncur, pc, kc int, first, last bool) {
	L := vecLen()
	nr := simdNR()
	m := ic + mcur
	for jr := 0; jr < ncur; jr += nr {
		cols := min(nr, ncur-jr)
		width := sliverWidth(cols, nr, L)
		bp := ws.b[jr*kc : jr*kc+kc*width]
		for i := ic; i < m; i += simdMR {
			// Rows past m repeat the last row; their results are not stored.
			a0 := g.a[i*g.lda+pc:]
			a1 := g.a[min(i+1, m-1)*g.lda+pc:]
			a2 := g.a[min(i+2, m-1)*g.lda+pc:]
			a3 := g.a[min(i+3, m-1)*g.lda+pc:]
			rows := min(simdMR, m-i)
			if cols == nr && rows == simdMR && !(last && g.act.ReLU && g.act.Slope != 0) {
				// A full tile: straight into C, the epilogue done in registers.
				kernel4x3(kc, a0, a1, a2, a3, bp, g.c[i*g.ldc+jc+jr:], g.ldc,
					biasFrom(g.bias, i), first, last && g.act.ReLU)
				continue
			}
			// A partial tile (or a leaky ReLU): into ws.tile, then the epilogue.
			if width == nr {
				kernel4x3(kc, a0, a1, a2, a3, bp, ws.tile, nr, nil, true, false)
			} else {
				for v := 0; v < width; v += L {
					kernel4x1(kc, a0, a1, a2, a3, bp[v:], width, ws.tile[v:], nr)
				}
			}
			epilogue(ws.tile, nr, g.c[i*g.ldc+jc+jr:], g.ldc,
				rows, cols, g.bias, i, first, last, g.act)
		}
	}
}

// packB copies the kc x ncur panel of B at b (row stride ldb) into dst as
// nr-column slivers: a sliver of width w holds kc rows of w values. The last
// sliver is narrower (whole vectors), its columns past ncur zero.
func packB(dst, b []float32, ldb, kc, ncur, nr, L int) {
	for jr := 0; jr < ncur; jr += nr {
		cols := min(nr, ncur-jr)
		w := sliverWidth(cols, nr, L)
		d := dst[jr*kc : jr*kc+kc*w]
		for p := 0; p < kc; p++ {
			row := d[p*w : (p+1)*w]
			copy(row, b[p*ldb+jr:p*ldb+jr+cols])
			clear(row[cols:])
		}
	}
}

// kernel4x3 is the micro-kernel: it computes the 4 x 3L product of four rows
// of A (kc values each, read in place: they are contiguous in memory, so A
// needs no packing) and a packed sliver of B (kc x 3L), and writes it to c
// (row stride ldc) with the epilogue of one K slice applied while the tile is
// in registers: on the first slice c = product + bias[r] (no bias when bias
// is nil), on later ones c += product; then ReLU (slope 0) when relu.
func kernel4x3(kc int, a0, a1, a2, a3, bp, c []float32, ldc int, bias []float32, first, relu bool) {
	var z simd.Float32s
	L := z.Len()
	nr := 3 * L
	c00, c01, c02, c10, c11, c12 := z, z, z, z, z, z
	c20, c21, c22, c30, c31, c32 := z, z, z, z, z, z
	a0, a1, a2, a3 = a0[:kc], a1[:kc], a2[:kc], a3[:kc]
	bp = bp[:kc*nr]
	for p := 0; p < kc; p++ {
		b := bp[p*nr : p*nr+nr]
		b0 := simd.LoadFloat32s(b)
		b1 := simd.LoadFloat32s(b[L:])
		b2 := simd.LoadFloat32s(b[2*L:])
		x := simd.BroadcastFloat32s(a0[p])
		c00 = x.MulAdd(b0, c00)
		c01 = x.MulAdd(b1, c01)
		c02 = x.MulAdd(b2, c02)
		x = simd.BroadcastFloat32s(a1[p])
		c10 = x.MulAdd(b0, c10)
		c11 = x.MulAdd(b1, c11)
		c12 = x.MulAdd(b2, c12)
		x = simd.BroadcastFloat32s(a2[p])
		c20 = x.MulAdd(b0, c20)
		c21 = x.MulAdd(b1, c21)
		c22 = x.MulAdd(b2, c22)
		x = simd.BroadcastFloat32s(a3[p])
		c30 = x.MulAdd(b0, c30)
		c31 = x.MulAdd(b1, c31)
		c32 = x.MulAdd(b2, c32)
	}
	r0, r1, r2, r3 := c[:nr], c[ldc:ldc+nr], c[2*ldc:2*ldc+nr], c[3*ldc:3*ldc+nr]
	switch {
	case !first:
		c00 = c00.Add(simd.LoadFloat32s(r0))
		c01 = c01.Add(simd.LoadFloat32s(r0[L:]))
		c02 = c02.Add(simd.LoadFloat32s(r0[2*L:]))
		c10 = c10.Add(simd.LoadFloat32s(r1))
		c11 = c11.Add(simd.LoadFloat32s(r1[L:]))
		c12 = c12.Add(simd.LoadFloat32s(r1[2*L:]))
		c20 = c20.Add(simd.LoadFloat32s(r2))
		c21 = c21.Add(simd.LoadFloat32s(r2[L:]))
		c22 = c22.Add(simd.LoadFloat32s(r2[2*L:]))
		c30 = c30.Add(simd.LoadFloat32s(r3))
		c31 = c31.Add(simd.LoadFloat32s(r3[L:]))
		c32 = c32.Add(simd.LoadFloat32s(r3[2*L:]))
	case bias != nil:
		bias = bias[:4]
		x := simd.BroadcastFloat32s(bias[0])
		c00, c01, c02 = c00.Add(x), c01.Add(x), c02.Add(x)
		x = simd.BroadcastFloat32s(bias[1])
		c10, c11, c12 = c10.Add(x), c11.Add(x), c12.Add(x)
		x = simd.BroadcastFloat32s(bias[2])
		c20, c21, c22 = c20.Add(x), c21.Add(x), c22.Add(x)
		x = simd.BroadcastFloat32s(bias[3])
		c30, c31, c32 = c30.Add(x), c31.Add(x), c32.Add(x)
	}
	if relu {
		c00, c01, c02 = c00.Max(z), c01.Max(z), c02.Max(z)
		c10, c11, c12 = c10.Max(z), c11.Max(z), c12.Max(z)
		c20, c21, c22 = c20.Max(z), c21.Max(z), c22.Max(z)
		c30, c31, c32 = c30.Max(z), c31.Max(z), c32.Max(z)
	}
	c00.Store(r0)
	c01.Store(r0[L:])
	c02.Store(r0[2*L:])
	c10.Store(r1)
	c11.Store(r1[L:])
	c12.Store(r1[2*L:])
	c20.Store(r2)
	c21.Store(r2[L:])
	c22.Store(r2[2*L:])
	c30.Store(r3)
	c31.Store(r3[L:])
	c32.Store(r3[2*L:])
	clearUpper()
}

// kernel4x1 is the micro-kernel for the narrow last sliver: t (row stride
// ldt) = the 4 x L product of four rows of A and one vector column of a
// packed sliver of B whose rows are ldb apart.
func kernel4x1(kc int, a0, a1, a2, a3, bp []float32, ldb int, t []float32, ldt int) {
	var z simd.Float32s
	L := z.Len()
	c0, c1, c2, c3 := z, z, z, z
	a0, a1, a2, a3 = a0[:kc], a1[:kc], a2[:kc], a3[:kc]
	for p := 0; p < kc; p++ {
		b0 := simd.LoadFloat32s(bp[p*ldb : p*ldb+L])
		c0 = simd.BroadcastFloat32s(a0[p]).MulAdd(b0, c0)
		c1 = simd.BroadcastFloat32s(a1[p]).MulAdd(b0, c1)
		c2 = simd.BroadcastFloat32s(a2[p]).MulAdd(b0, c2)
		c3 = simd.BroadcastFloat32s(a3[p]).MulAdd(b0, c3)
	}
	c0.Store(t[0:])
	c1.Store(t[ldt:])
	c2.Store(t[2*ldt:])
	c3.Store(t[3*ldt:])
	clearUpper()
}
