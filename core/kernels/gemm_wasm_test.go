//go:build goexperiment.simd && wasm

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The assembly micro-kernels against a scalar twin that does the same
// float32 arithmetic in the same order (a product rounded, then added to
// the running sum, k ascending; WebAssembly has no fused multiply-add, so
// the Go compiler cannot fuse the twin's either), compared bit for bit.
// TestGemm and TestConv2D cover the kernels inside the GEMM against the
// float64 reference under doc.go's tolerances.

// kernelTwin computes one element of a micro-kernel's tile.
func kernelTwin(a []float32, b []float32, ldb, j int, kc int) float32 {
	var s float32
	for p := 0; p < kc; p++ {
		s += float32(a[p] * b[p*ldb+j])
	}
	return s
}

// TestWasmSliver4x12 runs the full kernel through sliver4x12: columns of
// 1 to 3 tiles, every epilogue, A and C with guarded gaps between rows.
func TestWasmSliver4x12(t *testing.T) {
	const nr = 12
	rng := rand.New(rand.NewPCG(3, 4))
	nan := float32(math.NaN())
	for _, kc := range []int{1, 2, 3, 4, 5, 7, 8, 9, 64, 341, 342} {
		for _, groups := range []int{1, 2, 3} {
			for flags := 0; flags < 8; flags++ {
				if flags&wasmAccumulate != 0 && flags&wasmBias != 0 {
					continue // the driver never asks for both
				}
				name := fmt.Sprintf("kc=%d groups=%d flags=%d", kc, groups, flags)
				m := 4*groups + 1 // a row above the tiles is left out
				const pc, j0 = 2, 3
				g := gemmArgs{m: m, k: pc + kc + 1, lda: pc + kc + 2, ldc: j0 + nr + 5}
				// A: NaN around the kc values each tile reads.
				g.a = make([]float32, m*g.lda)
				for i := range g.a {
					g.a[i] = nan
				}
				for r := 1; r < m; r++ {
					for p := 0; p < kc; p++ {
						g.a[r*g.lda+pc+p] = rng.Float32()*2 - 1
					}
				}
				b := randSlice(rng, kc*nr)
				g.bias = randSlice(rng, m)
				// C: NaN everywhere but the tiles, which hold old values.
				g.c = make([]float32, m*g.ldc+7)
				old := randSlice(rng, len(g.c))
				for i := range g.c {
					g.c[i] = nan
				}
				for r := 1; r < m; r++ {
					for c := j0; c < j0+nr; c++ {
						g.c[r*g.ldc+c] = old[r*g.ldc+c]
					}
				}
				if flags&wasmBias == 0 {
					g.bias = nil
				}
				sliver4x12(&g, 1, groups, pc, kc, b, j0, flags&wasmAccumulate == 0, flags&wasmReLU != 0)
				for i, v := range g.c {
					r, c := i/g.ldc, i%g.ldc
					if r < 1 || r >= m || c < j0 || c >= j0+nr {
						if !math.IsNaN(float64(v)) {
							t.Fatalf("%s: guard at row %d column %d overwritten with %v", name, r, c, v)
						}
						continue
					}
					want := kernelTwin(g.a[r*g.lda+pc:], b, nr, c-j0, kc)
					switch {
					case flags&wasmAccumulate != 0:
						want = old[i] + want
					case flags&wasmBias != 0:
						want += g.bias[r]
					}
					if flags&wasmReLU != 0 {
						want = max(want, 0)
					}
					if v != want {
						t.Fatalf("%s: C[%d][%d] = %v, want %v", name, r, c, v, want)
					}
				}
			}
		}
	}
}

