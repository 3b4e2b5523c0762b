package kernels_test

// The ONNX backend node tests (Debian's libonnx-testdata) run through the CPU
// kernels of core/kernels. Each case below names a test directory, says how
// the ONNX node maps onto a kernel, and states the tolerance with its reason.
//
// Where ONNX and Caffe disagree, the Caffe semantics are what is tested
// (residual runs Caffe models):
//
//   - AveragePool divisor. ONNX's default count_include_pad=0 divides by the
//     number of real (unpadded) input values under the window. Caffe divides by
//     the size of the window clipped to the PADDED input (hend =
//     min(hstart+kernel, height+pad), before clipping to the image), so a
//     border window that overlaps the padding counts the padded zeros. The
//     window SUM is the same in both (pads are zeros), so the Caffe value is
//     derived from ONNX's: caffe = onnx * onnxDivisor / caffeDivisor, per
//     output. With count_include_pad=1 and windows inside the padded input the
//     two divisors coincide and ONNX's output is used as is.
//   - Pooling output size: Caffe rounds up (ceil) by default and drops a last
//     window that would start in the padding; ONNX rounds down unless
//     ceil_mode=1. Each case checks that the Caffe formula with the matching
//     round mode gives ONNX's output size, so the mapping is exact.
//   - Padding: Caffe has one pad per spatial axis (the same before and after);
//     ONNX cases with different begin/end pads (auto_pad SAME_* where the total
//     is odd) have no Caffe counterpart and are not used.
//   - Softmax axis: from opset 13, ONNX normalizes along one axis, which is
//     Caffe's Softmax over axis a: channels = dims[a], inner = prod(dims[a+1:]),
//     run once per outer index. Before opset 13 the input was coerced to 2-D
//     at axis and normalized over all of prod(dims[a:]) values; that case is
//     mapped as channels = prod(dims[a:]), inner = 1.
//   - Eltwise: Caffe needs at least two bottoms, so one-input Sum/Max are not
//     used; Sub is Caffe's SUM with coefficients (1, -1).
//   - BatchNormalization maps to the per-channel affine the converter folds
//     BatchNorm into: a = scale/sqrt(var+eps), b = bias - mean*a, in float64.
//   - Gemm maps to InnerProduct (weights N x K, i.e. ONNX's transB=1 layout):
//     B is transposed in the test when transB=0, A when transA=1; alpha is
//     folded into the weights and beta*C into the bias in float64, as the
//     converter folds constants. MatMul is Gemm without bias.
//   - Flatten and Concat have no kernel: the runtime treats Flatten as "data
//     unchanged" and Concat along channels as appending C x H x W buffers. The
//     cases with axis 1 check exactly that layout assumption.
//
// Inputs with batch N > 1 run through the kernels one image at a time. Every
// kernel runs twice, serially (nil Runner) and with a 2-goroutine Runner, and
// every output buffer has guard values on both sides.

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/residual-go/residual/core/kernels"
	"github.com/residual-go/residual/core/kernels/internal/onnxtest"
)

// onnxTol is |got-want| <= Abs + Rel*|want|.
type onnxTol struct{ Abs, Rel float64 }

var (
	// tolExact: selections and single IEEE operations that ONNX's reference
	// (numpy, float32) performs identically (max, relu, x*alpha, a+b, a*b, copy).
	tolExact = onnxTol{}
	// tolSum: float32 sums whose order may differ from numpy's (conv and gemm
	// dot products and pooling windows of at most 25 terms, 3-input sums):
	// 1e-5 relative is ~80 ulps, above the worst case of 25 roundings.
	tolSum = onnxTol{Abs: 1e-5, Rel: 1e-5}
	// tolFold: constants folded in float64 and rounded once (batchnorm affine,
	// gemm alpha/beta) against ONNX's unfolded float32 evaluation; the inputs
	// are O(1), so this is ~100 ulps of headroom for the different rounding path.
	tolFold = onnxTol{Abs: 1e-5, Rel: 1e-5}
	// tolSoftmax: the kernel's float32 exp may be a polynomial approximation
	// good to a few ulps, and normalization adds one rounding per value;
	// probabilities are compared to 1e-6 absolute plus 1e-5 relative.
	tolSoftmax = onnxTol{Abs: 1e-6, Rel: 1e-5}
)

