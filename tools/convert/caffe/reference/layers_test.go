package reference

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/residual-go/residual/tools/convert/caffe"
)

// Helpers that build small nets by hand. Parameters are spelled out in
// full (the defaults a parser would fill in are written explicitly).

func blob(vals ...float32) *caffe.Blob {
	return &caffe.Blob{Shape: []int{len(vals)}, Data: vals}
}

func ones(n int) *caffe.Blob {
	b := &caffe.Blob{Shape: []int{n}, Data: make([]float32, n)}
	for i := range b.Data {
		b.Data[i] = 1
	}
	return b
}

func seq(from, n int) []float64 { // from, from+1, ..., from+n-1
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(from + i)
	}
	return v
}

func layer(name, typ string, bottoms, tops []string) *caffe.Layer {
	return &caffe.Layer{Name: name, Type: typ, Bottoms: bottoms, Tops: tops, Phase: caffe.PhaseAny}
}

func conv(numOut, kernel, pad, stride int, blobs ...*caffe.Blob) *caffe.Layer {
	l := layer("conv", "Convolution", []string{"data"}, []string{"out"})
	l.Conv = &caffe.ConvolutionParam{NumOutput: numOut, BiasTerm: len(blobs) > 1, KernelSize: []int{kernel},
		Pad: []int{pad}, Stride: []int{stride}, Group: 1, Axis: 1}
	l.Blobs = blobs
	return l
}

func pool(method, kernel, pad, stride, round int) *caffe.Layer {
	l := layer("pool", "Pooling", []string{"data"}, []string{"out"})
	l.Pooling = &caffe.PoolingParam{Pool: method, KernelSize: kernel, Pad: pad, Stride: stride, RoundMode: round}
	return l
}

func reluLayer(name, bottom, top string) *caffe.Layer {
	return layer(name, "ReLU", []string{bottom}, []string{top})
}

func boolp(b bool) *bool { return &b }

type layerCase struct {
	name   string
	input  *Tensor
	layers []*caffe.Layer
	shape  []int     // expected shape of blob "out", batch first
	want   []float64 // expected values of blob "out"
}

func run(t *testing.T, input *Tensor, layers ...*caffe.Layer) (map[string]*Tensor, error) {
	t.Helper()
	net := &caffe.Net{Name: "t", Inputs: []caffe.Input{{Name: "data", Shape: input.Shape}}, Layers: layers}
	return Run(net, input, nil)
}

func in(shape []int, vals []float64) *Tensor { return &Tensor{Shape: shape, Data: vals} }

