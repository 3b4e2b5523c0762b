package convert

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/tools/convert/caffe"
)

func opSummary(g *Graph) string {
	var parts []string
	for _, n := range g.Nodes {
		s := n.Op.Type
		if n.Op.ReLU && n.Op.Type != weights.OpReLU {
			s += "+relu"
		}
		parts = append(parts, fmt.Sprintf("%s:%s%v", n.Op.Name, s, n.Op.OutShape))
	}
	return strings.Join(parts, " ")
}

func TestLowerMiniResNet(t *testing.T) {
	g, err := Lower(miniResNet(1))
	if err != nil {
		t.Fatal(err)
	}
	if g.LayersIn != 20 || len(g.Nodes) != 20 {
		t.Errorf("layers in %d, nodes %d; want 20 and 20", g.LayersIn, len(g.Nodes))
	}
	if g.Input != (weights.Input{Name: "data", Channels: 3, Height: 8, Width: 8}) {
		t.Errorf("input %+v", g.Input)
	}
	// SSA: the in-place chain on conv1 produces conv1, conv1#1, conv1#2, conv1#3.
	wantOuts := map[string]string{"conv1": "conv1", "bn_conv1": "conv1#1", "scale_conv1": "conv1#2", "conv1_relu": "conv1#3"}
	for _, n := range g.Nodes {
		if w, ok := wantOuts[n.Op.Name]; ok && n.Op.Output != w {
			t.Errorf("%s outputs %q, want %q", n.Op.Name, n.Op.Output, w)
		}
		if n.Op.Name == "pool1" && n.Op.Inputs[0] != "conv1#3" {
			t.Errorf("pool1 reads %q, want conv1#3 (after the ReLU)", n.Op.Inputs[0])
		}
	}
	g.Optimize()
	want := "conv1:conv+relu[8 8 8] pool1:pool[8 4 4] res_a:conv[6 4 4] res_b1:conv+relu[4 4 4] res_b2:conv[6 4 4] " +
		"res:eltwise+relu[6 4 4] pool5:pool[6 1 1] fc10:inner_product[10 1 1] prob:softmax[10 1 1]"
	if got := opSummary(g); got != want {
		t.Errorf("optimized ops:\n got %s\nwant %s", got, want)
	}
	// Final names: every surviving value has its Caffe name again.
	for _, n := range g.Nodes {
		if strings.Contains(n.Op.Output, "#") {
			t.Errorf("%s output %q kept its SSA suffix", n.Op.Name, n.Op.Output)
		}
	}
	if g.Output != "prob" {
		t.Errorf("output %q, want prob", g.Output)
	}
	if got := g.Nodes[0].Layers; strings.Join(got, ",") != "conv1,bn_conv1,scale_conv1,conv1_relu" {
		t.Errorf("conv1 stands for %v", got)
	}
	tensors := strings.Join(g.Tensors(), " ")
	wantT := "conv1/weight conv1/bias res_a/weight res_a/bias res_b1/weight res_b1/bias res_b2/weight res_b2/bias fc10/weight fc10/bias"
	if tensors != wantT {
		t.Errorf("tensors %s\nwant %s", tensors, wantT)
	}
}

// TestFoldValues checks the folded tensors of one conv+BN+Scale against the
// formulas written out by hand, value by value.
func TestFoldValues(t *testing.T) {
	for _, s := range []float32{1, 0.25, 0} {
		b := newBuilder(7, 2, 5, 5)
		conv := b.conv("c", "data", "c", 2, 3, 3, 1, 0, true)
		b.bnScale("c", "c", 3, s)
		g, err := Lower(b.net)
		if err != nil {
			t.Fatal(err)
		}
		g.Optimize()
		if len(g.Nodes) != 1 {
			t.Fatalf("s=%g: %s", s, opSummary(g))
		}
		bn, sc := layer(b.net, "bn_c"), layer(b.net, "scale_c")
		w, _ := g.TensorF64("c/weight")
		bias, _ := g.TensorF64("c/bias")
		for oc := 0; oc < 3; oc++ {
			inv := 0.0
			if s != 0 {
				inv = 1 / float64(s)
			}
			mean := float64(bn.Blobs[0].Data[oc]) * inv
			vr := float64(bn.Blobs[1].Data[oc]) * inv
			a := 1 / math.Sqrt(vr+1e-5)
			gamma, beta := float64(sc.Blobs[0].Data[oc]), float64(sc.Blobs[1].Data[oc])
			// y = gamma*((conv(x)+b - mean)*a) + beta
			wantB := gamma*(float64(conv.Blobs[1].Data[oc])-mean)*a + beta
			if d := math.Abs(bias[oc] - wantB); d > 1e-12*math.Max(1, math.Abs(wantB)) {
				t.Errorf("s=%g bias[%d] = %v, want %v", s, oc, bias[oc], wantB)
			}
			for j := 0; j < 18; j++ {
				wantW := float64(conv.Blobs[0].Data[oc*18+j]) * a * gamma
				if d := math.Abs(w[oc*18+j] - wantW); d > 1e-14*math.Abs(wantW) {
					t.Errorf("s=%g w[%d,%d] = %v, want %v", s, oc, j, w[oc*18+j], wantW)
				}
			}
		}
	}
}