// onnxCase is one test directory and the kernel mapping that runs it.
type onnxCase struct {
	dir     string
	run     func(t *testing.T, c *onnxtest.Case, r *kernels.Runner) []onnxResult
	onnxTol onnxTol
}

// onnxResult is one computed output tensor and the value expected from ONNX
// (already translated to Caffe semantics where the two differ).
type onnxResult struct {
	name      string
	got, want []float32
}

// onnxCases lists every directory used; the table is the documentation.
var onnxCases = []onnxCase{
	// Conv -> kernels.Conv2D (pads must be symmetric per axis).
	{"test_basic_conv_with_padding", runConv, tolSum},
	{"test_basic_conv_without_padding", runConv, tolSum},
	{"test_conv_with_strides_padding", runConv, tolSum},
	{"test_conv_with_strides_no_padding", runConv, tolSum},
	{"test_conv_with_strides_and_asymmetric_padding", runConv, tolSum}, // pads (1,0,1,0): h 1/1, w 0/0
	{"test_conv_with_autopad_same", runConv, tolSum},                   // SAME_LOWER, k3 s2 on 5: 1/1
	// MaxPool, GlobalMaxPool -> kernels.Pool2D{Max: true}.
	{"test_maxpool_2d_default", runPool, tolExact},
	{"test_maxpool_2d_pads", runPool, tolExact},
	{"test_maxpool_2d_strides", runPool, tolExact},
	{"test_maxpool_2d_ceil", runPool, tolExact},
	{"test_maxpool_2d_precomputed_pads", runPool, tolExact},
	{"test_maxpool_2d_precomputed_strides", runPool, tolExact},
	{"test_maxpool_2d_precomputed_same_upper", runPool, tolExact}, // k3 s2 on 5: pads 1/1
	{"test_globalmaxpool", runPool, tolExact},
	{"test_globalmaxpool_precomputed", runPool, tolExact},
	// AveragePool, GlobalAveragePool -> kernels.Pool2D{Max: false}, Caffe divisor.
	{"test_averagepool_2d_default", runPool, tolSum},
	{"test_averagepool_2d_pads", runPool, tolSum},                   // divisor differs: Caffe value derived
	{"test_averagepool_2d_pads_count_include_pad", runPool, tolSum}, // divisors coincide
	{"test_averagepool_2d_strides", runPool, tolSum},
	{"test_averagepool_2d_ceil", runPool, tolSum},
	{"test_averagepool_2d_precomputed_pads", runPool, tolSum}, // divisor differs: Caffe value derived
	{"test_averagepool_2d_precomputed_pads_count_include_pad", runPool, tolSum},
	{"test_averagepool_2d_precomputed_strides", runPool, tolSum},
	{"test_averagepool_2d_precomputed_same_upper", runPool, tolSum}, // pads 1/1, divisor differs
	{"test_globalaveragepool", runPool, tolSum},
	{"test_globalaveragepool_precomputed", runPool, tolSum},
	// BatchNormalization (inference) -> kernels.Affine.
	{"test_batchnorm_example", runBatchNorm, tolFold},
	{"test_batchnorm_epsilon", runBatchNorm, tolFold},
	// Relu, LeakyRelu -> kernels.Activate (Caffe ReLU with negative_slope).
	{"test_relu", runActivation, tolExact},
	{"test_leakyrelu", runActivation, tolExact},
	{"test_leakyrelu_default", runActivation, tolExact},
	{"test_leakyrelu_example", runActivation, tolExact},
	// Add, Sum, Sub, Mul, Max (same shapes) -> kernels.Eltwise.
	{"test_add", runEltwise, tolExact},
	{"test_sum_two_inputs", runEltwise, tolExact},
	{"test_sum_example", runEltwise, tolSum}, // 3 inputs: summation order
	{"test_sub", runEltwise, tolExact},
	{"test_sub_example", runEltwise, tolExact},
	{"test_mul", runEltwise, tolExact},
	{"test_mul_example", runEltwise, tolExact},
	{"test_max_two_inputs", runEltwise, tolExact},
	{"test_max_example", runEltwise, tolExact},
	{"test_max_float32", runEltwise, tolExact},
	// Gemm, MatMul -> kernels.InnerProduct, one row of A at a time.
	{"test_gemm_default_no_bias", runGemm, tolSum},
	{"test_gemm_default_vector_bias", runGemm, tolSum},
	{"test_gemm_default_zero_bias", runGemm, tolSum},
	{"test_gemm_default_matrix_bias", runGemm, tolSum},
	{"test_gemm_default_scalar_bias", runGemm, tolSum},
	{"test_gemm_default_single_elem_vector_bias", runGemm, tolSum},
	{"test_gemm_transposeA", runGemm, tolSum},
	{"test_gemm_transposeB", runGemm, tolSum},
	{"test_gemm_alpha", runGemm, tolFold},
	{"test_gemm_beta", runGemm, tolFold},
	{"test_gemm_all_attributes", runGemm, tolFold},
	{"test_matmul_2d", runGemm, tolSum},
	// Softmax -> kernels.Softmax over the axis as channels.
	{"test_softmax_example", runSoftmax, tolSoftmax},
	{"test_softmax_large_number", runSoftmax, tolSoftmax}, // needs the max subtraction
	{"test_softmax_axis_0", runSoftmax, tolSoftmax},
	{"test_softmax_axis_1", runSoftmax, tolSoftmax},
	{"test_softmax_axis_2", runSoftmax, tolSoftmax},
	{"test_softmax_default_axis", runSoftmax, tolSoftmax},
	{"test_softmax_negative_axis", runSoftmax, tolSoftmax},
	// Flatten (axis 1: Caffe's Flatten), Concat (axis 1: channels): layout only.
	{"test_flatten_axis1", runFlatten, tolExact},
	{"test_flatten_default_axis", runFlatten, tolExact},
	{"test_flatten_negative_axis3", runFlatten, tolExact}, // -3 on rank 4 is axis 1
	{"test_concat_2d_axis_1", runConcat, tolExact},
	{"test_concat_3d_axis_1", runConcat, tolExact},
	{"test_concat_3d_axis_negative_2", runConcat, tolExact}, // -2 on rank 3 is axis 1
}