func TestLayers(t *testing.T) {
	// 1 2 3
	// 4 5 6
	// 7 8 9
	x3 := func() *Tensor { return in([]int{1, 1, 3, 3}, seq(1, 9)) }
	// 1..16 in a 4x4 plane: x[r][c] = 4r + c + 1.
	x4 := func() *Tensor { return in([]int{1, 1, 4, 4}, seq(1, 16)) }
	cases := []layerCase{
		{
			// All-ones 3x3 kernel, pad 1: each output is the sum of the 3x3
			// neighbourhood inside the image, plus the bias 0.5.
			// 1+2+4+5=12, 1+..+6=21, 2+3+5+6=16, 1+2+4+5+7+8=27, 45, 33, 24, 39, 28.
			name: "conv ones pad1", input: x3(),
			layers: []*caffe.Layer{conv(1, 3, 1, 1, ones(9), blob(0.5))},
			shape:  []int{1, 1, 3, 3},
			want:   []float64{12.5, 21.5, 16.5, 27.5, 45.5, 33.5, 24.5, 39.5, 28.5},
		},
		{
			// Stride 2: (3+2-3)/2+1 = 2 outputs per axis, the four corner sums.
			name: "conv ones pad1 stride2", input: x3(),
			layers: []*caffe.Layer{conv(1, 3, 1, 2, ones(9))},
			shape:  []int{1, 1, 2, 2},
			want:   []float64{12, 16, 24, 28},
		},
		{
			// Two output channels, one input, 2x2 kernels, no pad: 2x2 output.
			// Kernel 0 = [1 0; 0 0] picks x[y][x]; kernel 1 = [0 0; 0 -1] gives -x[y+1][x+1].
			name: "conv two outputs", input: x3(),
			layers: []*caffe.Layer{conv(2, 2, 0, 1, blob(1, 0, 0, 0, 0, 0, 0, -1))},
			shape:  []int{1, 2, 2, 2},
			want:   []float64{1, 2, 4, 5, -5, -6, -8, -9},
		},
		{
			// group 2: output 0 sees channels 0,1 (1*1 + 2*10 = 21); output 1
			// sees channels 2,3 (3*100 + 4*1000 = 4300).
			name: "conv group", input: in([]int{1, 4, 1, 1}, []float64{1, 2, 3, 4}),
			layers: func() []*caffe.Layer {
				l := conv(2, 1, 0, 1, blob(1, 10, 100, 1000))
				l.Conv.Group = 2
				return []*caffe.Layer{l}
			}(),
			shape: []int{1, 2, 1, 1},
			want:  []float64{21, 4300},
		},
		{
			// 2x2 all-ones kernel with dilation 2 on x[r][c] = 5r+c (5x5): extent 3,
			// output 3x3, out[y][x] = x[y][x]+x[y][x+2]+x[y+2][x]+x[y+2][x+2] = 20y+4x+24.
			name: "conv dilation", input: in([]int{1, 1, 5, 5}, seq(0, 25)),
			layers: func() []*caffe.Layer {
				l := conv(1, 2, 0, 1, ones(4))
				l.Conv.Dilation = []int{2}
				return []*caffe.Layer{l}
			}(),
			shape: []int{1, 1, 3, 3},
			want:  []float64{24, 28, 32, 44, 48, 52, 64, 68, 72},
		},
		{
			// kernel_h 1, kernel_w 3, pad_w 1 on [1 2 3; 4 5 6]: row sums of
			// horizontal neighbours: 1+2, 1+2+3, 2+3; 4+5, 4+5+6, 5+6.
			name: "conv kernel_h/kernel_w", input: in([]int{1, 1, 2, 3}, seq(1, 6)),
			layers: func() []*caffe.Layer {
				l := conv(1, 0, 0, 1, ones(3))
				l.Conv.KernelSize, l.Conv.Pad = nil, nil
				l.Conv.HasKernelHW, l.Conv.KernelH, l.Conv.KernelW = true, 1, 3
				l.Conv.HasPadHW, l.Conv.PadH, l.Conv.PadW = true, 0, 1
				return []*caffe.Layer{l}
			}(),
			shape: []int{1, 1, 2, 3},
			want:  []float64{3, 6, 5, 9, 15, 11},
		},
		{
			// A batch of two runs each image independently.
			name: "conv batch 2", input: in([]int{2, 1, 1, 2}, []float64{1, 2, 3, 4}),
			layers: []*caffe.Layer{conv(1, 1, 0, 1, blob(10), blob(1))},
			shape:  []int{2, 1, 1, 2},
			want:   []float64{11, 21, 31, 41},
		},
		{
			// MAX 3x3 stride 2 on 4x4, ceil: ceil((4-3)/2)+1 = 2 outputs; the
			// last window (cols 2..4) is clipped to cols 2..3.
			// maxima: x[2][2]=11, x[2][3]=12, x[3][2]=15, x[3][3]=16.
			name: "max pool ceil clipped", input: x4(),
			layers: []*caffe.Layer{pool(caffe.PoolMax, 3, 0, 2, caffe.RoundCeil)},
			shape:  []int{1, 1, 2, 2},
			want:   []float64{11, 12, 15, 16},
		},
		{
			// The same with round_mode FLOOR: floor(1/2)+1 = 1 output.
			name: "max pool floor", input: x4(),
			layers: []*caffe.Layer{pool(caffe.PoolMax, 3, 0, 2, caffe.RoundFloor)},
			shape:  []int{1, 1, 1, 1},
			want:   []float64{11},
		},
		{
			// Kernel 2 stride 2 pad 1 on 3x3: ceil((3+2-2)/2)+1 = 3, but the
			// third window would start at 3 >= 3+pad-... (3-1)*2 = 4 >= 3+1:
			// it starts in the padding, so Caffe drops it: 2x2.
			// Windows rows/cols {0}, {1,2}: max 1, 3, 7, 9.
			name: "max pool pad drops last window", input: x3(),
			layers: []*caffe.Layer{pool(caffe.PoolMax, 2, 1, 2, caffe.RoundCeil)},
			shape:  []int{1, 1, 2, 2},
			want:   []float64{1, 3, 7, 9},
		},
		{
			// AVE 3x3 stride 2 pad 1 on 4x4: ceil((4+2-3)/2)+1 = 3 (last window
			// starts at 3 < 4+1, kept). Row windows: [-1,2) -> rows 0,1, divisor
			// extent 3; [1,4) -> rows 1..3, extent 3; [3,6) clipped to the
			// padded size 5 -> [3,5), extent 2, rows 3. Same for columns.
			// (0,0): (1+2+5+6)/9 = 14/9      (0,1): (2+3+4+6+7+8)/9 = 30/9   (0,2): (4+8)/6 = 2
			// (1,0): (5+6+9+10+13+14)/9=57/9 (1,1): 99/9 = 11                (1,2): (8+12+16)/6 = 6
			// (2,0): (13+14)/6 = 4.5         (2,1): (14+15+16)/6 = 7.5       (2,2): 16/4 = 4
			name: "ave pool pad divisor", input: x4(),
			layers: []*caffe.Layer{pool(caffe.PoolAve, 3, 1, 2, caffe.RoundCeil)},
			shape:  []int{1, 1, 3, 3},
			want:   []float64{14.0 / 9, 30.0 / 9, 2, 57.0 / 9, 11, 6, 4.5, 7.5, 4},
		},
		{
			// The same windows with MAX: the maximum of the clipped window.
			name: "max pool pad", input: x4(),
			layers: []*caffe.Layer{pool(caffe.PoolMax, 3, 1, 2, caffe.RoundCeil)},
			shape:  []int{1, 1, 3, 3},
			want:   []float64{6, 8, 8, 14, 16, 16, 14, 16, 16},
		},
		{
			// Global AVE over each 2x2 plane: (1+2+3+4)/4, (5+6+7+8)/4.
			name: "global ave pool", input: in([]int{1, 2, 2, 2}, seq(1, 8)),
			layers: func() []*caffe.Layer {
				l := pool(caffe.PoolAve, 0, 0, 1, caffe.RoundCeil)
				l.Pooling.GlobalPooling = true
				return []*caffe.Layer{l}
			}(),
			shape: []int{1, 2, 1, 1},
			want:  []float64{2.5, 6.5},
		},
		{
			// Scale factor 2: mean = (2, 4)/2 = (1, 2), var = (6, 16)/2 = (3, 8),
			// eps 1: std = 2, 3. Channel 0 (3, 5) -> (1, 2); channel 1 (2, 8) -> (0, 2).
			name: "batchnorm factor 2", input: in([]int{1, 2, 1, 2}, []float64{3, 5, 2, 8}),
			layers: func() []*caffe.Layer {
				l := layer("bn", "BatchNorm", []string{"data"}, []string{"out"})
				l.BatchNorm = &caffe.BatchNormParam{UseGlobalStats: boolp(true), Eps: 1}
				l.Blobs = []*caffe.Blob{blob(2, 4), blob(6, 16), blob(2)}
				return []*caffe.Layer{l}
			}(),
			shape: []int{1, 2, 1, 2},
			want:  []float64{1, 2, 0, 2},
		},
		{
			// Scale factor 0: mean and variance become 0, eps 1: y = x.
			name: "batchnorm factor 0", input: in([]int{1, 1, 1, 2}, []float64{3, -4}),
			layers: func() []*caffe.Layer {
				l := layer("bn", "BatchNorm", []string{"data"}, []string{"out"})
				l.BatchNorm = &caffe.BatchNormParam{Eps: 1} // use_global_stats unset: true at test time
				l.Blobs = []*caffe.Blob{blob(5), blob(7), blob(0)}
				return []*caffe.Layer{l}
			}(),
			shape: []int{1, 1, 1, 2},
			want:  []float64{3, -4},
		},
		{
			// use_global_stats false: the batch's own mean 2 and variance 1.
			name: "batchnorm batch stats", input: in([]int{1, 1, 1, 2}, []float64{1, 3}),
			layers: func() []*caffe.Layer {
				l := layer("bn", "BatchNorm", []string{"data"}, []string{"out"})
				l.BatchNorm = &caffe.BatchNormParam{UseGlobalStats: boolp(false), Eps: 0}
				return []*caffe.Layer{l}
			}(),
			shape: []int{1, 1, 1, 2},
			want:  []float64{-1, 1},
		},
		{
			// gamma (2, -1), beta (0.5, 1): 1*2+.5, 2*2+.5, 3*-1+1, 4*-1+1.
			name: "scale bias", input: in([]int{1, 2, 1, 2}, seq(1, 4)),
			layers: func() []*caffe.Layer {
				l := layer("sc", "Scale", []string{"data"}, []string{"out"})
				l.Scale = &caffe.ScaleParam{Axis: 1, NumAxes: 1, BiasTerm: true}
				l.Blobs = []*caffe.Blob{blob(2, -1), blob(0.5, 1)}
				return []*caffe.Layer{l}
			}(),
			shape: []int{1, 2, 1, 2},
			want:  []float64{2.5, 4.5, -2, -3},
		},
		{
			// Scale by a second bottom: global max per channel (2, 4), flattened
			// from axis 0 to shape [2], multiplies channel 0 by 2, channel 1 by 4.
			name: "scale two bottoms, flatten", input: in([]int{1, 2, 1, 2}, seq(1, 4)),
			layers: func() []*caffe.Layer {
				p := layer("gmax", "Pooling", []string{"data"}, []string{"m"})
				p.Pooling = &caffe.PoolingParam{Pool: caffe.PoolMax, Stride: 1, GlobalPooling: true}
				f := layer("flat", "Flatten", []string{"m"}, []string{"f"})
				f.Flatten = &caffe.FlattenParam{Axis: 0, EndAxis: -1}
				s := layer("sc", "Scale", []string{"data", "f"}, []string{"out"})
				s.Scale = &caffe.ScaleParam{Axis: 1, NumAxes: 1}
				return []*caffe.Layer{p, f, s}
			}(),
			shape: []int{1, 2, 1, 2},
			want:  []float64{2, 4, 12, 16},
		},
		{
			// x = (-2, 4), r = relu(x) = (0, 4); SUM with coeff (1, -0.5): (-2, 2).
			name: "eltwise sum coeff", input: in([]int{1, 1, 1, 2}, []float64{-2, 4}),
			layers: eltwiseNet(caffe.EltwiseSum, 1, -0.5), shape: []int{1, 1, 1, 2},
			want: []float64{-2, 2},
		},
		{
			name: "eltwise sum", input: in([]int{1, 1, 1, 2}, []float64{-2, 4}),
			layers: eltwiseNet(caffe.EltwiseSum), shape: []int{1, 1, 1, 2},
			want: []float64{-2, 8},
		},
		{
			name: "eltwise prod", input: in([]int{1, 1, 1, 2}, []float64{-2, 4}),
			layers: eltwiseNet(caffe.EltwiseProd), shape: []int{1, 1, 1, 2},
			want: []float64{0, 16},
		},
		{
			name: "eltwise max", input: in([]int{1, 1, 1, 2}, []float64{-2, 4}),
			layers: eltwiseNet(caffe.EltwiseMax), shape: []int{1, 1, 1, 2},
			want: []float64{0, 4},
		},
		{
			// negative_slope 0.1, in place.
			name: "relu leaky in place", input: in([]int{1, 1, 1, 3}, []float64{-2, 0, 4}),
			layers: func() []*caffe.Layer {
				l := reluLayer("r", "data", "data")
				l.ReLU = &caffe.ReLUParam{NegativeSlope: 0.1}
				return []*caffe.Layer{l, layer("d", "Dropout", []string{"data"}, []string{"out"})}
			}(),
			shape: []int{1, 1, 1, 3},
			want:  []float64{-0.2, 0, 4},
		},
		{
			// W rows (1 0 0 0) and (1 1 1 1), bias (0.5, -10): 1+0.5, 10-10.
			name: "inner product", input: in([]int{1, 2, 1, 2}, seq(1, 4)),
			layers: []*caffe.Layer{ip(2, false, 1, blob(1, 0, 0, 0, 1, 1, 1, 1), blob(0.5, -10))},
			shape:  []int{1, 2},
			want:   []float64{1.5, 0},
		},
		{
			// The same weights stored transposed, [K=4][N=2].
			name: "inner product transpose", input: in([]int{1, 2, 1, 2}, seq(1, 4)),
			layers: []*caffe.Layer{ip(2, true, 1, blob(1, 1, 0, 1, 0, 1, 0, 1), blob(0.5, -10))},
			shape:  []int{1, 2},
			want:   []float64{1.5, 0},
		},
		{
			// axis 2 on [1,2,1,2]: M = 2 rows (1 2) and (3 4), K = 2, W = (1 10):
			// 1+20, 3+40, output shape [1, 2, 1].
			name: "inner product axis 2", input: in([]int{1, 2, 1, 2}, seq(1, 4)),
			layers: []*caffe.Layer{ip(1, false, 2, blob(1, 10))},
			shape:  []int{1, 2, 1},
			want:   []float64{21, 43},
		},
		{
			// Softmax over channels at each of two positions: logits (0, ln 3)
			// and (1000, 1000 + ln 3) both give (1/4, 3/4); the second only
			// works because the maximum is subtracted first.
			name: "softmax", input: in([]int{1, 2, 1, 2}, []float64{0, 1000, math.Log(3), 1000 + math.Log(3)}),
			layers: []*caffe.Layer{layer("sm", "Softmax", []string{"data"}, []string{"out"})},
			shape:  []int{1, 2, 1, 2},
			want:   []float64{0.25, 0.25, 0.75, 0.75},
		},
		{
			// x = [-1 2; -3 4] (1 channel), r = relu(x): concat on channels.
			name: "concat axis 1", input: in([]int{1, 1, 2, 2}, []float64{-1, 2, -3, 4}),
			layers: concatNet(1), shape: []int{1, 2, 2, 2},
			want: []float64{-1, 2, -3, 4, 0, 2, 0, 4},
		},
		{
			// Concat on width: each row of x followed by the same row of r.
			name: "concat axis 3", input: in([]int{1, 1, 2, 2}, []float64{-1, 2, -3, 4}),
			layers: concatNet(3), shape: []int{1, 1, 2, 4},
			want: []float64{-1, 2, 0, 2, -3, 4, 0, 4},
		},
		{
			// Split copies its bottom to every top; their sum doubles x.
			name: "split", input: in([]int{1, 1, 1, 2}, []float64{-2, 4}),
			layers: func() []*caffe.Layer {
				e := layer("e", "Eltwise", []string{"a", "b"}, []string{"out"})
				e.Eltwise = &caffe.EltwiseParam{Operation: caffe.EltwiseSum}
				return []*caffe.Layer{layer("split", "Split", []string{"data"}, []string{"a", "b"}), e}
			}(),
			shape: []int{1, 1, 1, 2},
			want:  []float64{-4, 8},
		},
		{
			// A TRAIN-only layer is skipped, SoftmaxWithLoss is never run.
			name: "train phase skipped", input: in([]int{1, 1, 1, 2}, []float64{-2, 4}),
			layers: func() []*caffe.Layer {
				tr := reluLayer("train_only", "data", "data")
				tr.Phase = caffe.PhaseTrain
				loss := layer("loss", "SoftmaxWithLoss", []string{"data", "label"}, []string{"loss"})
				return []*caffe.Layer{tr, loss, layer("d", "Dropout", []string{"data"}, []string{"out"})}
			}(),
			shape: []int{1, 1, 1, 2},
			want:  []float64{-2, 4},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			blobs, err := run(t, c.input, c.layers...)
			if err != nil {
				t.Fatal(err)
			}
			out := blobs["out"]
			if !slices.Equal(out.Shape, c.shape) {
				t.Fatalf("shape %v, want %v", out.Shape, c.shape)
			}
			for i, w := range c.want {
				if math.Abs(out.Data[i]-w) > 1e-12*max(1, math.Abs(w)) {
					t.Errorf("out[%d] = %v, want %v (all: %v)", i, out.Data[i], w, out.Data)
				}
			}
		})
	}
}

