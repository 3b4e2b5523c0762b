package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Tolerance of GEMM-based ops (GEMM, Conv2D, InnerProduct): float32
// accumulation in a blocked, fused-multiply-add order against a float64
// reference. The rounding error of a float32 sum of K products is bounded by
// about K*2^-24 times S = sum_k |a_ik*b_kj| in the worst case and is about
// 2^-24*S for random signs; eps = 1e-5 (about 170 ulps of S) holds for every
// K up to ResNet's 4608 with a wide margin, while one wrong or missing term
// (an indexing bug) moves the result by about S/K >= 2e-4*S at K = 4608.
const (
	gemmTol = 1e-6
	gemmEps = 1e-5
)

// gemmNaive is the reference: the triple loop of the definition in float64.
// It returns C and, per element, the scale sum |bias| + sum_k |a_ik*b_kj|.
func gemmNaive(g *gemmArgs) (c, scale []float64) {
	c = make([]float64, g.m*g.n)
	scale = make([]float64, g.m*g.n)
	for i := 0; i < g.m; i++ {
		for j := 0; j < g.n; j++ {
			var s, abs float64
			if g.bias != nil {
				s = float64(g.bias[i])
				abs = math.Abs(s)
			}
			for p := 0; p < g.k; p++ {
				t := float64(g.a[i*g.lda+p]) * float64(g.b[p*g.ldb+j])
				s += t
				abs += math.Abs(t)
			}
			c[i*g.n+j] = actRef(s, g.act)
			scale[i*g.n+j] = abs
		}
	}
	return c, scale
}

type gemmCase struct{ m, n, k int }

// gemmCases sweeps every dimension across the edges of both builds: the
// micro-tile (4 rows; 3 vectors of 4, 8 or 16 columns), the vector length,
// the K slice (64..342 deep) and the panel width (about 2040 columns), with
// 1 and odd sizes everywhere.
func gemmCases() []gemmCase {
	var cs []gemmCase
	for _, m := range []int{1, 2, 3, 4, 5, 7, 8, 9, 13} {
		cs = append(cs, gemmCase{m, 17, 9})
	}
	// (70, 140, 196, 200: 5, 9, 13 vectors of 16, spread over 3-wide slivers)
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17, 23, 24, 25, 31, 33, 36, 47, 48, 49, 50, 70, 95, 97, 140, 196, 200} {
		cs = append(cs, gemmCase{6, n, 11})
	}
	for _, k := range []int{1, 2, 3, 4, 5, 8, 63, 64, 65, 85, 86, 170, 171, 172, 341, 342, 343, 700} {
		cs = append(cs, gemmCase{5, 27, k})
	}
	cs = append(cs,
		gemmCase{255, 29, 20}, gemmCase{256, 30, 21}, gemmCase{257, 31, 19}, gemmCase{517, 9, 7}, // block of A
		gemmCase{3, 2015, 5}, gemmCase{5, 2040, 3}, gemmCase{6, 2041, 4}, gemmCase{2, 4100, 3}, // panel of B
		gemmCase{9, 3, 4608}, gemmCase{64, 49, 576}, gemmCase{37, 196, 300}, gemmCase{1, 1, 1}, // deep K, ResNet-like
	)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 12 {
		cs = append(cs, gemmCase{1 + rng.IntN(70), 1 + rng.IntN(130), 1 + rng.IntN(400)})
	}
	return cs
}

