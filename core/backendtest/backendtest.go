// Package backendtest is the conformance harness every core.Backend runs:
// one-op programs across shapes (odd sizes, strides, pads, every shape class
// of ResNet's layers, each op type the weights format has) and a small
// whole ResNet, each run on the backend under test and on the CPU executor,
// and compared under a written tolerance per op. A new backend is done when
// Run passes; the CPU runs it against itself in this package's tests (its
// float16 and float32 weight modes, fused and unfused programs).
//
// It is ordinary Go (package testing), so it runs wherever the backend does:
// the WebGPU backend runs it as js/wasm under node with Dawn.
package backendtest

import (
	"fmt"
	"math"
	"testing"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/core/weights/weightstest"
)

// Factory builds the backend under test for the program p of the weights w
// (as core.Options.Backend does). It may compile p.Manifest again with
// other options (FuseResidual) as long as the input, output and taps stay.
type Factory func(p *core.Program, w *weights.Weights) (core.Backend, error)

// Tolerance bounds |got - want| <= Abs + Rel * max|want|, element by element,
// where want is the CPU executor's output and the maximum is over the
// compared tensor (one image).
type Tolerance struct {
	Abs, Rel float64
	Why      string
}

// The tolerances, per op family. The CPU executor accumulates in float32 in
// a blocked order; another backend sums the same float32 products in its
// own order (tiles, split K, vector lanes), which changes a sum of K terms
// of magnitude s by about sqrt(K) * 2^-24 * s for random signs and at most
// K * 2^-24 * s. ResNet's largest K is 4608, so 5e-5 of the output's range
// keeps every honest order while one wrong term (an indexing or padding
// bug) moves an output by about range/K >= 2e-4 of the range.
var (
	TolGEMM = Tolerance{Abs: 1e-6, Rel: 5e-5,
		Why: "float32 sums of up to 4608 products in another order: <= K * 2^-24 of the range, 1e-5 in practice"}
	TolExact = Tolerance{
		Why: "max pooling, concat and flatten only move values"}
	TolElementwise = Tolerance{Abs: 1e-7, Rel: 2e-6,
		Why: "one or two float32 roundings per value (a multiply-add may be fused or not)"}
	TolAverage = Tolerance{Abs: 1e-7, Rel: 4e-6,
		Why: "a float32 sum of at most 49 values and one division, in another order"}
	TolSoftmax = Tolerance{Abs: 1e-7, Rel: 2e-5,
		Why: "float32 exp (WGSL allows 3 + 2|x| ulp) against the CPU's float64 exp, then a float32 sum of up to 1000 terms"}
	// TolNetwork is for the whole small network's probabilities: the GEMM
	// error compounded over its layers and the softmax.
	TolNetwork = Tolerance{Abs: 1e-5, Rel: 1e-4,
		Why: "ten layers of float32 sums in another order, then a softmax"}
)

// Case is one program of the harness.
type Case struct {
	Name  string
	Build func() *weightstest.Builder
	Tol   Tolerance
	// Taps are blobs returned beside the output (checked under Tol too).
	Taps []string
	// InputScale is the half-width of the uniform random input (0: 1).
	InputScale float32
}

