package core

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/core/weights/weightstest"
)

// randomGraph builds a random DAG of convs, ReLUs (some in place), eltwise
// sums over earlier blobs of the same shape, concats, pools and flattens,
// ending in an inner product and softmax: many overlapping lifetimes.
func randomGraph(seed uint64) *weightstest.Builder {
	r := rand.New(rand.NewPCG(seed, 1))
	b := weightstest.New("random", 3, 9, 9, seed)
	type blob struct {
		name  string
		shape [3]int
	}
	blobs := []blob{{"data", [3]int{3, 9, 9}}}
	pickSame := func(s [3]int) []string {
		var names []string
		for _, bl := range blobs {
			if bl.shape == s {
				names = append(names, bl.name)
			}
		}
		return names
	}
	for i := range 25 {
		src := blobs[r.IntN(len(blobs))]
		if r.IntN(2) == 0 { // favor recent blobs: longer chains
			src = blobs[len(blobs)-1]
		}
		out := fmt.Sprintf("v%d", i)
		c, h, w := src.shape[0], src.shape[1], src.shape[2]
		switch k := r.IntN(6); {
		case k <= 1:
			oc := 1 + r.IntN(5)
			b.Conv(src.name, out, c, oc, 3, 1, 1, r.IntN(2) == 0, 0.5)
			blobs = append(blobs, blob{out, [3]int{oc, h, w}})
		case k == 2:
			// In place, Caffe style, or to a new name.
			name := out
			if r.IntN(2) == 0 && src.name != "data" {
				name = src.name
			}
			b.Op(weights.Op{Name: out, Type: weights.OpReLU, Inputs: []string{src.name}, Output: name, NegativeSlope: 0.2})
			blobs = append(blobs, blob{name, src.shape})
		case k == 3:
			same := pickSame(src.shape)
			other := same[r.IntN(len(same))]
			b.Op(weights.Op{Type: weights.OpEltwise, Inputs: []string{src.name, other}, Output: out, Operation: "sum", ReLU: r.IntN(2) == 0})
			blobs = append(blobs, blob{out, src.shape})
		case k == 4:
			var other blob
			for _, bl := range blobs {
				if bl.shape[1] == h && bl.shape[2] == w {
					other = bl
				}
			}
			b.Op(weights.Op{Type: weights.OpConcat, Inputs: []string{src.name, other.name}, Output: out})
			blobs = append(blobs, blob{out, [3]int{c + other.shape[0], h, w}})
		default:
			b.Op(weights.Op{Type: weights.OpPool, Inputs: []string{src.name}, Output: out, Pool: "max", RoundMode: "floor",
				Kernel: [2]int{3, 3}, Stride: [2]int{1, 1}, Pad: [2]int{1, 1}})
			blobs = append(blobs, blob{out, src.shape})
		}
	}
	last := blobs[len(blobs)-1]
	b.Op(weights.Op{Type: weights.OpFlatten, Inputs: []string{last.name}, Output: "flat"})
	k := last.shape[0] * last.shape[1] * last.shape[2]
	b.InnerProduct("flat", "fc", k, 6, false, 0.1)
	b.Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"fc"}, Output: "prob"})
	b.Labels(6)
	return b
}

