package convert

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/residual-go/residual/core/shape"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/tools/convert/caffe"
	"github.com/residual-go/residual/tools/convert/caffe/reference"
)

// TestShapeRules pins the converter's copy of Caffe's size rules with
// hand-computed cases (core/shape has the same table for its own copy).
func TestShapeRules(t *testing.T) {
	type geom struct{ in, k, s, p, d [2]int }
	for _, tc := range []struct {
		name string
		conv bool
		ceil bool
		g    geom
		want [2]int
		err  string
	}{
		{"pool: pad_h only drops a width window (issue 8)", false, true, geom{[2]int{6, 6}, [2]int{2, 1}, [2]int{1, 3}, [2]int{1, 0}, [2]int{}}, [2]int{7, 2}, ""},
		{"pool: pad_w only drops a height window", false, true, geom{[2]int{6, 6}, [2]int{1, 2}, [2]int{3, 1}, [2]int{0, 1}, [2]int{}}, [2]int{2, 7}, ""},
		{"pool: no pad keeps a window past the input", false, true, geom{[2]int{6, 6}, [2]int{2, 1}, [2]int{1, 3}, [2]int{0, 0}, [2]int{}}, [2]int{5, 3}, ""},
		{"pool: ResNet pool1 ceil", false, true, geom{[2]int{112, 112}, [2]int{3, 3}, [2]int{2, 2}, [2]int{0, 0}, [2]int{}}, [2]int{56, 56}, ""},
		{"pool: ResNet pool1 floor", false, false, geom{[2]int{112, 112}, [2]int{3, 3}, [2]int{2, 2}, [2]int{0, 0}, [2]int{}}, [2]int{55, 55}, ""},
		{"pool: ceil with pad drops", false, true, geom{[2]int{5, 5}, [2]int{2, 2}, [2]int{2, 2}, [2]int{1, 1}, [2]int{}}, [2]int{3, 3}, ""},
		{"pool: ceil with pad keeps", false, true, geom{[2]int{10, 10}, [2]int{3, 3}, [2]int{2, 2}, [2]int{1, 1}, [2]int{}}, [2]int{6, 6}, ""},
		{"pool: asymmetric pads", false, true, geom{[2]int{13, 11}, [2]int{5, 4}, [2]int{3, 3}, [2]int{2, 1}, [2]int{}}, [2]int{5, 4}, ""},
		{"pool: global", false, true, geom{[2]int{3, 9}, [2]int{3, 9}, [2]int{1, 1}, [2]int{0, 0}, [2]int{}}, [2]int{1, 1}, ""},
		{"pool: float32 division", false, true, geom{[2]int{1<<24 + 2, 1}, [2]int{1, 1}, [2]int{1, 1}, [2]int{0, 0}, [2]int{}}, [2]int{1<<24 + 1, 1}, ""},
		{"pool: pad not below kernel", false, true, geom{[2]int{8, 8}, [2]int{2, 2}, [2]int{1, 1}, [2]int{0, 2}, [2]int{}}, [2]int{}, "smaller than the kernel"},
		{"pool: kernel over the padded input", false, true, geom{[2]int{3, 3}, [2]int{4, 2}, [2]int{2, 1}, [2]int{0, 0}, [2]int{}}, [2]int{}, "larger than the padded input"},
		{"conv: ResNet conv1", true, false, geom{[2]int{224, 224}, [2]int{7, 7}, [2]int{2, 2}, [2]int{3, 3}, [2]int{1, 1}}, [2]int{112, 112}, ""},
		{"conv: asymmetric", true, false, geom{[2]int{5, 7}, [2]int{3, 1}, [2]int{2, 1}, [2]int{1, 0}, [2]int{1, 1}}, [2]int{3, 7}, ""},
		{"conv: dilation and pad", true, false, geom{[2]int{10, 6}, [2]int{3, 3}, [2]int{2, 1}, [2]int{2, 1}, [2]int{2, 3}}, [2]int{5, 2}, ""},
		{"conv: extent over the padded input", true, false, geom{[2]int{4, 4}, [2]int{3, 3}, [2]int{1, 1}, [2]int{0, 0}, [2]int{2, 1}}, [2]int{}, "kernel extent 5 is larger"},
		{"conv: extent beyond Caffe's int", true, false, geom{[2]int{8, 8}, [2]int{3, 1}, [2]int{1, 1}, [2]int{0, 0}, [2]int{1 << 30, 1}}, [2]int{}, "larger than the padded input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]int
			var err error
			if tc.conv {
				got, err = convOutputShape(tc.g.in, tc.g.k, tc.g.s, tc.g.p, tc.g.d)
			} else {
				got, err = poolOutputShape(tc.g.in, tc.g.k, tc.g.s, tc.g.p, tc.ceil)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// shapeNet is a one-channel input followed by one convolution (one output
// channel, weights of ones) or pooling layer with the given geometry, as a
// Caffe file would give it (every _h/_w field set explicitly).
func shapeNet(isConv, ceil, global bool, in, k, s, p, d [2]int) *caffe.Net {
	l := &caffe.Layer{Name: "layer", Bottoms: []string{"data"}, Tops: []string{"out"}}
	if isConv {
		c := caffe.DefaultConvolutionParam()
		c.NumOutput, c.BiasTerm = 1, false
		c.KernelH, c.KernelW, c.HasKernelHW = k[0], k[1], true
		c.StrideH, c.StrideW, c.HasStrideHW = s[0], s[1], true
		c.PadH, c.PadW, c.HasPadHW = p[0], p[1], true
		c.Dilation = []int{d[0], d[1]}
		l.Type, l.Conv = "Convolution", c
		if n := k[0] * k[1]; n <= 1<<12 {
			w := &caffe.Blob{Shape: []int{1, 1, k[0], k[1]}, Data: make([]float32, n)}
			for i := range w.Data {
				w.Data[i] = 1
			}
			l.Blobs = []*caffe.Blob{w}
		}
	} else {
		q := caffe.DefaultPoolingParam()
		if !global { // Caffe refuses a kernel size with global_pooling
			q.KernelH, q.KernelW, q.HasKernelHW = k[0], k[1], true
		}
		q.StrideH, q.StrideW, q.HasStrideHW = s[0], s[1], true
		q.PadH, q.PadW, q.HasPadHW = p[0], p[1], true
		q.GlobalPooling = global
		if !ceil {
			q.RoundMode = caffe.RoundFloor
		}
		l.Type, l.Pooling = "Pooling", q
	}
	return &caffe.Net{Name: "shape", Inputs: []caffe.Input{{Name: "data", Shape: []int{1, 1, in[0], in[1]}}}, Layers: []*caffe.Layer{l}}
}

// manifestOf builds, in memory, the manifest Write would write for a lowered
// and optimized graph with a GRAY input (shard hashes are not checked by
// Validate).
func manifestOf(g *Graph) *weights.Manifest {
	m := &weights.Manifest{Format: weights.FormatName, Version: weights.FormatVersion, Model: g.Name,
		Input: g.Input, Output: g.Output,
		Preprocess: weights.Preprocess{ChannelOrder: "GRAY", Resize: max(g.Input.Height, g.Input.Width), Scale: 1}}
	for _, n := range g.Nodes {
		m.Ops = append(m.Ops, n.Op)
	}
	var off int64
	for _, name := range g.Tensors() {
		s, _ := g.TensorShape(name)
		n := int64(2)
		for _, d := range s {
			n *= int64(d)
		}
		m.Tensors = append(m.Tensors, weights.Tensor{Name: name, Shape: s, DType: weights.DTypeF16, Offset: off, Length: n})
		off += (n + weights.Alignment - 1) / weights.Alignment * weights.Alignment
	}
	if len(m.Tensors) > 0 {
		m.Shards = []weights.Shard{{File: ShardName(0), Size: off, SHA256: strings.Repeat("0", 64)}}
	}
	return m
}

// TestIssue8PoolingOpensInCore converts issue 8's net (MAX pooling with
// pad_h 1, pad_w 0, kernel 2x1, stride 1x3 after a 1x1 convolution to two
// channels on a 3x6x6 input) and opens the result with core's reader: the
// converter writes [2 7 2], which core (and the reference) compute too.
func TestIssue8PoolingOpensInCore(t *testing.T) {
	b := newBuilder(8, 3, 6, 6)
	b.conv("conv", "data", "conv", 3, 2, 1, 1, 0, true)
	p := caffe.DefaultPoolingParam()
	p.PadH, p.PadW, p.HasPadHW = 1, 0, true
	p.KernelH, p.KernelW, p.HasKernelHW = 2, 1, true
	p.StrideH, p.StrideW, p.HasStrideHW = 1, 3, true
	b.add(&caffe.Layer{Name: "pool", Type: "Pooling", Bottoms: []string{"conv"}, Tops: []string{"pool"}, Pooling: p})
	ref, err := reference.Shapes(b.net)
	if err != nil {
		t.Fatal(err)
	}
	if got := ref["pool"]; fmt.Sprint(got) != "[2 7 2]" {
		t.Fatalf("reference: pool is %v, want [2 7 2]", got)
	}
	g, err := Lower(b.net)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "m")
	if _, err := Write(out, g, Meta{Model: "issue 8", Preprocess: weights.Preprocess{ChannelOrder: "BGR", Resize: 6, Scale: 1}}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := weights.Read(os.DirFS(out), weights.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Manifest.Ops[len(w.Manifest.Ops)-1].OutShape; got != [3]int{2, 7, 2} {
		t.Fatalf("out_shape %v, want [2 7 2]", got)
	}
}

// FuzzShapeRules fuzzes the three copies of Caffe's size rules against each
// other on random geometry: the converter's (shape.go), core's (core/shape)
// and the float64 reference's. The two homes must agree exactly, refusals
// included. The reference must give the same shape whenever the homes accept;
// it may accept what they refuse only in the documented cases (an empty
// input, a kernel over the padded input, sizes beyond Caffe's int). For geometry within core's
// limits the whole path runs too: Lower, then the manifest validator.
func FuzzShapeRules(f *testing.F) {
	// isConv, ceil, global, h, w, kh, kw, sh, sw, ph, pw, dh, dw
	f.Add(false, true, false, uint32(6), uint32(6), uint16(2), uint16(1), uint16(1), uint16(3), uint16(1), uint16(0), uint16(1), uint16(1)) // issue 8
	f.Add(false, true, false, uint32(6), uint32(6), uint16(2), uint16(1), uint16(1), uint16(3), uint16(0), uint16(0), uint16(1), uint16(1))
	f.Add(false, false, false, uint32(5), uint32(5), uint16(2), uint16(2), uint16(2), uint16(2), uint16(1), uint16(1), uint16(1), uint16(1))
	f.Add(false, true, true, uint32(7), uint32(5), uint16(0), uint16(0), uint16(1), uint16(1), uint16(0), uint16(0), uint16(1), uint16(1))
	f.Add(false, true, false, uint32(1<<24+2), uint32(1), uint16(1), uint16(1), uint16(1), uint16(1), uint16(0), uint16(0), uint16(1), uint16(1))
	f.Add(true, false, false, uint32(10), uint32(6), uint16(3), uint16(3), uint16(2), uint16(1), uint16(2), uint16(1), uint16(2), uint16(3))
	f.Add(true, false, false, uint32(224), uint32(224), uint16(7), uint16(7), uint16(2), uint16(2), uint16(3), uint16(3), uint16(1), uint16(1))
	f.Fuzz(func(t *testing.T, isConv, ceil, global bool, h, w uint32, kh, kw, sh, sw, ph, pw, dh, dw uint16) {
		in := [2]int{int(h), int(w)}
		k, s, p, d := [2]int{int(kh), int(kw)}, [2]int{int(sh), int(sw)}, [2]int{int(ph), int(pw)}, [2]int{int(dh), int(dw)}
		if isConv {
			global = false
		} else {
			d = [2]int{1, 1}
			if global {
				k, s, p = in, [2]int{1, 1}, [2]int{}
			}
		}
		var conv, core [2]int
		var convErr, coreErr error
		if isConv {
			conv, convErr = convOutputShape(in, k, s, p, d)
			core, coreErr = shape.Conv(in, k, s, p, d)
		} else {
			conv, convErr = poolOutputShape(in, k, s, p, ceil)
			core, coreErr = shape.Pool(in, k, s, p, ceil)
		}
		what := fmt.Sprintf("conv=%v ceil=%v global=%v in %v kernel %v stride %v pad %v dilation %v", isConv, ceil, global, in, k, s, p, d)
		if (convErr == nil) != (coreErr == nil) || conv != core && convErr == nil {
			t.Fatalf("%s: converter %v (%v), core %v (%v)", what, conv, convErr, core, coreErr)
		}

		if h <= math.MaxInt32 && w <= math.MaxInt32 {
			net := shapeNet(isConv, ceil, global, in, k, s, p, d)
			shapes, refErr := reference.ShapesAt(net, []int{1, in[0], in[1]})
			var ref [2]int
			if refErr == nil {
				ref = [2]int{shapes["out"][1], shapes["out"][2]}
			}
			switch {
			case coreErr == nil && (refErr != nil || ref != core):
				t.Fatalf("%s: homes give %v, the reference %v (%v)", what, core, ref, refErr)
			case coreErr != nil && refErr == nil && !documentedRefusal(in, k, p, d):
				t.Fatalf("%s: the homes refuse (%v), the reference gives %v", what, coreErr, ref)
			}
		}

		// The whole path, within core's limits (input at most 2^14, a small
		// conv kernel so that its weights can be built).
		if h > 1<<14 || w > 1<<14 || isConv && int(kh)*int(kw) > 1<<12 {
			return
		}
		g, lowerErr := Lower(shapeNet(isConv, ceil, global, in, k, s, p, d))
		if lowerErr != nil {
			if coreErr == nil && !strings.Contains(lowerErr.Error(), "values") {
				t.Fatalf("%s: the homes give %v, Lower refuses: %v", what, core, lowerErr)
			}
			return
		}
		if coreErr != nil {
			t.Fatalf("%s: the homes refuse (%v), Lower accepts", what, coreErr)
		}
		g.Optimize()
		m := manifestOf(g)
		if got := m.Ops[0].OutShape; got != [3]int{1, core[0], core[1]} {
			t.Fatalf("%s: Lower writes out_shape %v, the homes give %v", what, got, core)
		}
		if err := m.Validate(); err != nil && !strings.Contains(err.Error(), "more than") {
			t.Fatalf("%s: core refuses what the converter wrote: %v", what, err)
		}
	})
}

// documentedRefusal reports whether a geometry is one the homes refuse on
// purpose although Caffe (and the reference) compute a size for it: an empty
// input, a kernel (extent) larger than the padded input, or sizes beyond
// Caffe's int.
func documentedRefusal(in, k, p, d [2]int) bool {
	for i := range 2 {
		if in[i] < 1 {
			return true
		}
		padded := int64(in[i]) + 2*int64(p[i])
		extent := int64(d[i])*int64(k[i]-1) + 1
		if extent > padded || padded > math.MaxInt32 || extent > math.MaxInt32 {
			return true
		}
	}
	return false
}