// Cases returns the harness's programs.
func Cases() []Case {
	var cs []Case
	conv := func(name string, inC, outC, k, s, p, h, w int, relu bool) {
		cs = append(cs, Case{Name: name, Tol: TolGEMM, Build: func() *weightstest.Builder {
			b := start(name, inC, h, w, 1)
			b.Conv("x", "out", inC, outC, k, s, p, relu, heScale(inC*k*k))
			return b
		}})
	}
	// The shape classes of ResNet-50/101/152, smaller where the class does
	// not depend on size (a software GPU runs these too).
	conv("conv/stem-7x7-s2", 3, 64, 7, 2, 3, 61, 57, true)
	conv("conv/1x1-s1-56", 64, 256, 1, 1, 0, 56, 56, false)
	conv("conv/1x1-s1-reduce", 256, 64, 1, 1, 0, 28, 28, true)
	conv("conv/1x1-s2-projection", 128, 256, 1, 2, 0, 28, 28, false)
	conv("conv/3x3-s1-28", 128, 128, 3, 1, 1, 28, 28, true)
	conv("conv/3x3-s2-56", 64, 64, 3, 2, 1, 56, 56, true)
	conv("conv/3x3-s1-7x7-stage", 512, 512, 3, 1, 1, 7, 7, true)
	conv("conv/1x1-7x7-expand", 512, 2048, 1, 1, 0, 7, 7, false)
	// Odd sizes: channel counts and widths that fill no tile or vector.
	conv("conv/odd-3x3-nopad", 5, 7, 3, 1, 0, 9, 10, false)
	conv("conv/odd-5x5-s3", 3, 13, 5, 3, 2, 17, 23, true)
	conv("conv/odd-1x1", 3, 1, 1, 1, 0, 1, 1, false)
	conv("conv/odd-3x3-s2-tiny", 9, 33, 3, 2, 1, 3, 2, true)
	cs = append(cs,
		Case{Name: "conv/rect-dilated-grouped-nobias", Tol: TolGEMM, Build: func() *weightstest.Builder {
			b := start("grouped", 6, 11, 13, 2)
			b.F16("w", []int{9, 2, 3, 2}, b.Random(9*2*3*2, heScale(12)))
			return b.Op(weights.Op{Type: weights.OpConv, Inputs: []string{"x"}, Output: "out", Weight: "w",
				Kernel: [2]int{3, 2}, Stride: [2]int{2, 1}, Pad: [2]int{2, 1}, Dilation: [2]int{2, 3}, Group: 3,
				ReLU: true, NegativeSlope: 0.25})
		}},
		Case{Name: "conv/f32-weights", Tol: TolGEMM, Build: func() *weightstest.Builder {
			b := start("f32", 4, 6, 5, 3)
			b.F32("w", []int{6, 4, 3, 3}, b.Random(6*4*9, heScale(36)))
			b.F32("bias", []int{6}, b.Random(6, 0.5))
			return b.Op(weights.Op{Type: weights.OpConv, Inputs: []string{"x"}, Output: "out", Weight: "w", Bias: "bias",
				Kernel: [2]int{3, 3}, Stride: [2]int{1, 1}, Pad: [2]int{1, 1}})
		}},
		// A residual block's end: conv (no activation) + shortcut, ReLU. A
		// backend that fuses the sum into the conv is checked here.
		Case{Name: "conv/residual-fused", Tol: TolGEMM, Build: func() *weightstest.Builder {
			b := start("residual", 64, 14, 14, 4)
			b.Conv("x", "branch2a", 64, 16, 1, 1, 0, true, heScale(64))
			b.Conv("branch2a", "branch2b", 16, 16, 3, 1, 1, true, heScale(144))
			b.Conv("branch2b", "branch2c", 16, 64, 1, 1, 0, false, heScale(16))
			return b.Op(weights.Op{Type: weights.OpEltwise, Inputs: []string{"x", "branch2c"}, Output: "out", Operation: "sum", ReLU: true})
		}},
		Case{Name: "conv/residual-projection", Tol: TolGEMM, Build: func() *weightstest.Builder {
			b := start("projection", 32, 15, 15, 5)
			b.Conv("x", "branch1", 32, 64, 1, 2, 0, false, heScale(32))
			b.Conv("x", "branch2a", 32, 16, 1, 2, 0, true, heScale(32))
			b.Conv("branch2a", "branch2b", 16, 64, 3, 1, 1, false, heScale(144))
			return b.Op(weights.Op{Type: weights.OpEltwise, Inputs: []string{"branch1", "branch2b"}, Output: "out", Operation: "sum", ReLU: true})
		}},
	)

	pool := func(name string, max bool, c, h, w, k, s, p int, round string, tol Tolerance, op func(*weights.Op)) {
		cs = append(cs, Case{Name: name, Tol: tol, Build: func() *weightstest.Builder {
			b := start(name, c, h, w, 6)
			o := weights.Op{Type: weights.OpPool, Inputs: []string{"x"}, Output: "out", Pool: "ave", RoundMode: round,
				Kernel: [2]int{k, k}, Stride: [2]int{s, s}, Pad: [2]int{p, p}}
			if max {
				o.Pool = "max"
			}
			if op != nil {
				op(&o)
			}
			return b.Op(o)
		}})
	}
	pool("pool/max-3x3-s2-ceil", true, 64, 112, 112, 3, 2, 0, "ceil", TolExact, nil)
	pool("pool/max-3x3-s2-pad-odd", true, 5, 13, 9, 3, 2, 1, "ceil", TolExact, nil)
	pool("pool/max-rect-pad", true, 2, 7, 8, 0, 0, 0, "ceil", TolExact, func(o *weights.Op) {
		o.Kernel, o.Stride, o.Pad = [2]int{2, 3}, [2]int{1, 3}, [2]int{1, 2}
	})
	pool("pool/ave-global-7x7", false, 2048, 7, 7, 7, 1, 0, "ceil", TolAverage, func(o *weights.Op) { o.Global = true })
	pool("pool/ave-2x2-s2-pad-ceil", false, 3, 9, 8, 2, 2, 1, "ceil", TolAverage, nil)
	pool("pool/ave-3x3-s1-floor", false, 4, 6, 7, 3, 1, 1, "floor", TolAverage, nil)

	cs = append(cs,
		Case{Name: "eltwise/sum-coeffs", Tol: TolElementwise, Build: func() *weightstest.Builder {
			b := start("sum", 8, 5, 7, 7)
			b.Conv("x", "a", 8, 8, 1, 1, 0, false, heScale(8))
			return b.Op(weights.Op{Type: weights.OpEltwise, Inputs: []string{"x", "a", "x"}, Output: "out", Operation: "sum",
				Coeffs: []float64{1, -0.5, 2}, ReLU: true})
		}},
		Case{Name: "eltwise/prod-max", Tol: TolElementwise, Build: func() *weightstest.Builder {
			b := start("prodmax", 3, 4, 5, 8)
			b.Conv("x", "a", 3, 3, 3, 1, 1, false, heScale(27))
			b.Op(weights.Op{Type: weights.OpEltwise, Inputs: []string{"x", "a", "a"}, Output: "p", Operation: "prod"})
			return b.Op(weights.Op{Type: weights.OpEltwise, Inputs: []string{"p", "x"}, Output: "out", Operation: "max", ReLU: true, NegativeSlope: 0.1})
		}},
		Case{Name: "relu/standalone-in-place-and-not", Tol: TolElementwise, Build: func() *weightstest.Builder {
			b := start("relu", 4, 3, 3, 9)
			b.Conv("x", "a", 4, 4, 1, 1, 0, false, heScale(4))
			b.Op(weights.Op{Name: "r1", Type: weights.OpReLU, Inputs: []string{"a"}, Output: "a", NegativeSlope: 0.2})
			b.Op(weights.Op{Name: "r2", Type: weights.OpReLU, Inputs: []string{"a"}, Output: "b"})
			return b.Op(weights.Op{Type: weights.OpEltwise, Inputs: []string{"a", "b"}, Output: "out", Operation: "sum"})
		}},
		Case{Name: "affine", Tol: TolElementwise, Build: func() *weightstest.Builder {
			b := start("affine", 6, 5, 4, 10)
			b.F16("scale", []int{6}, b.Random(6, 2))
			b.F16("shift", []int{6}, b.Random(6, 1))
			return b.Op(weights.Op{Type: weights.OpAffine, Inputs: []string{"x"}, Output: "out", Weight: "scale", Bias: "shift", ReLU: true})
		}},
		Case{Name: "inner_product/fc1000", Tol: TolGEMM, Build: func() *weightstest.Builder {
			b := start("fc", 2048, 1, 1, 11)
			return b.InnerProduct("x", "out", 2048, 1000, false, heScale(2048))
		}},
		Case{Name: "inner_product/spatial-relu", Tol: TolGEMM, Build: func() *weightstest.Builder {
			b := start("ip", 5, 3, 3, 12)
			return b.InnerProduct("x", "out", 45, 17, true, heScale(45))
		}},
		Case{Name: "softmax/1000", Tol: TolSoftmax, InputScale: 8, Build: func() *weightstest.Builder {
			b := start("softmax", 1000, 1, 1, 13)
			return b.Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"x"}, Output: "out"})
		}},
		Case{Name: "softmax/spatial", Tol: TolSoftmax, InputScale: 30, Build: func() *weightstest.Builder {
			b := start("softmax2", 5, 3, 4, 14)
			return b.Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"x"}, Output: "out"})
		}},
		Case{Name: "concat-flatten", Tol: TolGEMM, Build: func() *weightstest.Builder {
			b := start("concat", 3, 4, 4, 15)
			b.Conv("x", "a", 3, 5, 3, 1, 1, true, heScale(27))
			b.Op(weights.Op{Type: weights.OpConcat, Inputs: []string{"a", "x", "a"}, Output: "cat"})
			return b.Op(weights.Op{Type: weights.OpFlatten, Inputs: []string{"cat"}, Output: "out"})
		}},
		Case{Name: "network/small-resnet", Tol: TolNetwork, Taps: []string{"res3", "fc10"}, InputScale: 100, Build: func() *weightstest.Builder {
			return SmallResNet(16)
		}},
	)
	return cs
}