// checkPlan simulates p: it tracks which storage each buffer holds and fails
// if an op reads a buffer that another storage has overwritten since its
// value was written, or if an op's output overwrites one of its own inputs
// other than through an in-place ReLU or a flatten alias.
func checkPlan(t *testing.T, p *Program) {
	t.Helper()
	// A storage is a value and the values in-place steps derive from it
	// (same buffer, same data or an elementwise rewrite of it). holds[b] is
	// the storage whose data buffer b holds.
	storage := make([]int, len(p.Values))
	for v := range storage {
		storage[v] = v
	}
	holds := make([]int, len(p.Buffers))
	for i := range holds {
		holds[i] = -1
	}
	write := func(v int) {
		val := &p.Values[v]
		if val.Buffer < 0 || p.Buffers[val.Buffer] < val.Offset+val.Size {
			t.Fatalf("value %d (%s, %d floats) does not fit buffer %d", v, val.Blob, val.Size, val.Buffer)
		}
		holds[val.Buffer] = storage[v]
	}
	write(p.Input)
	for i, s := range p.Steps {
		if p.Values[s.Out].Def != i {
			t.Fatalf("step %d (%s) writes value %d, whose Def is %d", i, s.Name, s.Out, p.Values[s.Out].Def)
		}
		for _, v := range s.In {
			if b := p.Values[v].Buffer; holds[b] != storage[v] {
				t.Fatalf("step %d (%s) reads value %d from buffer %d, overwritten by storage %d", i, s.Name, v, b, holds[b])
			}
			if p.Values[v].Last < i {
				t.Fatalf("step %d (%s) reads value %d after its last reader %d", i, s.Name, v, p.Values[v].Last)
			}
			if p.Values[v].Buffer == p.Values[s.Out].Buffer && !s.InPlace {
				t.Fatalf("step %d (%s, %s) writes the buffer it reads", i, s.Name, s.Kind)
			}
		}
		if s.InPlace {
			if p.Values[s.Out].Buffer != p.Values[s.In[0]].Buffer {
				t.Fatalf("in-place step %d (%s) writes another buffer", i, s.Name)
			}
			storage[s.Out] = storage[s.In[0]]
			if s.Kind != weights.OpFlatten {
				// It rewrites the data: nothing of the storage may be read later.
				for v := range p.Values {
					if storage[v] == storage[s.Out] && v != s.Out && p.Values[v].Def <= i && p.Values[v].Last > i {
						t.Fatalf("in-place step %d (%s) overwrites value %d, read until step %d", i, s.Name, v, p.Values[v].Last)
					}
				}
			}
		}
		write(s.Out)
	}
	for _, v := range append([]int{p.Output}, p.Taps...) {
		if holds[p.Values[v].Buffer] != storage[v] {
			t.Fatalf("value %d (%s), the output or a tap, was overwritten before the end", v, p.Values[v].Blob)
		}
	}
}

// TestPlan checks liveness packing on tinyResNet and random graphs: the plan
// is consistent (checkPlan), needs less memory than storing every value, and
// computes bit for bit what a plan without reuse computes.
func TestPlan(t *testing.T) {
	builders := []*weightstest.Builder{tinyResNet(1)}
	for seed := uint64(1); seed <= 20; seed++ {
		builders = append(builders, randomGraph(seed))
	}
	for i, b := range builders {
		t.Run(fmt.Sprintf("%d-%s", i, b.M.Model), func(t *testing.T) {
			w := readWeights(t, b)
			p := compile(t, w, CompileOptions{})
			checkPlan(t, p)
			checkPlan(t, compile(t, w, CompileOptions{NoReuse: true}))
			if p.ActivationFloats() >= p.valueFloats() {
				t.Errorf("packed plan needs %d floats, no less than the %d of all values", p.ActivationFloats(), p.valueFloats())
			}
			in := b.Random(w.Manifest.Input.Channels*w.Manifest.Input.Height*w.Manifest.Input.Width, 2)
			var outs [2][]float32
			for j, noReuse := range []bool{false, true} {
				c, err := NewCPU(compile(t, w, CompileOptions{NoReuse: noReuse}), w, CPUOptions{Threads: 1})
				if err != nil {
					t.Fatal(err)
				}
				out, err := run1(c, in)
				if err != nil {
					t.Fatal(err)
				}
				outs[j] = append([]float32(nil), out...)
				c.Close()
			}
			for j := range outs[0] {
				if math.Float32bits(outs[0][j]) != math.Float32bits(outs[1][j]) {
					t.Fatalf("output %d: packed plan %v, unpacked %v", j, outs[0][j], outs[1][j])
				}
			}
		})
	}
}

// TestPlanHand checks the buffer count of a chain, where two buffers suffice
// (ping-pong), and that an in-place ReLU adds none.
func TestPlanHand(t *testing.T) {
	b := weightstest.New("chain", 1, 4, 4, 1)
	b.Conv("data", "c1", 1, 2, 3, 1, 1, false, 1)
	b.Op(weights.Op{Type: weights.OpReLU, Inputs: []string{"c1"}, Output: "c1"})
	b.Conv("c1", "c2", 2, 2, 3, 1, 1, false, 1)
	b.Conv("c2", "c3", 2, 2, 3, 1, 1, false, 1)
	b.Conv("c3", "c4", 2, 1, 3, 1, 1, false, 1)
	b.Labels(16)
	w := readWeights(t, b)
	p := compile(t, w, CompileOptions{})
	checkPlan(t, p)
	if len(p.Buffers) != 2 || p.ActivationFloats() != 2*32 {
		t.Errorf("chain plan: buffers %v, want two of 32 floats", p.Buffers)
	}
	if relu := p.Steps[1]; !relu.InPlace || p.Values[relu.Out].Buffer != p.Values[p.Steps[0].Out].Buffer {
		t.Error("the ReLU did not run in place")
	}
}