func TestShapeInference(t *testing.T) {
	type tc struct {
		name  string
		in    [3]int
		layer func(b *builder) *caffe.Layer
		want  Shape
	}
	convL := func(oc, k, s, p, d, group int) func(b *builder) *caffe.Layer {
		return func(b *builder) *caffe.Layer {
			cin := b.net.Inputs[0].Shape[1]
			l := b.conv("l", "data", "out", cin, oc, k, s, p, false)
			l.Conv.Dilation = []int{d}
			l.Conv.Group = group
			l.Blobs[0] = b.blob(oc, cin/group, k, k)
			return l
		}
	}
	poolL := func(method, k, s, p int, global bool, round int) func(b *builder) *caffe.Layer {
		return func(b *builder) *caffe.Layer {
			l := b.pool("l", "data", "out", method, k, s, p, global)
			l.Pooling.RoundMode = round
			return l
		}
	}
	cases := []tc{
		{"conv 7x7/2 pad 3 (ResNet conv1)", [3]int{3, 224, 224}, convL(64, 7, 2, 3, 1, 1), Shape{64, 112, 112}},
		{"conv 1x1/2", [3]int{256, 56, 56}, convL(512, 1, 2, 0, 1, 1), Shape{512, 28, 28}},
		{"conv dilation 2", [3]int{2, 7, 7}, convL(4, 3, 2, 1, 2, 1), Shape{4, 3, 3}}, // (7+2-5)/2+1
		{"conv group 2", [3]int{4, 5, 5}, convL(6, 3, 1, 0, 1, 2), Shape{6, 3, 3}},
		{"conv rect kernel _h/_w", [3]int{1, 10, 8}, func(b *builder) *caffe.Layer {
			l := b.conv("l", "data", "out", 1, 2, 1, 1, 0, false)
			l.Conv.KernelSize, l.Conv.Pad, l.Conv.Stride = nil, nil, nil
			l.Conv.HasKernelHW, l.Conv.KernelH, l.Conv.KernelW = true, 3, 1
			l.Conv.HasPadHW, l.Conv.PadH, l.Conv.PadW = true, 0, 2
			l.Conv.HasStrideHW, l.Conv.StrideH, l.Conv.StrideW = true, 2, 3
			l.Blobs[0] = b.blob(2, 1, 3, 1)
			return l
		}, Shape{2, 4, 4}}, // h: (10-3)/2+1 = 4; w: (8+4-1)/3+1 = 4
		{"max pool 3/2 ceil (ResNet pool1)", [3]int{64, 112, 112}, poolL(caffe.PoolMax, 3, 2, 0, false, caffe.RoundCeil), Shape{64, 56, 56}},
		{"max pool 3/2 floor", [3]int{64, 112, 112}, poolL(caffe.PoolMax, 3, 2, 0, false, caffe.RoundFloor), Shape{64, 55, 55}},
		{"pool pad: last window clipped", [3]int{1, 5, 5}, poolL(caffe.PoolMax, 2, 2, 1, false, caffe.RoundCeil), Shape{1, 3, 3}},
		{"pool pad: last window kept", [3]int{1, 6, 6}, poolL(caffe.PoolAve, 3, 2, 1, false, caffe.RoundCeil), Shape{1, 4, 4}},
		{"global ave pool", [3]int{2048, 7, 7}, poolL(caffe.PoolAve, 0, 1, 0, true, caffe.RoundCeil), Shape{2048, 1, 1}},
		{"flatten", [3]int{3, 4, 5}, func(b *builder) *caffe.Layer {
			return b.add(&caffe.Layer{Name: "l", Type: "Flatten", Bottoms: []string{"data"}, Tops: []string{"out"}, Flatten: caffe.DefaultFlattenParam()})
		}, Shape{60, 1, 1}},
		{"concat", [3]int{3, 4, 4}, func(b *builder) *caffe.Layer {
			b.conv("c", "data", "c", 3, 5, 1, 1, 0, false)
			return b.add(&caffe.Layer{Name: "l", Type: "Concat", Bottoms: []string{"data", "c"}, Tops: []string{"out"}, Concat: caffe.DefaultConcatParam()})
		}, Shape{8, 4, 4}},
		{"inner product transpose", [3]int{3, 2, 2}, func(b *builder) *caffe.Layer {
			p := caffe.DefaultInnerProductParam()
			p.NumOutput, p.Transpose = 7, true
			return b.add(&caffe.Layer{Name: "l", Type: "InnerProduct", Bottoms: []string{"data"}, Tops: []string{"out"},
				InnerProd: p, Blobs: []*caffe.Blob{b.blob(12, 7), b.blob(7)}})
		}, Shape{7, 1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBuilder(3, c.in[0], c.in[1], c.in[2])
			c.layer(b)
			g, err := Lower(b.net)
			if err != nil {
				t.Fatal(err)
			}
			last := g.Nodes[len(g.Nodes)-1]
			if last.Op.OutShape != c.want {
				t.Errorf("out shape %v, want %v", last.Op.OutShape, c.want)
			}
		})
	}
}