// start begins a case's model: a real image input (3 channels) and a 1x1
// convolution to the c x h x w blob "x" that the ops under test read. The
// harness compiles the ops after it (a program starting at a cut), so the
// backend sees "x" as its input, of any shape.
func start(name string, c, h, w int, seed uint64) *weightstest.Builder {
	b := weightstest.New(name, 3, h, w, seed)
	return b.Conv("data", "x", 3, c, 1, 1, 0, false, 1)
}

// heScale is the half-width of a uniform distribution with He's variance
// 2/fanIn, so that activations keep their size through the layers.
func heScale(fanIn int) float32 { return float32(math.Sqrt(6 / float64(fanIn))) }

// SmallResNet builds a ResNet in miniature with the Caffe ResNets' graph:
// a 7x7/2 stem with ReLU, a 3x3/2 max pool (ceil), two stages of
// bottleneck blocks (the first of each with a projection shortcut, the
// second of the second stage strided), a global average pool, an inner
// product and a softmax over 10 classes, on a 3x64x64 input.
func SmallResNet(seed uint64) *weightstest.Builder {
	b := weightstest.New("small-resnet", 3, 64, 64, seed)
	b.Conv("data", "conv1", 3, 16, 7, 2, 3, true, heScale(3*49))
	b.Op(weights.Op{Type: weights.OpPool, Inputs: []string{"conv1"}, Output: "pool1", Pool: "max", RoundMode: "ceil",
		Kernel: [2]int{3, 3}, Stride: [2]int{2, 2}})
	block := func(in, out string, inC, mid, outC, stride int, project bool) {
		short := in
		if project {
			short = out + "_branch1"
			b.Conv(in, short, inC, outC, 1, stride, 0, false, heScale(inC))
		}
		b.Conv(in, out+"_branch2a", inC, mid, 1, stride, 0, true, heScale(inC))
		b.Conv(out+"_branch2a", out+"_branch2b", mid, mid, 3, 1, 1, true, heScale(9*mid))
		b.Conv(out+"_branch2b", out+"_branch2c", mid, outC, 1, 1, 0, false, heScale(mid))
		b.Op(weights.Op{Type: weights.OpEltwise, Inputs: []string{short, out + "_branch2c"}, Output: out, Operation: "sum", ReLU: true})
	}
	block("pool1", "res2a", 16, 8, 32, 1, true)
	block("res2a", "res2b", 32, 8, 32, 1, false)
	block("res2b", "res3a", 32, 16, 64, 2, true)
	block("res3a", "res3", 64, 16, 64, 1, false)
	b.Op(weights.Op{Type: weights.OpPool, Inputs: []string{"res3"}, Output: "pool5", Pool: "ave", RoundMode: "ceil", Global: true,
		Kernel: [2]int{8, 8}, Stride: [2]int{1, 1}})
	b.InnerProduct("pool5", "fc10", 64, 10, false, heScale(64))
	b.Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"fc10"}, Output: "prob"})
	b.M.Preprocess.MeanValues = []float64{104, 117, 123}
	b.Labels(10)
	return b
}

