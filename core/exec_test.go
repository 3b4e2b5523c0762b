package core

import (
	"fmt"
	"math"
	"testing"

	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/core/weights/weightstest"
)

// TestHandChecked runs a graph small enough to compute on paper.
func TestHandChecked(t *testing.T) {
	b := weightstest.New("hand", 1, 2, 2, 1)
	// Values exactly representable in float16, so rounding plays no part.
	b.F16("w", []int{2, 1, 1, 1}, []float32{2, -1})
	b.F16("bias", []int{2}, []float32{1, 0})
	b.Op(weights.Op{Type: weights.OpConv, Inputs: []string{"data"}, Output: "conv", Weight: "w", Bias: "bias",
		Kernel: [2]int{1, 1}, Stride: [2]int{1, 1}, ReLU: true})
	b.Op(weights.Op{Type: weights.OpPool, Inputs: []string{"conv"}, Output: "max", Pool: "max", RoundMode: "ceil",
		Kernel: [2]int{2, 2}, Stride: [2]int{2, 2}})
	b.Op(weights.Op{Type: weights.OpPool, Inputs: []string{"conv"}, Output: "ave", Pool: "ave", RoundMode: "ceil", Global: true,
		Kernel: [2]int{2, 2}, Stride: [2]int{1, 1}})
	b.Op(weights.Op{Type: weights.OpEltwise, Inputs: []string{"max", "ave"}, Output: "sum", Operation: "sum", Coeffs: []float64{1, -2}})
	b.Op(weights.Op{Type: weights.OpFlatten, Inputs: []string{"sum"}, Output: "flat"})
	b.F32("ipw", []int{3, 2}, []float32{1, 1, 1, -1, 0, 0.5})
	b.F32("ipb", []int{3}, []float32{0, 0, 1})
	b.Op(weights.Op{Type: weights.OpInnerProduct, Inputs: []string{"flat"}, Output: "fc", Weight: "ipw", Bias: "ipb"})
	b.Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"fc"}, Output: "prob"})
	w := readWeights(t, b)

	// conv: ch0 = relu(2x+1) = [3 0 7 0], ch1 = relu(-x) = [0 2 0 4];
	// max = [7 4], ave = [2.5 1.5]; sum = max - 2*ave = [2 1];
	// fc = [2+1, 2-1, 0.5+1] = [3 1 1.5].
	e := []float64{math.Exp(3), math.Exp(1), math.Exp(1.5)}
	want := []float64{e[0] / (e[0] + e[1] + e[2]), e[1] / (e[0] + e[1] + e[2]), e[2] / (e[0] + e[1] + e[2])}
	for _, f32 := range []bool{false, true} {
		c, err := NewCPU(compile(t, w, CompileOptions{}), w, CPUOptions{Float32Weights: f32, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		got, err := run1(c, []float32{1, -2, 3, -4})
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if math.Abs(float64(got[i])-want[i]) > 1e-6 {
				t.Errorf("f32=%v: prob[%d] = %v, want %v", f32, i, got[i], want[i])
			}
		}
	}
}