// TestLowerErrors: every check, each on a small net broken in one way.
func TestLowerErrors(t *testing.T) {
	type tc struct {
		name   string
		break_ func(net *caffe.Net)
		want   string // substring of the message
		typ    any    // a pointer to the expected error type, for errors.As
	}
	var layerErr *LayerError
	var unsup *UnsupportedError
	var netErr *NetError
	cases := []tc{
		{"unsupported type", func(n *caffe.Net) { layer(n, "pool1").Type = "LRN" }, `layer "pool1" has type "LRN"`, &unsup},
		{"duplicate layer name", func(n *caffe.Net) { layer(n, "res_b2").Name = "res_a" }, `duplicate layer name "res_a"`, &layerErr},
		{"dangling bottom", func(n *caffe.Net) { layer(n, "res").Bottoms[1] = "nowhere" }, `reads blob "nowhere", which no layer produces`, &layerErr},
		{"cycle", func(n *caffe.Net) { layer(n, "res_a").Bottoms[0] = "res" }, `reads blob "res" before any layer produces it (layer "res" produces it later)`, &layerErr},
		{"missing blob", func(n *caffe.Net) { l := layer(n, "res_b1"); l.Blobs = l.Blobs[:1] }, `layer "res_b1" (Convolution): has 1 blobs, want 2`, &layerErr},
		{"extra blob", func(n *caffe.Net) {
			l := layer(n, "conv1_relu")
			l.Blobs = []*caffe.Blob{{Shape: []int{1}, Data: []float32{1}}}
		}, `has 1 blobs, want 0`, &layerErr},
		{"mis-shaped conv weight", func(n *caffe.Net) { layer(n, "res_a").Blobs[0].Shape = []int{6, 4, 2, 1} }, `blob 0 (weight) has shape [6 4 2 1], want [6 8 1 1]`, &layerErr},
		{"mis-sized blob", func(n *caffe.Net) { l := layer(n, "fc10"); l.Blobs[1].Data = l.Blobs[1].Data[:9] }, `blob 1 has shape [10] but 9 values`, &layerErr},
		{"wrong BN channels", func(n *caffe.Net) {
			l := layer(n, "bn_res_a")
			l.Blobs[0].Shape, l.Blobs[0].Data = []int{5}, l.Blobs[0].Data[:5]
		}, `blob 0 (mean) has shape [5], want [6]`, &layerErr},
		{"duplicate top", func(n *caffe.Net) { layer(n, "res_b1").Tops[0] = "res_a" }, `top "res_a" is already produced`, &layerErr},
		{"eltwise shapes", func(n *caffe.Net) { layer(n, "res").Bottoms[1] = "res_b1" }, `bottom 1 has shape [4 4 4], bottom 0 has [6 4 4]`, &layerErr},
		{"eltwise coeff count", func(n *caffe.Net) { layer(n, "res").Eltwise.Coeff = []float64{1, 2, 3} }, `3 coeffs for 2 bottoms`, &layerErr},
		{"unused branch", func(n *caffe.Net) { layer(n, "res").Bottoms[1] = "res_a"; layer(n, "res").Eltwise.Coeff = nil }, `2 outputs`, &netErr},
		{"no input", func(n *caffe.Net) { n.Inputs = nil }, `reads blob "data", which no layer produces and which is not an input`, &layerErr},
		{"batch statistics", func(n *caffe.Net) { f := false; layer(n, "bn_conv1").BatchNorm.UseGlobalStats = &f }, `use_global_stats: false`, &unsup},
		{"NaN weight", func(n *caffe.Net) { layer(n, "conv1").Blobs[0].Data[5] = float32(math.NaN()) }, `blob 0 value 5 is NaN`, &layerErr},
		{"scale with two bottoms", func(n *caffe.Net) { l := layer(n, "scale_res_a"); l.Bottoms = append(l.Bottoms, "pool1") }, `scale taken from a second bottom`, &unsup},
		{"pool pad >= kernel", func(n *caffe.Net) { layer(n, "pool1").Pooling.Pad = 3 }, `pad [3 3] must be smaller than the kernel [3 3]`, &layerErr},
		{"stochastic pool", func(n *caffe.Net) { layer(n, "pool1").Pooling.Pool = caffe.PoolStochastic }, `pool method 2`, &unsup},
		{"softmax axis", func(n *caffe.Net) { layer(n, "prob").Softmax.Axis = 0 }, `axis 0`, &unsup},
		{"kernel larger than input", func(n *caffe.Net) { layer(n, "pool1").Pooling.KernelSize = 20 }, `larger than the padded input`, &layerErr},
		{"second input", func(n *caffe.Net) { n.Inputs = append(n.Inputs, caffe.Input{Name: "x", Shape: []int{1, 1, 2, 2}}) }, `exactly one input`, &netErr},
		{"huge input", func(n *caffe.Net) { n.Inputs[0].Shape = []int{1, 3, 1 << 20, 1 << 20} }, `more than 268435456 values`, &netErr},
		{"group mismatch", func(n *caffe.Net) { layer(n, "res_b1").Conv.Group = 3 }, `group 3 does not divide`, &layerErr},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			net := miniResNet(1)
			c.break_(net)
			_, err := Lower(net)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q\ndoes not contain %q", err, c.want)
			}
			if !errors.As(err, c.typ) {
				t.Errorf("error %T, want %T", err, c.typ)
			}
		})
	}
}

