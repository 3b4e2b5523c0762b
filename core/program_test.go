package core

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/core/weights/weightstest"
)

// sameBits fails unless got and want are equal bit for bit.
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: value %d is %v, want %v", what, i, got[i], want[i])
		}
	}
}

// runProgram compiles w's manifest with o and runs input through the CPU.
func runProgram(t *testing.T, w *weights.Weights, o CompileOptions, input []float32, n int) Output {
	t.Helper()
	c, err := NewCPU(compile(t, w, o), w, CPUOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out, err := c.Run(input, n)
	if err != nil {
		t.Fatal(err)
	}
	res := Output{Values: slices.Clone(out.Values)}
	for _, tap := range out.Taps {
		res.Taps = append(res.Taps, slices.Clone(tap))
	}
	return res
}

func testGraphs() []*weightstest.Builder {
	bs := []*weightstest.Builder{tinyResNet(1)}
	for seed := uint64(1); seed <= 12; seed++ {
		bs = append(bs, randomGraph(seed))
	}
	return bs
}

// TestFuseResidual: tinyResNet's projection block sum (unit coefficients,
// ReLU) folds into the convolution computed last, the identity block's sum
// (coefficient -0.5) does not; the fused program is consistent and computes
// the same bits as the unfused one, on tinyResNet and random graphs.
func TestFuseResidual(t *testing.T) {
	w := readWeights(t, tinyResNet(2))
	p := compile(t, w, CompileOptions{FuseResidual: true})
	checkPlan(t, p)
	var fused []string
	for _, s := range p.Steps {
		if s.Residual {
			fused = append(fused, s.Name)
			if s.Fused < 0 || w.Manifest.Ops[s.Fused].Type != weights.OpEltwise || !s.Act.ReLU || len(s.In) != 2 {
				t.Errorf("fused step %+v", s)
			}
			if p.Values[s.In[1]].Blob != "a_branch1" || p.Values[s.Out].Blob != "a" {
				t.Errorf("fused step reads %s, writes %s", p.Values[s.In[1]].Blob, p.Values[s.Out].Blob)
			}
		}
	}
	if !slices.Equal(fused, []string{"a_branch2c"}) || len(p.Steps) != len(w.Manifest.Ops)-1 {
		t.Errorf("fused %v into %d steps (of %d ops)", fused, len(p.Steps), len(w.Manifest.Ops))
	}

	for i, b := range testGraphs() {
		t.Run(fmt.Sprintf("%d-%s", i, b.M.Model), func(t *testing.T) {
			w := readWeights(t, b)
			p := compile(t, w, CompileOptions{FuseResidual: true})
			checkPlan(t, p)
			in := randomInput(b, p.InputSize(), 2)
			want := runProgram(t, w, CompileOptions{}, in, 1)
			got := runProgram(t, w, CompileOptions{FuseResidual: true}, in, 1)
			sameBits(t, "fused vs unfused", got.Values, want.Values)
		})
	}
}

// TestCutsAndRanges splits every test graph at every pair of its cuts and
// chains the pieces: the result equals the whole program bit for bit, and
// each piece's input and output are the cut's blob.
func TestCutsAndRanges(t *testing.T) {
	for i, b := range testGraphs() {
		t.Run(fmt.Sprintf("%d-%s", i, b.M.Model), func(t *testing.T) {
			w := readWeights(t, b)
			m := w.Manifest
			cuts := Cuts(m)
			in := randomInput(b, m.Input.Channels*m.Input.Height*m.Input.Width, 2)
			want := runProgram(t, w, CompileOptions{}, in, 1).Values
			bounds := []int{0}
			for _, c := range cuts {
				bounds = append(bounds, c.Op)
			}
			bounds = append(bounds, len(m.Ops))
			for fuse := range 2 {
				x := in
				for k := 1; k < len(bounds); k++ {
					o := CompileOptions{First: bounds[k-1], End: bounds[k], FuseResidual: fuse == 1}
					p := compile(t, w, o)
					checkPlan(t, p)
					if k < len(bounds)-1 {
						c := cuts[k-1]
						if v := p.Values[p.Output]; v.Blob != c.Blob || v.Shape != c.Shape {
							t.Fatalf("range %v: output %s %v, cut %+v", o, v.Blob, v.Shape, c)
						}
					}
					x = runProgram(t, w, o, x, 1).Values
				}
				sameBits(t, fmt.Sprintf("%d pieces, fuse=%d", len(bounds)-1, fuse), x, want)
			}
		})
	}

	// tinyResNet: inside a residual block two values cross; between blocks one.
	w := readWeights(t, tinyResNet(1))
	cutAt := map[string]bool{}
	for _, c := range Cuts(w.Manifest) {
		cutAt[w.Manifest.Ops[c.Op-1].Output] = true
	}
	for blob, want := range map[string]bool{"conv1": true, "pool1": true, "a_branch2a": false, "a_branch2c": false, "a": true} {
		if cutAt[blob] != want {
			t.Errorf("cut after %s: %v, want %v", blob, cutAt[blob], want)
		}
	}
	for _, o := range []CompileOptions{{First: 3}, {End: 3}, {First: 5, End: 5}, {First: -1}, {End: 100}, {Taps: []string{"nosuch"}}} {
		if _, err := Compile(w.Manifest, o); err == nil {
			t.Errorf("Compile(%+v) succeeded", o)
		} else if !strings.HasPrefix(err.Error(), "core: Compile: ") {
			t.Errorf("Compile(%+v): %v", o, err)
		}
	}
}

// TestTapsAndBatch: a tapped blob comes back with the output and equals the
// output of a program ending there; a batch of three is three runs.
func TestTapsAndBatch(t *testing.T) {
	b := tinyResNet(4)
	w := readWeights(t, b)
	m := w.Manifest
	size := m.Input.Channels * m.Input.Height * m.Input.Width
	in := randomInput(b, 3*size, 2)

	var avgAt int
	for _, c := range Cuts(m) {
		if c.Blob == "avg" {
			avgAt = c.Op
		}
	}
	if avgAt == 0 {
		t.Fatal("no cut after avg")
	}
	for _, fuse := range []bool{false, true} {
		o := CompileOptions{Taps: []string{"avg", "b"}, FuseResidual: fuse}
		p := compile(t, w, o)
		checkPlan(t, p)
		batch := runProgram(t, w, o, in, 3)
		avg, bb := p.Values[p.Taps[0]], p.Values[p.Taps[1]]
		if avg.Blob != "avg" || bb.Blob != "b" || bb.Def != p.Values[p.Taps[0]].Def-5 {
			t.Fatalf("taps %+v %+v", avg, bb)
		}
		if len(batch.Values) != 3*7 || len(batch.Taps) != 2 || len(batch.Taps[0]) != 3*avg.Size || len(batch.Taps[1]) != 3*bb.Size {
			t.Fatalf("batch output %d values, taps %d", len(batch.Values), len(batch.Taps))
		}
		for i := range 3 {
			one := runProgram(t, w, o, in[i*size:(i+1)*size], 1)
			sameBits(t, "batch image output", batch.Values[i*7:(i+1)*7], one.Values)
			sameBits(t, "batch image tap", batch.Taps[0][i*avg.Size:(i+1)*avg.Size], one.Taps[0])
			sameBits(t, "batch image tap", batch.Taps[1][i*bb.Size:(i+1)*bb.Size], one.Taps[1])
			upToAvg := runProgram(t, w, CompileOptions{End: avgAt}, in[i*size:(i+1)*size], 1)
			sameBits(t, "tap vs a program ending there", one.Taps[0], upToAvg.Values)
		}
	}
}

// TestWeightOwnership: a backend that does not read the shards as it runs
// (HostWeights false) gets them released by Open; the CPU in float16 mode
// keeps them.
func TestWeightOwnership(t *testing.T) {
	var gotProg *Program
	m, err := Open(buildFS(t, tinyResNet(1)), Options{Backend: func(p *Program, w *weights.Weights, o Options) (Backend, error) {
		gotProg = p
		c, err := NewCPU(p, w, CPUOptions{Float32Weights: true, Threads: 1})
		return c, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if gotProg == nil || gotProg.Manifest != m.Manifest() || !gotProg.Options.FuseResidual {
		t.Fatalf("the factory got program %+v, want the manifest's, residual sums fused", gotProg)
	}
	if m.Weights().Shards() != nil || m.Weights().F16("conv1/w") != nil {
		t.Error("the shards were kept for a backend that holds its own weights")
	}
	if _, err := m.ClassifyImage(testImage(30, 30, 0), ClassifyOptions{Crops: 10}); err != nil {
		t.Fatal(err)
	}
	m16 := openTiny(t, 1, Options{Threads: 1})
	defer m16.Close()
	if m16.Weights().F16("conv1/w") == nil {
		t.Error("the CPU in float16 mode lost its shards")
	}
}
