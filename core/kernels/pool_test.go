package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/residual-go/residual/core/shape"
)

// poolNaive is the reference, written from Caffe's pooling_layer.cpp
// (Forward_cpu) rather than from Pool2D: float64 sums, windows enumerated
// over the padded grid and filtered.
func poolNaive(p PoolParams, in []float32) []float64 {
	p = p.normalized()
	out := make([]float64, p.C*p.OutH*p.OutW)
	for c := 0; c < p.C; c++ {
		for oh := 0; oh < p.OutH; oh++ {
			for ow := 0; ow < p.OutW; ow++ {
				m, sum, count := -math.MaxFloat32, 0.0, 0
				for kh := 0; kh < p.KH; kh++ {
					for kw := 0; kw < p.KW; kw++ {
						ih, iw := oh*p.SH-p.PH+kh, ow*p.SW-p.PW+kw
						if ih < p.InH+p.PH && iw < p.InW+p.PW {
							count++ // Caffe's AVE divisor: taps inside the padded input
						}
						if ih < 0 || iw < 0 || ih >= p.InH || iw >= p.InW {
							continue
						}
						v := float64(in[(c*p.InH+ih)*p.InW+iw])
						m = math.Max(m, v)
						sum += v
					}
				}
				i := (c*p.OutH+oh)*p.OutW + ow
				if p.Max {
					out[i] = m
				} else {
					out[i] = sum / float64(count)
				}
			}
		}
	}
	return out
}

// pool describes a pooling with Caffe's output size (core/shape, ceil).
func pool(max bool, c, inH, inW, kh, kw, sh, sw, ph, pw int) PoolParams {
	out, err := shape.Pool([2]int{inH, inW}, [2]int{kh, kw}, [2]int{sh, sw}, [2]int{ph, pw}, true)
	if err != nil {
		panic(err)
	}
	return PoolParams{Max: max, C: c, InH: inH, InW: inW, KH: kh, KW: kw, SH: sh, SW: sw, PH: ph, PW: pw,
		OutH: out[0], OutW: out[1]}
}

// Tolerance: MAX is exact (a selection). AVE sums at most KH*KW values in
// float32 and divides once: within (KH*KW+1) * 2^-24 of the mean of |x| in
// the window; tol 1e-6 + 1e-6*|ref| covers windows up to 7x7 on |x| <= 1.
func TestPool2D(t *testing.T) {
	var cases []PoolParams
	for _, max := range []bool{true, false} {
		cases = append(cases,
			pool(max, 3, 112, 112, 3, 3, 2, 2, 0, 0), // ResNet pool1 (ceil: 56)
			pool(max, 5, 7, 7, 7, 7, 1, 1, 0, 0),     // global, ResNet pool5
			pool(max, 2, 9, 8, 3, 3, 2, 2, 1, 1),
			pool(max, 2, 10, 10, 3, 3, 2, 2, 1, 1), // last window half in the padding
			pool(max, 1, 6, 5, 2, 3, 2, 1, 1, 2),
			pool(max, 4, 1, 1, 1, 1, 1, 1, 0, 0),
			pool(max, 2, 13, 11, 5, 4, 3, 3, 2, 1),
			pool(max, 2, 6, 6, 2, 1, 1, 3, 1, 0), // pad_h only: width drops its last window (issue 8)
			pool(max, 2, 6, 6, 2, 1, 1, 3, 0, 0), // no pad: width keeps a window past the input
		)
	}
	runners := []*Runner{nil, NewRunner(2), NewRunner(3)}
	defer func() {
		for _, r := range runners {
			r.Close()
		}
	}()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, p := range cases {
		in := randSlice(rng, p.C*p.InH*p.InW)
		want := poolNaive(p, in)
		for _, r := range runners {
			out := newGuarded(len(want))
			Pool2D(r, p, in, out.s())
			what := fmt.Sprintf("%+v threads=%d", p, r.Threads())
			out.check(t, what)
			for i, w := range want {
				got := out.s()[i]
				if math.IsNaN(w) && math.IsNaN(float64(got)) {
					continue // AVE over a window past the input: 0/0, as in Caffe
				}
				if p.Max && float64(got) != w || !p.Max && !closeTo(got, w, w, 1e-6, 1e-6) {
					t.Fatalf("%s: out[%d] = %v, want %v", what, i, got, w)
				}
			}
		}
	}
}