func ip(n int, transpose bool, axis int, blobs ...*caffe.Blob) *caffe.Layer {
	l := layer("ip", "InnerProduct", []string{"data"}, []string{"out"})
	l.InnerProd = &caffe.InnerProductParam{NumOutput: n, BiasTerm: len(blobs) > 1, Axis: axis, Transpose: transpose}
	l.Blobs = blobs
	return l
}

func eltwiseNet(op int, coeff ...float64) []*caffe.Layer {
	e := layer("e", "Eltwise", []string{"data", "r"}, []string{"out"})
	e.Eltwise = &caffe.EltwiseParam{Operation: op, Coeff: coeff}
	return []*caffe.Layer{reluLayer("relu", "data", "r"), e}
}

func concatNet(axis int) []*caffe.Layer {
	c := layer("c", "Concat", []string{"data", "r"}, []string{"out"})
	c.Concat = &caffe.ConcatParam{Axis: axis}
	return []*caffe.Layer{reluLayer("relu", "data", "r"), c}
}

func TestErrors(t *testing.T) {
	x := in([]int{1, 1, 2, 2}, seq(1, 4))
	cases := []struct {
		name   string
		layers []*caffe.Layer
		check  func(error) bool
	}{
		{"unsupported type", []*caffe.Layer{layer("norm1", "LRN", []string{"data"}, []string{"out"})},
			func(err error) bool {
				var u *UnsupportedLayerError
				return errors.As(err, &u) && u.Layer == "norm1" && u.Type == "LRN"
			}},
		{"stochastic pooling", []*caffe.Layer{pool(caffe.PoolStochastic, 2, 0, 1, caffe.RoundCeil)},
			func(err error) bool { var u *UnsupportedLayerError; return errors.As(err, &u) && u.Layer == "pool" }},
		{"missing bottom", []*caffe.Layer{reluLayer("r", "nowhere", "out")},
			func(err error) bool { var e *LayerError; return errors.As(err, &e) && e.Layer == "r" }},
		{"wrong blob size", []*caffe.Layer{conv(1, 2, 0, 1, ones(3))},
			func(err error) bool { var e *LayerError; return errors.As(err, &e) && e.Layer == "conv" }},
		{"missing blobs", []*caffe.Layer{conv(1, 2, 0, 1)},
			func(err error) bool { var e *LayerError; return errors.As(err, &e) && e.Layer == "conv" }},
		{"kernel larger than input", []*caffe.Layer{conv(1, 3, 0, 1, ones(9))},
			func(err error) bool { var e *LayerError; return errors.As(err, &e) && e.Layer == "conv" }},
		{"top produced twice", []*caffe.Layer{reluLayer("a", "data", "out"), reluLayer("b", "data", "out")},
			func(err error) bool { var e *LayerError; return errors.As(err, &e) && e.Layer == "b" }},
		{"eltwise shapes differ", []*caffe.Layer{pool(caffe.PoolMax, 2, 0, 1, caffe.RoundCeil),
			func() *caffe.Layer { return layer("e", "Eltwise", []string{"data", "out"}, []string{"sum"}) }()},
			func(err error) bool { var e *LayerError; return errors.As(err, &e) && e.Layer == "e" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := run(t, x, c.layers...)
			if err == nil || !c.check(err) {
				t.Fatalf("got error %v (%T)", err, err)
			}
		})
	}
}

