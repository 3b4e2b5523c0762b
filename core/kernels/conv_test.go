package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/x448/float16"
)

// convNaive is the reference: the definition of Caffe's convolution as
// direct loops in float64 (no im2col, no GEMM), with the scale sum of |terms|
// for the tolerance (the GEMM tolerance applies: a convolution is one sum of
// K = InC/G*KH*KW products per output).
func convNaive(p ConvParams, in, w, bias []float32, act Act) (out, scale []float64) {
	p = p.normalized()
	icg, ocg := p.InC/p.Group, p.OutC/p.Group
	out = make([]float64, p.OutC*p.OutH*p.OutW)
	scale = make([]float64, len(out))
	for oc := 0; oc < p.OutC; oc++ {
		g := oc / ocg
		for oh := 0; oh < p.OutH; oh++ {
			for ow := 0; ow < p.OutW; ow++ {
				var s, abs float64
				if bias != nil {
					s, abs = float64(bias[oc]), math.Abs(float64(bias[oc]))
				}
				for ic := 0; ic < icg; ic++ {
					for kh := 0; kh < p.KH; kh++ {
						for kw := 0; kw < p.KW; kw++ {
							ih := oh*p.SH - p.PH + kh*p.DH
							iw := ow*p.SW - p.PW + kw*p.DW
							if ih < 0 || ih >= p.InH || iw < 0 || iw >= p.InW {
								continue // zero padding
							}
							x := float64(in[((g*icg+ic)*p.InH+ih)*p.InW+iw])
							t := x * float64(w[((oc*icg+ic)*p.KH+kh)*p.KW+kw])
							s += t
							abs += math.Abs(t)
						}
					}
				}
				i := (oc*p.OutH+oh)*p.OutW + ow
				out[i], scale[i] = actRef(s, act), abs
			}
		}
	}
	return out, scale
}

// conv builds ConvParams with Caffe's output size.
func conv(inC, inH, inW, outC, kh, kw, sh, sw, ph, pw, dh, dw, group int) ConvParams {
	return ConvParams{
		InC: inC, InH: inH, InW: inW, OutC: outC,
		OutH: (inH+2*ph-(dh*(kh-1)+1))/sh + 1, OutW: (inW+2*pw-(dw*(kw-1)+1))/sw + 1,
		KH: kh, KW: kw, SH: sh, SW: sw, PH: ph, PW: pw, DH: dh, DW: dw, Group: group,
	}
}