// TestPool2DHand checks Caffe's AVE divisor on a 4x4 input holding 1..16,
// kernel 3, stride 2, pad 1 (out 3x3): the bottom-right window covers padded
// rows/cols 3..5, clipped to the padded input (3..4) the divisor is 2*2=4,
// while only in[3][3] = 16 is in the image, so it gives 16/4 = 4.
func TestPool2DHand(t *testing.T) {
	in := make([]float32, 16)
	for i := range in {
		in[i] = float32(i + 1)
	}
	p := pool(false, 1, 4, 4, 3, 3, 2, 2, 1, 1)
	out := make([]float32, 9)
	Pool2D(nil, p, in, out)
	want := []float32{
		14.0 / 9, 30.0 / 9, 12.0 / 6,
		57.0 / 9, 99.0 / 9, 36.0 / 6,
		27.0 / 6, 45.0 / 6, 16.0 / 4,
	}
	for i := range want {
		if math.Abs(float64(out[i]-want[i])) > 1e-6 {
			t.Fatalf("AVE out = %v, want %v", out, want)
		}
	}
	p.Max = true
	Pool2D(nil, p, in, out)
	wantMax := []float32{6, 8, 8, 14, 16, 16, 14, 16, 16}
	for i := range wantMax {
		if out[i] != wantMax[i] {
			t.Fatalf("MAX out = %v, want %v", out, wantMax)
		}
	}
}

// TestPool2DOutputSize: an output size that is not Caffe's (here the
// per-axis padding rule of issue 8, [7 3] for Caffe's [7 2]) is a broken
// invariant of the caller and panics.
func TestPool2DOutputSize(t *testing.T) {
	p := pool(true, 2, 6, 6, 2, 1, 1, 3, 1, 0)
	if p.OutH != 7 || p.OutW != 2 {
		t.Fatalf("Caffe's size is %dx%d, want 7x2", p.OutH, p.OutW)
	}
	p.OutW = 3
	defer func() {
		if recover() == nil {
			t.Error("Pool2D did not panic on an output size Caffe does not give")
		}
	}()
	Pool2D(nil, p, make([]float32, 2*6*6), make([]float32, 2*7*3))
}

// TestMaxPoolSeparable compares the separable max pooling with the direct
// window scan (maxWindow) bit for bit on inputs holding NaNs, infinities
// and signed zeros: NaNs never win, whatever the order of the passes.
func TestMaxPoolSeparable(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	special := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0, -1e-30}
	for _, p := range []PoolParams{
		pool(true, 2, 112, 112, 3, 3, 2, 2, 0, 0),
		pool(true, 2, 9, 8, 3, 3, 2, 2, 1, 1),
		pool(true, 1, 6, 5, 2, 3, 2, 1, 1, 2),
		pool(true, 2, 13, 11, 5, 4, 3, 3, 2, 1),
		pool(true, 1, 7, 7, 7, 7, 1, 1, 0, 0),
	} {
		in := randSlice(rng, p.C*p.InH*p.InW)
		for i := range in {
			if rng.IntN(7) == 0 {
				in[i] = special[rng.IntN(len(special))]
			}
		}
		ip, op := p.InH*p.InW, p.OutH*p.OutW
		for c := 0; c < p.C; c++ {
			got := newGuarded(op)
			maxPoolSeparable(&p, in[c*ip:(c+1)*ip], got.s()[:op])
			got.check(t, "maxPoolSeparable")
			for oh := 0; oh < p.OutH; oh++ {
				for ow := 0; ow < p.OutW; ow++ {
					hs, ws := oh*p.SH-p.PH, ow*p.SW-p.PW
					want := maxWindow(in[c*ip:(c+1)*ip], p.InW, max(hs, 0), min(hs+p.KH, p.InH), max(ws, 0), min(ws+p.KW, p.InW))
					if g := got.s()[oh*p.OutW+ow]; math.Float32bits(g) != math.Float32bits(want) && !(g == 0 && want == 0) {
						t.Fatalf("%+v: out[%d][%d][%d] = %v, want %v", p, c, oh, ow, g, want)
					}
				}
			}
		}
	}
}

// BenchmarkPool2D: ResNet-50's pool1 (3x3 max, stride 2, 64 x 112 x 112).
func BenchmarkPool2D(b *testing.B) {
	p := pool(true, 64, 112, 112, 3, 3, 2, 2, 0, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	in, out := randSlice(rng, p.C*p.InH*p.InW), make([]float32, p.C*p.OutH*p.OutW)
	b.ReportAllocs()
	timed(b, float64(len(out)), "Goutputs/s", true, func() { Pool2D(nil, p, in, out) })
}