// Load builds c's model and compiles it with c's taps: from op 1 (after
// the stub start adds) for one-op cases, the whole network otherwise.
func (c Case) Load(t testing.TB) (*core.Program, func() *weights.Weights) {
	t.Helper()
	b := c.Build()
	fsys, err := b.MapFS()
	if err != nil {
		t.Fatal(err)
	}
	read := func() *weights.Weights {
		w, err := weights.Read(fsys, weights.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	m := read().Manifest
	first := 0
	if m.Ops[0].Output == "x" {
		first = 1
	}
	p, err := core.Compile(m, core.CompileOptions{First: first, Taps: c.Taps})
	if err != nil {
		t.Fatal(err)
	}
	return p, read
}

// Batch is the batch size Run uses besides 1.
const Batch = 3

// Run runs every case on the backend f builds and on the CPU executor
// (float32 weights), with a batch of 1 and of Batch, and compares the
// output and the taps of every image under the case's tolerance.
func Run(t *testing.T, f Factory, cases []Case) {
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			p, read := c.Load(t)
			scale := c.InputScale
			if scale == 0 {
				scale = 1
			}
			in := weightstest.New("input", 1, 1, 1, 99).Random(Batch*p.InputSize(), scale)

			ref, err := core.NewCPU(p, read(), core.CPUOptions{Float32Weights: true, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			want, err := ref.Run(in, Batch)
			if err != nil {
				t.Fatal(err)
			}

			bk, err := f(p, read())
			if err != nil {
				t.Fatalf("the backend refused the program: %v", err)
			}
			defer bk.Close()
			for _, n := range []int{1, Batch} {
				got, err := bk.Run(in[:n*p.InputSize()], n)
				if err != nil {
					t.Fatalf("batch %d: %v", n, err)
				}
				out := p.OutputSize()
				if len(got.Values) != n*out || len(got.Taps) != len(p.Taps) {
					t.Fatalf("batch %d: %d output values and %d taps, want %d and %d", n, len(got.Values), len(got.Taps), n*out, len(p.Taps))
				}
				for i := range n {
					Compare(t, fmt.Sprintf("batch %d image %d output", n, i), got.Values[i*out:(i+1)*out], want.Values[i*out:(i+1)*out], c.Tol)
					for k, v := range p.Taps {
						size := p.Values[v].Size
						if len(got.Taps[k]) != n*size {
							t.Fatalf("batch %d: tap %s has %d values, want %d", n, p.Values[v].Blob, len(got.Taps[k]), n*size)
						}
						Compare(t, fmt.Sprintf("batch %d image %d tap %s", n, i, p.Values[v].Blob),
							got.Taps[k][i*size:(i+1)*size], want.Taps[k][i*size:(i+1)*size], c.Tol)
					}
				}
			}
		})
	}
}

// Compare fails t unless every got[i] is within tol of want[i] (NaN never
// is), and logs the largest error relative to the range.
func Compare(t testing.TB, what string, got, want []float32, tol Tolerance) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return
	}
	var rng float64
	for _, w := range want {
		rng = max(rng, math.Abs(float64(w)))
	}
	bound := tol.Abs + tol.Rel*rng
	worst, at, bad := 0.0, -1, 0
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if !(d <= bound) {
			bad++
			if at < 0 || !(d <= worst) {
				worst, at = d, i
			}
		} else if at < 0 && d > worst {
			worst = d
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values off by more than %.3g (%s); worst at %d: got %v, want %v",
			what, bad, len(want), bound, tol.Why, at, got[at], want[at])
	}
}