func TestTrainingLayersSkipped(t *testing.T) {
	net := miniResNet(2)
	net.Layers = append(net.Layers, &caffe.Layer{Name: "loss", Type: "SoftmaxWithLoss", Bottoms: []string{"fc10", "label"},
		Tops: []string{"loss"}, Phase: caffe.PhaseTrain})
	g, err := Lower(net)
	if err != nil {
		t.Fatal(err)
	}
	if g.LayersIn != 20 {
		t.Errorf("layers in %d, want 20 (the TRAIN-only loss skipped)", g.LayersIn)
	}
}

// TestFusionLimits: an affine is not folded into a conv whose output has a
// second reader, nor across a ReLU; a ReLU is not fused into a pool; dropout
// disappears; a ReLU with a negative slope keeps it.
func TestFusionLimits(t *testing.T) {
	b := newBuilder(5, 2, 6, 6)
	b.conv("c1", "data", "c1", 2, 3, 3, 1, 1, true)
	b.add(&caffe.Layer{Name: "drop", Type: "Dropout", Bottoms: []string{"c1"}, Tops: []string{"c1"}, Dropout: caffe.DefaultDropoutParam()})
	b.add(&caffe.Layer{Name: "leaky", Type: "ReLU", Bottoms: []string{"c1"}, Tops: []string{"c1r"}, ReLU: &caffe.ReLUParam{NegativeSlope: 0.1}})
	b.bnScale("after_relu", "c1r", 3, 1)                   // affine after a fused ReLU: stays (2 affines merged into one)
	b.pool("p", "c1r", "p", caffe.PoolMax, 2, 2, 0, false) // reads the affine's output
	b.relu("p_relu", "p")                                  // ReLU after a pool: standalone
	b.conv("c2", "p", "c2", 3, 3, 1, 1, 0, false)          // reads p (after ReLU)
	b.conv("c3", "c2", "c3", 3, 3, 1, 1, 0, false)         // c2 has two readers: c3 and the eltwise
	b.add(&caffe.Layer{Name: "sum", Type: "Eltwise", Bottoms: []string{"c2", "c3"}, Tops: []string{"sum"},
		Eltwise: &caffe.EltwiseParam{Operation: caffe.EltwiseSum, Coeff: []float64{1, -1}}})
	g, err := Lower(b.net)
	if err != nil {
		t.Fatal(err)
	}
	g.Optimize()
	want := "c1:conv+relu[3 6 6] bn_after_relu:affine[3 6 6] p:pool[3 3 3] p_relu:relu[3 3 3] c2:conv[3 3 3] c3:conv[3 3 3] sum:eltwise[3 3 3]"
	if got := opSummary(g); got != want {
		t.Errorf("ops:\n got %s\nwant %s", got, want)
	}
	if g.Nodes[0].Op.NegativeSlope != 0.1 {
		t.Errorf("negative slope %v", g.Nodes[0].Op.NegativeSlope)
	}
	if c := g.Nodes[len(g.Nodes)-1].Op.Coeffs; len(c) != 2 || c[1] != -1 {
		t.Errorf("coeffs %v", c)
	}
}