func TestForwardAndShapes(t *testing.T) {
	// LeNet-like toy net declared with an Input layer of batch 64: Forward
	// runs batch 1, Shapes drops the batch dimension.
	inLayer := layer("data", "Input", nil, []string{"data"})
	inLayer.Input = &caffe.InputParam{Shapes: [][]int{{64, 1, 3, 3}}}
	c := conv(2, 2, 0, 1, ones(8), blob(0, 1))
	net := &caffe.Net{Layers: []*caffe.Layer{inLayer, c, reluLayer("r", "out", "out"),
		ip(3, false, 1, ones(24)), // bottom "data" -> make it read "out"
	}}
	net.Layers[3].Bottoms, net.Layers[3].Tops = []string{"out"}, []string{"logits"}
	shapes, err := Shapes(net)
	if err != nil {
		t.Fatal(err)
	}
	for blob, want := range map[string][]int{"data": {1, 3, 3}, "out": {2, 2, 2}, "logits": {3}} {
		if !slices.Equal(shapes[blob], want) {
			t.Errorf("shape of %q = %v, want %v", blob, shapes[blob], want)
		}
	}
	vals, err := Forward(net, seq(1, 9))
	if err != nil {
		t.Fatal(err)
	}
	// Each output channel sums a 2x2 window: 12, 16, 24, 28 (+1 for channel 1);
	// the all-ones inner product sums all 8: 80 + 84 = 164 for each of 3 outputs.
	if got := vals["out"]; !slices.Equal(got, []float64{12, 16, 24, 28, 13, 17, 25, 29}) {
		t.Errorf("out = %v", got)
	}
	if got := vals["logits"]; !slices.Equal(got, []float64{164, 164, 164}) {
		t.Errorf("logits = %v", got)
	}
	if _, err := Forward(net, seq(1, 8)); err == nil {
		t.Error("Forward accepted an input of the wrong size")
	}
	if _, err := Forward(&caffe.Net{Layers: []*caffe.Layer{c}}, seq(1, 9)); err == nil {
		t.Error("Forward accepted a net without an input")
	}
}