func TestONNXNodes(t *testing.T) {
	runners := []struct {
		name string
		r    *kernels.Runner
	}{{"serial", nil}, {"2threads", kernels.NewRunner(2)}}
	defer runners[1].r.Close()
	passed := 0
	for _, tc := range onnxCases {
		t.Run(tc.dir, func(t *testing.T) {
			c, err := onnxtest.LoadCase(onnxtest.DefaultRoot, tc.dir)
			if errors.Is(err, onnxtest.ErrNoTestdata) {
				t.Fatalf("%v\n(the ONNX node tests are required: run `apt-get install libonnx-testdata`)", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			ok := true
			for _, rn := range runners {
				for _, res := range tc.run(t, c, rn.r) {
					if !compareValues(t, rn.name+"/"+res.name, res.got, res.want, tc.onnxTol) {
						ok = false
					}
				}
			}
			if ok && !t.Failed() {
				passed++
			}
		})
	}
	t.Logf("ONNX node tests passed: %d of %d", passed, len(onnxCases))
}

// compareValues reports the values outside tolerance (at most 5) and returns whether all are within.
func compareValues(t *testing.T, name string, got, want []float32, tl onnxTol) bool {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", name, len(got), len(want))
		return false
	}
	bad, worst := 0, 0.0
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		d := math.Abs(g - w)
		if math.IsNaN(g) || d > tl.Abs+tl.Rel*math.Abs(w) {
			if bad < 5 {
				t.Errorf("%s[%d] = %v, want %v (|diff| %.3g > %.3g + %.3g*|want|)", name, i, g, w, d, tl.Abs, tl.Rel)
			}
			bad++
		}
		worst = math.Max(worst, d)
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values outside tolerance, max |diff| %.3g", name, bad, len(want), worst)
	}
	return bad == 0
}

// guardValue is the sentinel around output buffers: a kernel writing outside its
// output changes it.
const guardLen = 16

var guardValue = float32(math.Float32frombits(0x7fc0dead)) // a NaN with a recognizable payload

// guardedOut returns a buffer of n values framed by guards, and the n-value window.
func guardedOut(n int) (buf, out []float32) {
	buf = make([]float32, n+2*guardLen)
	for i := range buf {
		buf[i] = guardValue
	}
	return buf, buf[guardLen : guardLen+n]
}

