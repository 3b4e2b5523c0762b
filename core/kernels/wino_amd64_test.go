//go:build goexperiment.simd && amd64 && !noasm

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

var winoCases = []struct {
	name string
	p    ConvParams
}{
	{"16->64 8x8", conv(16, 8, 8, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
	{"32->128 14x14 (partial tiles)", conv(32, 14, 14, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
	{"64->64 28x28", conv(64, 28, 28, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
	{"16->64 7x5 pad 0", conv(16, 7, 5, 64, 3, 3, 1, 1, 0, 0, 1, 1, 1)},
	{"16->64 5x9 pad 2", conv(16, 5, 9, 64, 3, 3, 1, 1, 2, 2, 1, 1, 1)},
	{"48->192 1x1 pad 1", conv(48, 1, 1, 192, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
	{"512->64 7x7 (deep)", conv(512, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
}

// TestWinograd checks both tile sizes against the float64 reference with
// the Winograd tolerance (see doc.go), with 1 to 3 workers, guarded outputs
// and scratch, and reports the largest error relative to the scale.
func TestWinograd(t *testing.T) {
	if active != variantAVX512 {
		t.Skip("Winograd runs with the AVX-512 variant only")
	}
	defer func() { winoForce, winoTiles = -1, -1 }()
	runners := []*Runner{nil, NewRunner(2), NewRunner(3)}
	defer func() {
		for _, r := range runners {
			r.Close()
		}
	}()
	for _, m := range []int{4, 2} {
		winoForce = m
		worst := 0.0
		for i, c := range winoCases {
			for j, r := range runners {
				// The workers split the GEMMs by output channels, then by tiles.
				for split := range 2 {
					if split == 1 && r == nil {
						continue
					}
					winoTiles = split
					act := acts[(i+j+split)%2] // none or ReLU (leaky is not eligible)
					name := fmt.Sprintf("F(%d) %s split=%s", m, c.name, []string{"chunks", "tiles"}[split])
					worst = max(worst, runWinoCase(t, r, name, c.p, (i+j)%2 == 0, act))
				}
			}
		}
		t.Logf("F(%dx%d, 3x3): largest |error| / scale = %.3g", m, m, worst)
	}
}

// Winograd tolerance: eps times the scale (sum of |terms|) of each output.
const winoEps = 2e-5

func runWinoCase(t *testing.T, r *Runner, name string, p ConvParams, withBias bool, act Act) float64 {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(p.InC*7919+p.OutC*31+p.InH), 9))
	in := randSlice(rng, p.InC*p.InH*p.InW)
	w := randSlice(rng, p.OutC*p.InC*9)
	var bias []float32
	if withBias {
		bias = randSlice(rng, p.OutC)
	}
	if winoPlan(&p, act) == 0 {
		t.Fatalf("%s: not run with Winograd", name)
	}
	out := newGuarded(p.OutC * p.OutH * p.OutW)
	scratch := newGuarded(ConvScratchSize(p))
	Conv2D(r, p, in, w, bias, out.s(), scratch.s(), act)
	what := fmt.Sprintf("%s threads=%d bias=%v act=%v", name, r.Threads(), withBias, act)
	out.check(t, what+" (out)")
	scratch.check(t, what+" (scratch)")
	want, scale := convNaive(p, in, w, bias, act)
	worst := 0.0
	for i, got := range out.s() {
		err := math.Abs(float64(got) - want[i])
		if !(err <= gemmTol+scale[i]*winoEps) {
			t.Fatalf("%s: out[%d] = %v, want %v (scale %v)", what, i, got, want[i], scale[i])
		}
		worst = max(worst, err/scale[i])
	}
	return worst
}

// BenchmarkWinograd compares the direct (GEMM) convolution with both
// Winograd tile sizes on ResNet-50's 3x3 layers, with one goroutine and
// with two (the GEMM phase split by chunks of output channels or by tiles).
func BenchmarkWinograd(b *testing.B) {
	if active != variantAVX512 {
		b.Skip("Winograd runs with the AVX-512 variant only")
	}
	defer func() { winoForce, winoTiles = -1, -1 }()
	two := NewRunner(2)
	defer two.Close()
	for _, l := range []struct {
		name string
		p    ConvParams
	}{
		{"res2_branch2b", conv(64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
		{"res3_branch2b", conv(128, 28, 28, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
		{"res4_branch2b", conv(256, 14, 14, 256, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
		{"res5_branch2b", conv(512, 7, 7, 512, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
	} {
		p := l.p
		rng := rand.New(rand.NewPCG(1, 2))
		in, w, bias := randSlice(rng, p.InC*p.InH*p.InW), randSlice(rng, p.OutC*p.InC*9), randSlice(rng, p.OutC)
		out := make([]float32, p.OutC*p.OutH*p.OutW)
		scratch := make([]float32, ConvScratchSize(p))
		flops := 2 * float64(p.OutC*p.OutH*p.OutW*p.InC*9)
		for _, m := range []int{0, 2, 4} {
			name := "direct"
			if m > 0 {
				name = fmt.Sprintf("F%d", m)
			}
			for _, r := range []*Runner{nil, two} {
				splits := []string{""}
				if r != nil && m > 0 {
					splits = []string{"/split=chunks", "/split=tiles"}
				}
				for i, split := range splits {
					b.Run(fmt.Sprintf("%s/%s/threads=%d%s", l.name, name, r.Threads(), split), func(b *testing.B) {
						winoForce, winoTiles = m, -1
						if split != "" {
							winoTiles = i
						}
						b.ReportAllocs()
						timed(b, flops, "GFLOP/s", r == nil, func() { Conv2D(r, p, in, w, bias, out, scratch, Act{ReLU: true}) })
					})
				}
			}
		}
	}
}

// TestTranspose16 checks every block shape up to 16 x 16 with strided,
// guarded destinations: dst[j][i] = src[i][j] inside, nothing outside.
func TestTranspose16(t *testing.T) {
	if !availableVariantsHave(variantAVX512) {
		t.Skip("no AVX-512")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const ss, ds = 21, 19
	src := randSlice(rng, 16*ss)
	for rows := 1; rows <= 16; rows++ {
		for cols := 1; cols <= 16; cols++ {
			dst := newGuarded(16 * ds)
			d := dst.s()
			transpose16AVX512(&d[0], ds, &src[0], ss, rows, cols)
			what := fmt.Sprintf("transpose16 %dx%d", rows, cols)
			dst.check(t, what)
			for j := 0; j < 16; j++ {
				for i := 0; i < ds; i++ {
					got := math.Float32bits(d[j*ds+i])
					want := uint32(sentinelBits)
					if j < cols && i < rows {
						want = math.Float32bits(src[i*ss+j])
					}
					if got != want {
						t.Fatalf("%s: dst[%d][%d] = %#x, want %#x", what, j, i, got, want)
					}
				}
			}
		}
	}
}

func availableVariantsHave(v *variant) bool {
	for _, a := range availableVariants() {
		if a == v {
			return true
		}
	}
	return false
}