// TestWasmKernel4x3 runs the full kernel for one tile (the driver's path for
// partial tiles) with repeated rows of A, into a guarded tile.
func TestWasmKernel4x3(t *testing.T) {
	const nr = 12
	rng := rand.New(rand.NewPCG(7, 8))
	nan := float32(math.NaN())
	for _, kc := range []int{1, 2, 3, 6, 341} {
		r0, r1 := randSlice(rng, kc), randSlice(rng, kc)
		rows := [4][]float32{r0, r1, r1, r1}
		b := randSlice(rng, kc*nr)
		const ldt, pad = nr + 2, 3
		tbuf := make([]float32, pad+4*ldt+pad)
		for i := range tbuf {
			tbuf[i] = nan
		}
		kernel4x3(kc, rows[0], rows[1], rows[2], rows[3], b, tbuf[pad:], ldt)
		for i, v := range tbuf {
			r, j := (i-pad)/ldt, (i-pad)%ldt
			if i < pad || r >= 4 || j >= nr {
				if !math.IsNaN(float64(v)) {
					t.Fatalf("kc=%d: guard at %d overwritten with %v", kc, i, v)
				}
				continue
			}
			if want := kernelTwin(rows[r], b, nr, j, kc); v != want {
				t.Fatalf("kc=%d: t[%d][%d] = %v, want %v", kc, r, j, v, want)
			}
		}
	}
}

func TestWasmKernel4x4(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	guard := float32(math.NaN())
	for _, kc := range []int{1, 2, 3, 5, 64, 341} {
		for _, ldb := range []int{4, 8} {
			rows := [4][]float32{}
			for r := range rows {
				rows[r] = randSlice(rng, kc)
			}
			// The kernel reads the first 4 of each ldb values of B: the rest hold NaN.
			b := make([]float32, kc*ldb)
			for p := 0; p < kc; p++ {
				for j := 0; j < ldb; j++ {
					b[p*ldb+j] = guard
					if j < 4 {
						b[p*ldb+j] = rng.Float32()*2 - 1
					}
				}
			}
			const ldt, pad = 12, 3
			tbuf := make([]float32, pad+4*ldt+pad)
			for i := range tbuf {
				tbuf[i] = guard
			}
			kernel4x1(kc, rows[0], rows[1], rows[2], rows[3], b, ldb, tbuf[pad:], ldt)
			for i, v := range tbuf {
				r, j := (i-pad)/ldt, (i-pad)%ldt
				if i < pad || r >= 4 || j >= 4 {
					if !math.IsNaN(float64(v)) {
						t.Fatalf("kc=%d ldb=%d: guard at %d overwritten with %v", kc, ldb, i, v)
					}
					continue
				}
				if want := kernelTwin(rows[r], b, ldb, j, kc); v != want {
					t.Fatalf("kc=%d ldb=%d: t[%d][%d] = %v, want %v", kc, ldb, r, j, v, want)
				}
			}
		}
	}
}

// TestWasmKernelBounds checks that the wrappers refuse operands shorter
// than what the assembly would touch, before touching anything.
func TestWasmKernelBounds(t *testing.T) {
	a := make([]float32, 8)
	b := make([]float32, 8*12)
	c := make([]float32, 4*12)
	g := func() *gemmArgs {
		return &gemmArgs{m: 8, k: 8, lda: 8, ldc: 12, a: make([]float32, 64), c: make([]float32, 96), bias: make([]float32, 8)}
	}
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"short A row", func() { kernel4x3(8, a, a, a[1:], a, b, c, 12) }},
		{"short B", func() { kernel4x3(8, a, a, a, a, b[1:], c, 12) }},
		{"short tile", func() { kernel4x3(8, a, a, a, a, b, c[1:], 12) }},
		{"kc 0", func() { kernel4x3(0, a, a, a, a, b, c, 12) }},
		{"narrow short B", func() { kernel4x1(8, a, a, a, a, b[:7*12+3], 12, c, 12) }},
		{"narrow short t", func() { kernel4x1(8, a, a, a, a, b, 12, c[:3*12+3], 12) }},
		{"sliver short A", func() { x := g(); x.a = x.a[:63]; sliver4x12(x, 0, 2, 0, 8, b, 0, true, false) }},
		{"sliver short C", func() { x := g(); x.c = x.c[:95]; sliver4x12(x, 0, 2, 0, 8, b, 0, true, false) }},
		{"sliver short bias", func() { x := g(); x.bias = x.bias[:7]; sliver4x12(x, 0, 2, 0, 8, b, 0, true, false) }},
		{"sliver short B", func() { sliver4x12(g(), 0, 2, 0, 8, b[:95], 0, true, false) }},
		{"pack short src", func() { packB(make([]float32, 96), b[:95], 12, 8, 12, 12, 4) }},
		{"pack short dst", func() { packB(make([]float32, 95), b, 12, 8, 12, 12, 4) }},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", tc.name)
				}
			}()
			tc.f()
		}()
	}
}