// checkGuards fails the test if a guard value changed.
func checkGuards(t *testing.T, what string, buf []float32) {
	t.Helper()
	n := len(buf) - 2*guardLen
	for i := 0; i < guardLen; i++ {
		if math.Float32bits(buf[i]) != math.Float32bits(guardValue) {
			t.Errorf("%s: wrote %v at guard index %d before the output", what, buf[i], i-guardLen)
		}
		j := guardLen + n + i
		if math.Float32bits(buf[j]) != math.Float32bits(guardValue) {
			t.Errorf("%s: wrote %v at guard index %d after the output", what, buf[j], i)
		}
	}
}

// onnxInput returns input i or fails.
func onnxInput(t *testing.T, c *onnxtest.Case, i int) *onnxtest.Tensor {
	t.Helper()
	if i >= len(c.Inputs) {
		t.Fatalf("%s: has %d inputs, want at least %d", c.Name, len(c.Inputs), i+1)
	}
	return c.Inputs[i]
}

func onnxNode(t *testing.T, c *onnxtest.Case) *onnxtest.Node {
	t.Helper()
	n, err := c.Node()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// onnxNCHW splits a rank-4 tensor's dims; fails on any other rank.
func onnxNCHW(t *testing.T, x *onnxtest.Tensor) (n, c, h, w int) {
	t.Helper()
	if len(x.Dims) != 4 {
		t.Fatalf("%s: dims %v, want N x C x H x W", x.Name, x.Dims)
	}
	return x.Dims[0], x.Dims[1], x.Dims[2], x.Dims[3]
}

// onnxPads maps ONNX pads/auto_pad for a 2-D op onto Caffe's one pad per axis.
// It fails the test when begin and end differ (no Caffe counterpart).
func onnxPads(t *testing.T, nd *onnxtest.Node, inH, inW, kh, kw, sh, sw int) (ph, pw int) {
	t.Helper()
	auto := nd.String("auto_pad", "NOTSET")
	var begin, end [2]int
	switch auto {
	case "NOTSET":
		p := nd.Ints("pads", []int64{0, 0, 0, 0})
		if len(p) != 4 {
			t.Fatalf("pads %v: want 4 values", p)
		}
		begin = [2]int{int(p[0]), int(p[1])}
		end = [2]int{int(p[2]), int(p[3])}
	case "VALID":
	case "SAME_UPPER", "SAME_LOWER":
		// ONNX: output = ceil(in/stride); total pad = (out-1)*stride + k - in,
		// the extra one at the end (UPPER) or the beginning (LOWER).
		ins, ks, ss := [2]int{inH, inW}, [2]int{kh, kw}, [2]int{sh, sw}
		for i := range 2 {
			out := (ins[i] + ss[i] - 1) / ss[i]
			total := max(0, (out-1)*ss[i]+ks[i]-ins[i])
			small := total / 2
			if auto == "SAME_UPPER" {
				begin[i], end[i] = small, total-small
			} else {
				begin[i], end[i] = total-small, small
			}
		}
	default:
		t.Fatalf("auto_pad %q unknown", auto)
	}
	if begin != end {
		t.Fatalf("pads begin %v end %v: Caffe has one pad per axis; this case cannot be mapped", begin, end)
	}
	return begin[0], begin[1]
}

func onnxPair(t *testing.T, v []int64, def int) (int, int) {
	t.Helper()
	switch len(v) {
	case 0:
		return def, def
	case 2:
		return int(v[0]), int(v[1])
	}
	t.Fatalf("attribute %v: want 2 values for a 2-D op", v)
	return 0, 0
}

func runConv(t *testing.T, c *onnxtest.Case, r *kernels.Runner) []onnxResult {
	nd := onnxNode(t, c)
	x, w := onnxInput(t, c, 0), onnxInput(t, c, 1)
	var bias []float32
	if len(c.Inputs) > 2 {
		bias = c.Inputs[2].Data
	}
	n, inC, inH, inW := onnxNCHW(t, x)
	outC, wc, kh, kw := onnxNCHW(t, w)
	group := int(nd.Int("group", 1))
	if wc*group != inC {
		t.Fatalf("weight has %d input channels per group, group %d, input %d", wc, group, inC)
	}
	sh, sw := onnxPair(t, nd.Ints("strides", nil), 1)
	dh, dw := onnxPair(t, nd.Ints("dilations", nil), 1)
	ph, pw := onnxPads(t, nd, inH, inW, kh, kw, sh, sw)
	// Caffe: output = floor((in + 2*pad - (dil*(k-1)+1)) / stride) + 1.
	p := kernels.ConvParams{
		InC: inC, InH: inH, InW: inW, OutC: outC,
		OutH: (inH+2*ph-(dh*(kh-1)+1))/sh + 1,
		OutW: (inW+2*pw-(dw*(kw-1)+1))/sw + 1,
		KH:   kh, KW: kw, SH: sh, SW: sw, PH: ph, PW: pw, DH: dh, DW: dw, Group: group,
	}
	want := c.Outputs[0]
	if wn, wc, wh, ww := onnxNCHW(t, want); wn != n || wc != outC || wh != p.OutH || ww != p.OutW {
		t.Fatalf("Caffe output size %dx%dx%dx%d, ONNX %v", n, outC, p.OutH, p.OutW, want.Dims)
	}
	scratch := make([]float32, kernels.ConvScratchSize(p))
	inLen, outLen := inC*inH*inW, outC*p.OutH*p.OutW
	var res []onnxResult
	for i := range n {
		buf, out := guardedOut(outLen)
		kernels.Conv2D(r, p, x.Data[i*inLen:(i+1)*inLen], w.Data, bias, out, scratch, kernels.Act{})
		checkGuards(t, "Conv2D", buf)
		res = append(res, onnxResult{fmt.Sprintf("image%d", i), out, want.Data[i*outLen : (i+1)*outLen]})
	}
	return res
}

// caffePoolOut is Caffe's pooling output size: ceil (or floor) of
// (in + 2*pad - k)/stride, plus 1, minus a last window starting in the padding.
func caffePoolOut(in, k, s, p int, ceil bool) int {
	num := in + 2*p - k
	out := num/s + 1
	if ceil {
		out = (num+s-1)/s + 1
	}
	if p > 0 && (out-1)*s >= in+p {
		out--
	}
	return out
}

func runPool(t *testing.T, c *onnxtest.Case, r *kernels.Runner) []onnxResult {
	nd := onnxNode(t, c)
	x := c.Inputs[0]
	n, ch, inH, inW := onnxNCHW(t, x)
	p := kernels.PoolParams{C: ch, InH: inH, InW: inW, SH: 1, SW: 1}
	includePad := false
	switch nd.OpType {
	case "GlobalMaxPool", "GlobalAveragePool":
		p.Max = nd.OpType == "GlobalMaxPool"
		p.KH, p.KW, p.OutH, p.OutW = inH, inW, 1, 1
	case "MaxPool", "AveragePool":
		p.Max = nd.OpType == "MaxPool"
		if d := nd.Ints("dilations", nil); len(d) > 0 && (d[0] != 1 || d[1] != 1) {
			t.Fatalf("dilated pooling has no Caffe counterpart")
		}
		p.KH, p.KW = onnxPair(t, nd.Ints("kernel_shape", nil), 0)
		p.SH, p.SW = onnxPair(t, nd.Ints("strides", nil), 1)
		p.PH, p.PW = onnxPads(t, nd, inH, inW, p.KH, p.KW, p.SH, p.SW)
		ceil := nd.Int("ceil_mode", 0) == 1
		includePad = nd.Int("count_include_pad", 0) == 1
		p.OutH = caffePoolOut(inH, p.KH, p.SH, p.PH, ceil)
		p.OutW = caffePoolOut(inW, p.KW, p.SW, p.PW, ceil)
	default:
		t.Fatalf("op %s is not a pooling", nd.OpType)
	}
	want := c.Outputs[0]
	if wn, wc, wh, ww := onnxNCHW(t, want); wn != n || wc != ch || wh != p.OutH || ww != p.OutW {
		t.Fatalf("Caffe output size %dx%dx%dx%d, ONNX %v", n, ch, p.OutH, p.OutW, want.Dims)
	}
	// Expected values in Caffe semantics (see the file comment for AVE).
	inLen, outLen := ch*inH*inW, ch*p.OutH*p.OutW
	caffeWant := append([]float32(nil), want.Data...)
	if !p.Max {
		adjusted := 0
		for i := range caffeWant {
			oh, ow := (i/p.OutW)%p.OutH, i%p.OutW
			onnxDiv := aveDivisorONNX(oh, p.SH, p.PH, p.KH, inH, includePad) * aveDivisorONNX(ow, p.SW, p.PW, p.KW, inW, includePad)
			caffeDiv := aveDivisorCaffe(oh, p.SH, p.PH, p.KH, inH) * aveDivisorCaffe(ow, p.SW, p.PW, p.KW, inW)
			if onnxDiv == caffeDiv {
				continue
			}
			caffeWant[i] = float32(float64(want.Data[i]) * float64(onnxDiv) / float64(caffeDiv))
			adjusted++
			// The derivation checked against a direct float64 evaluation of
			// Caffe's formula on the input: sum over the window clipped to
			// the image, divided by the window clipped to the padded image.
			img, c := i/outLen, (i/(p.OutH*p.OutW))%ch
			sum := 0.0
			for iy := max(oh*p.SH-p.PH, 0); iy < min(oh*p.SH-p.PH+p.KH, inH); iy++ {
				for ix := max(ow*p.SW-p.PW, 0); ix < min(ow*p.SW-p.PW+p.KW, inW); ix++ {
					sum += float64(x.Data[img*inLen+(c*inH+iy)*inW+ix])
				}
			}
			if direct := sum / float64(caffeDiv); math.Abs(direct-float64(caffeWant[i])) > tolSum.Abs+tolSum.Rel*math.Abs(direct) {
				t.Fatalf("output %d: Caffe value derived from ONNX's %v, computed directly %v", i, caffeWant[i], direct)
			}
		}
		if adjusted > 0 && r == nil { // once per case, not per runner
			t.Logf("%d of %d outputs use Caffe's AVE divisor instead of ONNX's", adjusted, len(caffeWant))
		}
	}
	var res []onnxResult
	for i := range n {
		buf, out := guardedOut(outLen)
		kernels.Pool2D(r, p, x.Data[i*inLen:(i+1)*inLen], out)
		checkGuards(t, "Pool2D", buf)
		res = append(res, onnxResult{fmt.Sprintf("image%d", i), out, caffeWant[i*outLen : (i+1)*outLen]})
	}
	return res
}

// aveDivisorCaffe is Caffe's AVE divisor along one axis: the window clipped
// to the padded input, hend = min(hstart+k, in+pad) with hstart = o*s - pad.
func aveDivisorCaffe(o, s, pad, k, in int) int {
	start := o*s - pad
	return min(start+k, in+pad) - start
}

// aveDivisorONNX is ONNX's AveragePool divisor along one axis (symmetric pads):
// the real input values under the window, or with count_include_pad the
// window within the padded input.
func aveDivisorONNX(o, s, pad, k, in int, includePad bool) int {
	start := o*s - pad
	if includePad {
		return min(start+k, in+pad) - max(start, -pad)
	}
	return min(start+k, in) - max(start, 0)
}

func runBatchNorm(t *testing.T, c *onnxtest.Case, _ *kernels.Runner) []onnxResult {
	nd := onnxNode(t, c)
	if nd.Int("training_mode", 0) != 0 {
		t.Fatalf("training mode BatchNormalization is not an inference op")
	}
	x, s, b, mean, vr := onnxInput(t, c, 0), onnxInput(t, c, 1), onnxInput(t, c, 2), onnxInput(t, c, 3), onnxInput(t, c, 4)
	eps := float64(nd.Float("epsilon", 1e-5))
	n, ch, h, w := onnxNCHW(t, x)
	scale, bias := make([]float32, ch), make([]float32, ch)
	for i := range ch {
		a := float64(s.Data[i]) / math.Sqrt(float64(vr.Data[i])+eps)
		scale[i] = float32(a)
		bias[i] = float32(float64(b.Data[i]) - float64(mean.Data[i])*a)
	}
	l := ch * h * w
	var res []onnxResult
	for i := range n {
		buf, out := guardedOut(l)
		kernels.Affine(ch, h*w, x.Data[i*l:(i+1)*l], scale, bias, out, kernels.Act{})
		checkGuards(t, "Affine", buf)
		res = append(res, onnxResult{fmt.Sprintf("image%d", i), out, c.Outputs[0].Data[i*l : (i+1)*l]})
	}
	return res
}

func runActivation(t *testing.T, c *onnxtest.Case, _ *kernels.Runner) []onnxResult {
	nd := onnxNode(t, c)
	act := kernels.Act{ReLU: true}
	switch nd.OpType {
	case "Relu":
	case "LeakyRelu":
		act.Slope = nd.Float("alpha", 0.01) // Caffe ReLU negative_slope
	default:
		t.Fatalf("op %s is not an activation", nd.OpType)
	}
	x := c.Inputs[0]
	buf, out := guardedOut(len(x.Data))
	kernels.Activate(x.Data, out, act)
	checkGuards(t, "Activate", buf)
	// In place, as the executor runs a standalone ReLU.
	inPlace := append([]float32(nil), x.Data...)
	kernels.Activate(inPlace, inPlace, act)
	return []onnxResult{{"out", out, c.Outputs[0].Data}, {"in-place", inPlace, c.Outputs[0].Data}}
}

func runEltwise(t *testing.T, c *onnxtest.Case, _ *kernels.Runner) []onnxResult {
	nd := onnxNode(t, c)
	var op int
	var coeffs []float32
	switch nd.OpType {
	case "Add", "Sum":
		op = kernels.EltSum
	case "Sub":
		op, coeffs = kernels.EltSum, []float32{1, -1}
	case "Mul":
		op = kernels.EltProd
	case "Max":
		op = kernels.EltMax
	default:
		t.Fatalf("op %s is not an eltwise", nd.OpType)
	}
	if len(c.Inputs) < 2 {
		t.Fatalf("Caffe Eltwise needs at least two bottoms")
	}
	var ins [][]float32
	for _, x := range c.Inputs {
		if fmt.Sprint(x.Dims) != fmt.Sprint(c.Inputs[0].Dims) {
			t.Fatalf("broadcasting (%v vs %v) has no Caffe Eltwise counterpart", x.Dims, c.Inputs[0].Dims)
		}
		ins = append(ins, x.Data)
	}
	buf, out := guardedOut(len(ins[0]))
	kernels.Eltwise(op, coeffs, ins, out, kernels.Act{})
	checkGuards(t, "Eltwise", buf)
	return []onnxResult{{"out", out, c.Outputs[0].Data}}
}

func runGemm(t *testing.T, c *onnxtest.Case, r *kernels.Runner) []onnxResult {
	nd := onnxNode(t, c)
	a, b := onnxInput(t, c, 0), onnxInput(t, c, 1)
	if len(a.Dims) != 2 || len(b.Dims) != 2 {
		t.Fatalf("dims %v, %v: want 2-D", a.Dims, b.Dims)
	}
	alpha, beta := 1.0, 1.0
	transA, transB := false, false
	if nd.OpType == "Gemm" {
		alpha, beta = float64(nd.Float("alpha", 1)), float64(nd.Float("beta", 1))
		transA, transB = nd.Int("transA", 0) == 1, nd.Int("transB", 0) == 1
	} else if nd.OpType != "MatMul" {
		t.Fatalf("op %s is not Gemm or MatMul", nd.OpType)
	}
	// A' is M x K; the InnerProduct weight is N x K (B' transposed).
	at := func(tt *onnxtest.Tensor, i, j int, trans bool) float32 {
		if trans {
			return tt.Data[j*tt.Dims[1]+i]
		}
		return tt.Data[i*tt.Dims[1]+j]
	}
	m, k := a.Dims[0], a.Dims[1]
	if transA {
		m, k = k, m
	}
	nOut := b.Dims[1]
	if transB {
		nOut = b.Dims[0]
	}
	w := make([]float32, nOut*k)
	for o := range nOut {
		for j := range k {
			// B'[j][o] = (transB ? B[o][j] : B[j][o]); alpha folded in float64.
			w[o*k+j] = float32(alpha * float64(at(b, o, j, !transB)))
		}
	}
	want := c.Outputs[0]
	if len(want.Dims) != 2 || want.Dims[0] != m || want.Dims[1] != nOut {
		t.Fatalf("output dims %v, want [%d %d]", want.Dims, m, nOut)
	}
	var res []onnxResult
	for row := range m {
		x := make([]float32, k)
		for j := range k {
			x[j] = at(a, row, j, transA)
		}
		var bias []float32
		if len(c.Inputs) > 2 {
			cT := c.Inputs[2]
			bias = make([]float32, nOut)
			for o := range nOut {
				var v float32
				switch {
				case len(cT.Data) == 1: // scalar or single-element vector: broadcast
					v = cT.Data[0]
				case len(cT.Data) == nOut: // vector [N] or [1, N]
					v = cT.Data[o]
				case len(cT.Data) == m*nOut: // matrix [M, N]: this row's bias
					v = cT.Data[row*nOut+o]
				default:
					t.Fatalf("bias dims %v do not broadcast to [%d %d]", cT.Dims, m, nOut)
				}
				bias[o] = float32(beta * float64(v))
			}
		}
		buf, out := guardedOut(nOut)
		kernels.InnerProduct(r, x, w, bias, out, kernels.Act{})
		checkGuards(t, "InnerProduct", buf)
		res = append(res, onnxResult{fmt.Sprintf("row%d", row), out, want.Data[row*nOut : (row+1)*nOut]})
	}
	return res
}

func runSoftmax(t *testing.T, c *onnxtest.Case, _ *kernels.Runner) []onnxResult {
	nd := onnxNode(t, c)
	x := c.Inputs[0]
	rank := len(x.Dims)
	def := int64(1) // opset < 13
	if c.Model.Opset >= 13 {
		def = -1
	}
	axis := int(nd.Int("axis", def))
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		t.Fatalf("axis %d out of range for dims %v", axis, x.Dims)
	}
	prod := func(d []int) int {
		p := 1
		for _, v := range d {
			p *= v
		}
		return p
	}
	outer := prod(x.Dims[:axis])
	channels, inner := x.Dims[axis], prod(x.Dims[axis+1:])
	if c.Model.Opset < 13 { // coerced to 2-D: normalize over everything from axis on
		channels, inner = prod(x.Dims[axis:]), 1
	}
	block := channels * inner
	buf, out := guardedOut(len(x.Data))
	for o := range outer {
		kernels.Softmax(channels, inner, x.Data[o*block:(o+1)*block], out[o*block:(o+1)*block])
	}
	checkGuards(t, "Softmax", buf)
	return []onnxResult{{fmt.Sprintf("axis%d", axis), out, c.Outputs[0].Data}}
}