// runGemmCase fills A, B and bias, runs f into a guarded C with row stride
// ldc >= n (the gaps between rows are guards too) and checks against gemmNaive.
func runGemmCase(t *testing.T, name string, c gemmCase, pad int, withBias bool, act Act, f func(g *gemmArgs)) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(c.m*1000003+c.n*1009+c.k), uint64(pad)))
	lda, ldb, ldc := c.k+pad, c.n+pad, c.n+pad
	g := gemmArgs{m: c.m, n: c.n, k: c.k, lda: lda, ldb: ldb, ldc: ldc, act: act,
		a: randSlice(rng, c.m*lda), b: randSlice(rng, c.k*ldb)}
	if withBias {
		g.bias = randSlice(rng, c.m)
	}
	out := newGuarded(c.m * ldc)
	g.c = out.s()[:c.m*ldc]
	f(&g)
	what := fmt.Sprintf("%s m=%d n=%d k=%d pad=%d bias=%v act=%v", name, c.m, c.n, c.k, pad, withBias, act)
	out.check(t, what)
	want, scale := gemmNaive(&g)
	for i := 0; i < c.m; i++ {
		for j := 0; j < ldc; j++ {
			got := g.c[i*ldc+j]
			if j >= c.n {
				if math.Float32bits(got) != sentinelBits {
					t.Fatalf("%s: C[%d][%d] written past column n", what, i, j)
				}
				continue
			}
			if !closeTo(got, want[i*c.n+j], scale[i*c.n+j], gemmTol, gemmEps) {
				t.Fatalf("%s: C[%d][%d] = %v, want %v", what, i, j, got, want[i*c.n+j])
			}
		}
	}
}

func newTestWorkspace() workspace { return newWorkspace(make([]float32, workspaceSize())) }

// TestGemm checks each of the build's GEMMs (every assembly variant the CPU
// runs and simd, or scalar) and the portable scalar GEMM against the naive
// reference.
func TestGemm(t *testing.T) {
	ws := newTestWorkspace()
	for _, c := range gemmCases() {
		eachVariant(t, func(name string) {
			runGemmCase(t, name, c, 0, c.k%2 == 1, acts[(c.m+c.n)%len(acts)], func(g *gemmArgs) { gemm(&ws, g) })
			runGemmCase(t, name, c, 3, c.k%2 == 0, acts[(c.m+c.n+1)%len(acts)], func(g *gemmArgs) { gemm(&ws, g) })
		})
		runGemmCase(t, "generic", c, 3, c.k%2 == 1, acts[(c.m+c.n)%len(acts)], gemmGeneric)
	}
}

// TestGemmEpilogue runs every activation with and without bias across K
// slices (the bias is added in the first slice, the activation in the last).
func TestGemmEpilogue(t *testing.T) {
	ws := newTestWorkspace()
	for _, c := range []gemmCase{{7, 29, 1}, {5, 26, 400}, {4, 24, 700}, {12, 64, 600}, {13, 130, 300}} {
		for _, act := range acts {
			for _, withBias := range []bool{false, true} {
				eachVariant(t, func(name string) {
					runGemmCase(t, name, c, 1, withBias, act, func(g *gemmArgs) { gemm(&ws, g) })
				})
				runGemmCase(t, "generic", c, 0, withBias, act, gemmGeneric)
			}
		}
	}
}

// TestGemmSplit runs every worker's share of a parallel GEMM one after the
// other (as the Runner would, concurrently) for 1 to 5 workers: the shares
// must tile C exactly, in both the column and the row split.
func TestGemmSplit(t *testing.T) {
	cases := []gemmCase{{3, 1, 7}, {64, 1, 300}, {9, 7, 5}, {70, 49, 100}, {13, 500, 33}, {2, 2000, 3}}
	for _, c := range cases {
		for nw := 1; nw <= 5; nw++ {
			wss := make([]workspace, nw)
			for w := range wss {
				wss[w] = newTestWorkspace()
			}
			eachVariant(t, func(name string) {
				runGemmCase(t, fmt.Sprintf("%s split/%d", name, nw), c, 2, true, Act{ReLU: true}, func(g *gemmArgs) {
					for w := 0; w < nw; w++ {
						runGemm(g, w, nw, &wss[w])
					}
				})
			})
		}
	}
}

func TestGemvGeneric(t *testing.T) {
	for _, c := range []gemmCase{{1, 1, 1}, {5, 1, 3}, {9, 1, 33}, {17, 1, 2048}, {4, 1, 15}} {
		for _, act := range acts {
			runGemmCase(t, "gemv/"+Impl(), c, 0, true, act, func(g *gemmArgs) {
				gemv(g.m, g.k, g.a, g.lda, g.b, g.c, g.ldc, g.bias, g.act)
			})
			runGemmCase(t, "gemv/generic", c, 0, false, act, func(g *gemmArgs) {
				gemvGeneric(g.m, g.k, g.a, g.lda, g.b, g.c, g.ldc, g.bias, g.act)
			})
		}
	}
}