var convCases = []struct {
	name string
	p    ConvParams
}{
	{"1x1", conv(8, 5, 7, 6, 1, 1, 1, 1, 0, 0, 1, 1, 1)},
	{"1x1/odd", conv(13, 3, 3, 29, 1, 1, 1, 1, 0, 0, 1, 1, 1)},
	{"1x1/stride2", conv(16, 9, 8, 12, 1, 1, 2, 2, 0, 0, 1, 1, 1)}, // ResNet projection shortcut
	{"1x1/pad1", conv(3, 4, 4, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1)},
	{"3x3/pad1", conv(16, 14, 14, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
	{"3x3/stride2", conv(8, 15, 15, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1)},
	{"7x7/stride2/pad3", conv(3, 31, 29, 16, 7, 7, 2, 2, 3, 3, 1, 1, 1)}, // conv1 shape, small
	{"group2", conv(8, 6, 6, 10, 3, 3, 1, 1, 1, 1, 1, 1, 2)},
	{"group4/depthwise-ish", conv(4, 5, 6, 8, 3, 3, 1, 1, 1, 1, 1, 1, 4)},
	{"dilation2", conv(5, 11, 9, 7, 3, 3, 1, 1, 2, 2, 2, 2, 1)},
	{"asymmetric", conv(3, 10, 13, 5, 2, 4, 3, 1, 0, 2, 1, 2, 1)},
	{"kernel=input", conv(6, 4, 4, 3, 4, 4, 1, 1, 0, 0, 1, 1, 1)},
	{"pad>kernel/2", conv(2, 3, 3, 3, 3, 3, 1, 2, 2, 3, 1, 1, 1)},
	{"1x1 spatial out", conv(32, 3, 3, 9, 3, 3, 1, 1, 0, 0, 1, 1, 1)},
	{"wide", conv(4, 3, 700, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
	{"deep", conv(512, 3, 3, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1)}, // K = 4608 as in res5
	// More output pixels than one packed panel of B holds (2048), several
	// output rows per panel, a panel edge inside an output row.
	{"many panels", conv(3, 45, 100, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
	{"many panels/stride2", conv(2, 60, 121, 6, 5, 5, 1, 2, 2, 2, 1, 1, 1)},
}

func runConvCase(t *testing.T, r *Runner, name string, p ConvParams, withBias bool, act Act) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(p.InC*7919+p.OutC*31+p.KH), 7))
	in := randSlice(rng, p.InC*p.InH*p.InW)
	w := randSlice(rng, p.OutC*p.InC/max(p.Group, 1)*p.KH*p.KW)
	var bias []float32
	if withBias {
		bias = randSlice(rng, p.OutC)
	}
	out := newGuarded(p.OutC * p.OutH * p.OutW)
	scratch := newGuarded(ConvScratchSize(p))
	Conv2D(r, p, in, w, bias, out.s(), scratch.s(), act)
	what := fmt.Sprintf("%s threads=%d bias=%v act=%v", name, r.Threads(), withBias, act)
	out.check(t, what+" (out)")
	scratch.check(t, what+" (scratch)")
	want, scale := convNaive(p, in, w, bias, act)
	got := out.s()
	for i := range want {
		if !closeTo(got[i], want[i], scale[i], gemmTol, gemmEps) {
			t.Fatalf("%s: out[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

func TestConv2D(t *testing.T) {
	runners := []*Runner{nil, NewRunner(1), NewRunner(2), NewRunner(3)}
	defer func() {
		for _, r := range runners {
			r.Close()
		}
	}()
	eachVariant(t, func(impl string) {
		for i, c := range convCases {
			for j, r := range runners {
				runConvCase(t, r, impl+" "+c.name, c.p, (i+j)%2 == 0, acts[(i+j)%len(acts)])
			}
		}
	})
}

// TestConv2DOnes is hand-checkable: all-ones input and weights, 3x3, pad 1,
// so each output counts the in-image taps: 4 in a corner, 6 on an edge, 9
// inside, times the input channels, plus the bias.
func TestConv2DOnes(t *testing.T) {
	p := conv(2, 4, 4, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1)
	in := make([]float32, 2*16)
	w := make([]float32, 2*9)
	for i := range in {
		in[i] = 1
	}
	for i := range w {
		w[i] = 1
	}
	out := make([]float32, 16)
	Conv2D(nil, p, in, w, []float32{0.5}, out, make([]float32, ConvScratchSize(p)), Act{})
	want := []float32{
		8.5, 12.5, 12.5, 8.5,
		12.5, 18.5, 18.5, 12.5,
		12.5, 18.5, 18.5, 12.5,
		8.5, 12.5, 12.5, 8.5,
	}
	for i := range want {
		if out[i] != want[i] {
			t.Fatalf("out = %v, want %v", out, want)
		}
	}
}

func TestConv2DRejectsBadParams(t *testing.T) {
	p := conv(4, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1)
	bad := []struct {
		name string
		edit func(*ConvParams)
	}{
		{"output size", func(p *ConvParams) { p.OutH++ }},
		{"group", func(p *ConvParams) { p.Group = 3 }},
		{"negative pad", func(p *ConvParams) { p.PH = -1 }},
	}
	for _, b := range bad {
		q := p
		b.edit(&q)
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Conv2D did not panic on %+v", b.name, q)
				}
			}()
			Conv2D(nil, q, make([]float32, 100), make([]float32, 144), nil, make([]float32, 100), make([]float32, ConvScratchSize(q)+100), Act{})
		}()
	}
	defer func() {
		if recover() == nil {
			t.Error("Conv2D accepted a scratch slice shorter than ConvScratchSize")
		}
	}()
	Conv2D(nil, p, make([]float32, 100), make([]float32, 144), nil, make([]float32, 100), make([]float32, ConvScratchSize(p)-1), Act{})
}

// TestIm2colRange checks every row of the im2col matrix, over column ranges
// that start and end inside an output row, span several, or hold one
// column, against the definition: element (row (c*KH+kh)*KW+kw, column
// oh*OW+ow) is in[c][oh*SH-PH+kh*DH][ow*SW-PW+kw*DW], 0 in the padding. The
// simd GEMM builds its panels of B with it, at arbitrary column offsets.
func TestIm2colRange(t *testing.T) {
	for _, c := range []struct {
		name string
		p    ConvParams
	}{
		{"3x3/pad1", conv(2, 5, 7, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
		{"3x3/stride2", conv(2, 9, 8, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1)},
		{"7x7/stride2/pad3", conv(1, 11, 9, 1, 7, 7, 2, 2, 3, 3, 1, 1, 1)},
		{"dilation2/asymmetric", conv(2, 9, 12, 1, 3, 2, 1, 3, 2, 1, 2, 2, 1)},
		{"pad>kernel/2", conv(2, 3, 3, 1, 3, 3, 1, 2, 2, 3, 1, 1, 1)},
		{"kernel wider than padded input row", conv(1, 3, 2, 1, 1, 5, 1, 1, 0, 2, 1, 1, 1)},
	} {
		p := c.p.normalized()
		n := p.OutH * p.OutW
		rng := rand.New(rand.NewPCG(uint64(n), 3))
		in := randSlice(rng, p.InC*p.InH*p.InW)
		ref := func(row, j int) float32 {
			ch, kh, kw := row/(p.KH*p.KW), row/p.KW%p.KH, row%p.KW
			ih := j/p.OutW*p.SH - p.PH + kh*p.DH
			iw := j%p.OutW*p.SW - p.PW + kw*p.DW
			if ih < 0 || ih >= p.InH || iw < 0 || iw >= p.InW {
				return 0
			}
			return in[(ch*p.InH+ih)*p.InW+iw]
		}
		ranges := [][2]int{{0, n}, {1, n - 2}, {p.OutW - 1, 2}, {n - 1, 1}, {p.OutW + 1, p.OutW}, {2, 1}}
		for row := 0; row < p.InC*p.KH*p.KW; row++ {
			for _, r := range ranges {
				j0, cnt := r[0], r[1]
				if cnt <= 0 || j0+cnt > n {
					continue
				}
				dst := newGuarded(cnt)
				im2colRange(&p, in, row, j0, dst.s()[:cnt])
				what := fmt.Sprintf("%s: row %d, columns %d+%d", c.name, row, j0, cnt)
				dst.check(t, what)
				for i, got := range dst.s()[:cnt] {
					if want := ref(row, j0+i); math.Float32bits(got) != math.Float32bits(want) {
						t.Fatalf("%s: column %d = %v, want %v", what, j0+i, got, want)
					}
				}
			}
		}
	}
}

// TestConv2DF16 runs Conv2DF16 on float16 filters and Conv2D on the same
// filters widened: the results must be identical bit for bit (the filters
// are the same numbers, used in the same order), with guarded output and
// scratch, for every GEMM variant, with 1 and 2 workers. A single output
// pixel is the exception: Conv2D takes the matrix-vector path there, a
// different order of the sum, so the float64 reference's tolerance applies.
func TestConv2DF16(t *testing.T) {
	runners := []*Runner{nil, NewRunner(2)}
	defer func() {
		for _, r := range runners {
			r.Close()
		}
	}()
	cases := append([]struct {
		name string
		p    ConvParams
	}{
		{"3x3 64->64 28x28 (Winograd with AVX-512)", conv(64, 28, 28, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
		{"1x1 700->130 (chunks)", conv(700, 3, 5, 130, 1, 1, 1, 1, 0, 0, 1, 1, 1)},
		{"1x1 spatial", conv(40, 1, 1, 9, 1, 1, 1, 1, 0, 0, 1, 1, 1)},
	}, convCases...)
	eachVariant(t, func(impl string) {
		for i, c := range cases {
			p := c.p.normalized()
			rng := rand.New(rand.NewPCG(uint64(i), 21))
			in := randSlice(rng, p.InC*p.InH*p.InW)
			w16 := make([]uint16, p.OutC*p.InC/p.Group*p.KH*p.KW)
			for j := range w16 {
				w16[j] = float16.Fromfloat32(rng.Float32()*2 - 1).Bits()
			}
			w := make([]float32, len(w16))
			WidenF16(w, w16)
			bias := randSlice(rng, p.OutC)
			for j, r := range runners {
				act := acts[(i+j)%2]
				want := make([]float32, p.OutC*p.OutH*p.OutW)
				Conv2D(r, p, in, w, bias, want, make([]float32, ConvScratchSize(p)), act)
				out := newGuarded(len(want))
				scratch := newGuarded(ConvScratchSizeF16(p))
				Conv2DF16(r, p, in, w16, bias, out.s(), scratch.s(), act)
				what := fmt.Sprintf("%s %s threads=%d", impl, c.name, r.Threads())
				out.check(t, what+" (out)")
				scratch.check(t, what+" (scratch)")
				if p.OutH*p.OutW == 1 {
					ref, scale := convNaive(p, in, w, bias, act)
					for k, v := range out.s() {
						if !closeTo(v, ref[k], scale[k], gemmTol, gemmEps) {
							t.Fatalf("%s: out[%d] = %v, want %v", what, k, v, ref[k])
						}
					}
					continue
				}
				for k, v := range out.s() {
					if math.Float32bits(v) != math.Float32bits(want[k]) {
						t.Fatalf("%s: out[%d] = %v, Conv2D gives %v", what, k, v, want[k])
					}
				}
			}
		}
	})
}

// TestConv2DAdd checks the fused residual against the two steps it stands
// for, Conv2D without activation then Eltwise(EltSum, [out, res], out, act),
// bit for bit (the same roundings in the same order; a zero's sign aside),
// for every variant,
// 1 and 2 workers, float32 and float16 filters, with a guarded output and
// a residual that must come out unchanged.
func TestConv2DAdd(t *testing.T) {
	runners := []*Runner{nil, NewRunner(2)}
	defer func() {
		for _, r := range runners {
			r.Close()
		}
	}()
	cases := append([]struct {
		name string
		p    ConvParams
	}{
		{"1x1 256->64 7x9 (ResNet's branch2c)", conv(256, 7, 9, 64, 1, 1, 1, 1, 0, 0, 1, 1, 1)},
		{"3x3 64->64 28x28 (Winograd with AVX-512)", conv(64, 28, 28, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
		{"1x1 spatial", conv(40, 1, 1, 9, 1, 1, 1, 1, 0, 0, 1, 1, 1)},
	}, convCases...)
	eachVariant(t, func(impl string) {
		for i, c := range cases {
			p := c.p.normalized()
			rng := rand.New(rand.NewPCG(uint64(i), 22))
			n := p.OutC * p.OutH * p.OutW
			in := randSlice(rng, p.InC*p.InH*p.InW)
			w16 := make([]uint16, p.OutC*p.InC/p.Group*p.KH*p.KW)
			for j := range w16 {
				w16[j] = float16.Fromfloat32(rng.Float32()*2 - 1).Bits()
			}
			w := make([]float32, len(w16))
			WidenF16(w, w16)
			bias, res := randSlice(rng, p.OutC), randSlice(rng, n)
			resCopy := append([]float32(nil), res...)
			for j, r := range runners {
				act := acts[(i+j)%len(acts)]
				for _, f16 := range []bool{false, true} {
					want := make([]float32, n)
					if f16 {
						Conv2DF16(r, p, in, w16, bias, want, make([]float32, ConvScratchSizeF16(p)), Act{})
					} else {
						Conv2D(r, p, in, w, bias, want, make([]float32, ConvScratchSize(p)), Act{})
					}
					Eltwise(EltSum, nil, [][]float32{want, res}, want, act)
					out := newGuarded(n)
					what := fmt.Sprintf("%s %s threads=%d act=%v f16=%v", impl, c.name, r.Threads(), act, f16)
					if f16 {
						Conv2DAddF16(r, p, in, w16, bias, res, out.s()[:n], make([]float32, ConvScratchSizeF16(p)), act)
					} else {
						Conv2DAdd(r, p, in, w, bias, res, out.s()[:n], make([]float32, ConvScratchSize(p)), act)
					}
					out.check(t, what)
					for k := 0; k < n; k++ {
						// Bit for bit, but for the sign of a zero: Eltwise's
						// vector body and scalar tail already differ there.
						if g := out.s()[k]; math.Float32bits(g) != math.Float32bits(want[k]) && !(g == 0 && want[k] == 0) {
							t.Fatalf("%s: out[%d] = %v, the two steps give %v", what, k, g, want[k])
						}
						if math.Float32bits(res[k]) != math.Float32bits(resCopy[k]) {
							t.Fatalf("%s: res[%d] changed", what, k)
						}
					}
				}
			}
		}
	})
}