func runFlatten(t *testing.T, c *onnxtest.Case, _ *kernels.Runner) []onnxResult {
	nd := onnxNode(t, c)
	x := c.Inputs[0]
	axis := int(nd.Int("axis", 1))
	if axis < 0 {
		axis += len(x.Dims)
	}
	if axis != 1 {
		t.Fatalf("axis %d: only axis 1 is Caffe's Flatten", axis)
	}
	want := c.Outputs[0]
	n := x.Dims[0]
	if len(want.Dims) != 2 || want.Dims[0] != n || want.Dims[1] != len(x.Data)/n {
		t.Fatalf("ONNX output dims %v, Caffe Flatten gives [%d %d]", want.Dims, n, len(x.Data)/n)
	}
	// The runtime's flatten leaves each image's C x H x W buffer unchanged.
	l := len(x.Data) / n
	var res []onnxResult
	for i := range n {
		res = append(res, onnxResult{fmt.Sprintf("image%d", i), x.Data[i*l : (i+1)*l], want.Data[i*l : (i+1)*l]})
	}
	return res
}

func runConcat(t *testing.T, c *onnxtest.Case, _ *kernels.Runner) []onnxResult {
	nd := onnxNode(t, c)
	x0 := c.Inputs[0]
	axis := int(nd.Int("axis", 1))
	if axis < 0 {
		axis += len(x0.Dims)
	}
	if axis != 1 {
		t.Fatalf("axis %d: the runtime concatenates along channels (axis 1) only", axis)
	}
	n := x0.Dims[0]
	want := c.Outputs[0]
	// The runtime's concat appends each input's per-image C x H x W buffer.
	var res []onnxResult
	off := 0
	for i := range n {
		var got []float32
		for _, x := range c.Inputs {
			l := len(x.Data) / n
			got = append(got, x.Data[i*l:(i+1)*l]...)
		}
		res = append(res, onnxResult{fmt.Sprintf("image%d", i), got, want.Data[off : off+len(got)]})
		off += len(got)
	}
	if off != len(want.Data) {
		t.Fatalf("concatenation has %d values, ONNX output %d", off, len(want.Data))
	}
	return res
}