// TestCPUMatchesNaive compares the executor with the float64 reference of
// helpers_test.go on tinyResNet, reading the logits (fc) and the
// probabilities, in both weight modes and with 1 and 2 threads.
//
// Tolerance: activations are float32 with float32 accumulation over at most
// 162 products, against float64: a relative error of a few 1e-6 per op; over
// the dozen ops of this net 1e-4 * (1 + |ref|) leaves a wide margin while
// any wiring mistake (a wrong buffer, a wrong weight) is off by O(1).
func TestCPUMatchesNaive(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		for _, output := range []string{"fc", "prob"} {
			b := tinyResNet(seed)
			b.M.Output = output
			w := readWeights(t, b)
			in := randomInput(b, 3*20*18, 2)
			want := naiveForward(w, in)
			for _, f32 := range []bool{false, true} {
				for _, threads := range []int{1, 2} {
					name := fmt.Sprintf("seed%d/%s/f32=%v/threads=%d", seed, output, f32, threads)
					c, err := NewCPU(compile(t, w, CompileOptions{}), w, CPUOptions{Float32Weights: f32, Threads: threads})
					if err != nil {
						t.Fatal(err)
					}
					got, err := run1(c, in)
					c.Close()
					if err != nil {
						t.Fatal(err)
					}
					if len(got) != len(want) {
						t.Fatalf("%s: %d outputs, want %d", name, len(got), len(want))
					}
					for i := range want {
						if d := math.Abs(float64(got[i]) - want[i]); !(d <= 1e-4*(1+math.Abs(want[i]))) {
							t.Errorf("%s: out[%d] = %v, want %v", name, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

// TestWeightModesIdentical: float16-resident and float32 modes widen the same
// float16 values, so every output bit must agree.
func TestWeightModesIdentical(t *testing.T) {
	b := tinyResNet(7)
	b.M.Output = "fc"
	w := readWeights(t, b)
	in := randomInput(b, 3*20*18, 3)
	var outs [2][]float32
	for i, f32 := range []bool{false, true} {
		c, err := NewCPU(compile(t, w, CompileOptions{}), w, CPUOptions{Float32Weights: f32, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		out, err := run1(c, in)
		if err != nil {
			t.Fatal(err)
		}
		outs[i] = append([]float32(nil), out...)
		if mode := c.Describe().WeightMode; mode != map[bool]string{false: "f16", true: "f32"}[f32] {
			t.Errorf("WeightMode = %q", mode)
		}
		c.Close()
	}
	for i := range outs[0] {
		if math.Float32bits(outs[0][i]) != math.Float32bits(outs[1][i]) {
			t.Errorf("logit %d: f16 mode %v, f32 mode %v", i, outs[0][i], outs[1][i])
		}
	}
}

// TestRunRepeatable: a second run on the same buffers gives the same bits
// (no state leaks from one inference into the next), also after another input.
func TestRunRepeatable(t *testing.T) {
	b := tinyResNet(3)
	w := readWeights(t, b)
	c, err := NewCPU(compile(t, w, CompileOptions{}), w, CPUOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	x, y := randomInput(b, 3*20*18, 2), randomInput(b, 3*20*18, 2)
	first, _ := run1(c, x)
	first = append([]float32(nil), first...)
	if _, err := run1(c, y); err != nil {
		t.Fatal(err)
	}
	again, _ := run1(c, x)
	for i := range first {
		if first[i] != again[i] {
			t.Fatalf("prob[%d]: %v then %v", i, first[i], again[i])
		}
	}
	if _, err := run1(c, x[:10]); err == nil {
		t.Error("Run accepted an input of the wrong size")
	}
}

// TestNoAllocs: steady-state inference allocates nothing, in both weight modes.
func TestNoAllocs(t *testing.T) {
	b := tinyResNet(5)
	w := readWeights(t, b)
	in := randomInput(b, 3*20*18, 2)
	for _, f32 := range []bool{false, true} {
		for _, threads := range []int{1, 2} {
			c, err := NewCPU(compile(t, w, CompileOptions{}), w, CPUOptions{Float32Weights: f32, Threads: threads})
			if err != nil {
				t.Fatal(err)
			}
			run1(c, in) // warm up
			allocs := testing.AllocsPerRun(20, func() {
				if _, err := run1(c, in); err != nil {
					t.Fatal(err)
				}
			})
			c.Close()
			if allocs != 0 {
				t.Errorf("f32=%v threads=%d: %v allocations per inference, want 0", f32, threads, allocs)
			}
		}
	}
}

// TestEstimateCPU: the estimate from the manifest alone is exactly what
// NewCPU allocates, in both modes, on several graphs.
func TestEstimateCPU(t *testing.T) {
	for _, b := range []*weightstest.Builder{tinyResNet(1), randomGraph(3), randomGraph(4)} {
		w := readWeights(t, b)
		for _, f32 := range []bool{false, true} {
			o := CPUOptions{Float32Weights: f32, Threads: 1}
			c, err := NewCPU(compile(t, w, CompileOptions{}), w, o)
			if err != nil {
				t.Fatal(err)
			}
			info := c.Describe()
			c.Close()
			est := EstimateCPU(compile(t, w, CompileOptions{}), o)
			if est.ActivationBytes != info.ActivationBytes || est.ScratchBytes != info.ScratchBytes || est.ScratchBytes <= 0 {
				t.Errorf("%s f32=%v: estimate %+v, NewCPU %+v", b.M.Model, f32, est, info)
			}
		}
	}
}
