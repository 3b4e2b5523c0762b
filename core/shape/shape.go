// Package shape holds Caffe's output-size rules for convolution and pooling:
// their one home on the reading side of the weights format. core/weights
// validates every manifest's conv and pool ops with it, and core/kernels
// checks the sizes its callers pass with it.
//
// The converter, on the writing side, has its own copy
// (tools/convert/convert/shape.go), and the float64 reference a third
// (tools/convert/caffe/reference); FuzzShapeRules in tools/convert/convert
// fuzzes the three against each other, and against the manifest validator.
//
// Both rules follow BVLC Caffe exactly, with three refusals where Caffe
// would compute something no sensible net asks for:
//
//   - An empty input (a zero height or width) is refused; Caffe would pad it
//     and compute a size.
//   - A kernel (extent, for a dilated convolution) larger than the padded
//     input is refused. Caffe's integer division, truncating toward zero,
//     would still give one output when the kernel overhangs by less than the
//     stride.
//   - Sizes beyond Caffe's int (2^31-1), for the input, the padded input or
//     the kernel extent, are refused: Caffe's arithmetic would overflow.
package shape

import (
	"fmt"
	"math"
)

// maxInt is the largest value of the C++ int Caffe computes sizes in.
const maxInt = math.MaxInt32

var axes = [2]string{"height", "width"}

// check refuses parameters outside what Caffe's layers accept (kernel,
// stride, dilation at least 1; pad at least 0; all within Caffe's int).
func check(in, kernel, stride, pad, dilation [2]int) error {
	for i := range 2 {
		if in[i] < 1 || kernel[i] < 1 || stride[i] < 1 || dilation[i] < 1 || pad[i] < 0 ||
			in[i] > maxInt || kernel[i] > maxInt || stride[i] > maxInt || dilation[i] > maxInt || pad[i] > maxInt {
			return fmt.Errorf("input %v, kernel %v, stride %v, pad %v, dilation %v: out of range", in, kernel, stride, pad, dilation)
		}
		if int64(in[i])+2*int64(pad[i]) > maxInt {
			return fmt.Errorf("padded %s %d + 2*%d is beyond Caffe's int", axes[i], in[i], pad[i])
		}
	}
	return nil
}

// Conv returns the output [height, width] of a Caffe convolution over an
// input of in = [height, width] (conv_layer.cpp, compute_output_shape):
//
//	out = (in + 2*pad - (dilation*(kernel-1) + 1)) / stride + 1
//
// in integers, rounding down.
func Conv(in, kernel, stride, pad, dilation [2]int) ([2]int, error) {
	var out [2]int
	if err := check(in, kernel, stride, pad, dilation); err != nil {
		return out, err
	}
	for i := range 2 {
		extent := int64(dilation[i])*int64(kernel[i]-1) + 1
		if extent > maxInt {
			return out, fmt.Errorf("kernel extent %d (dilation %d) is beyond Caffe's int", extent, dilation[i])
		}
		padded := int64(in[i] + 2*pad[i])
		if extent > padded {
			return out, fmt.Errorf("kernel extent %d is larger than the padded %s %d", extent, axes[i], padded)
		}
		out[i] = int((padded-extent)/int64(stride[i])) + 1
	}
	return out, nil
}

// Pool returns the output [height, width] of a Caffe pooling over an input
// of in = [height, width] (pooling_layer.cpp, Reshape):
//
//	out = ceil((in + 2*pad - kernel) / stride) + 1   (round_mode CEIL, the default)
//	out = floor((in + 2*pad - kernel) / stride) + 1  (round_mode FLOOR)
//
// with the division in float32, as Caffe does it (exact below 2^24). Then,
// when EITHER pad is non-zero (Caffe: `if (pad_h_ || pad_w_)`), each axis
// drops its last window if that window would start at or beyond in + pad,
// that is in the bottom or right padding; with both pads zero no window is
// dropped, even one that starts past the input (stride larger than kernel).
// Caffe requires pad < kernel on both axes. Global pooling is kernel = in,
// stride 1, pad 0: one output.
func Pool(in, kernel, stride, pad [2]int, ceil bool) ([2]int, error) {
	var out [2]int
	if err := check(in, kernel, stride, pad, [2]int{1, 1}); err != nil {
		return out, err
	}
	for i := range 2 {
		if pad[i] >= kernel[i] {
			return out, fmt.Errorf("pad %v must be smaller than the kernel %v", pad, kernel)
		}
		span := in[i] + 2*pad[i] - kernel[i]
		if span < 0 {
			return out, fmt.Errorf("kernel %d is larger than the padded %s %d", kernel[i], axes[i], in[i]+2*pad[i])
		}
		q := float64(float32(span) / float32(stride[i]))
		if ceil {
			q = math.Ceil(q)
		} else {
			q = math.Floor(q)
		}
		out[i] = int(q) + 1
	}
	if pad[0] != 0 || pad[1] != 0 {
		for i := range 2 {
			if (out[i]-1)*stride[i] >= in[i]+pad[i] {
				out[i]--
			}
			// Caffe CHECKs that one drop was enough (pad < kernel ensures it).
			if (out[i]-1)*stride[i] >= in[i]+pad[i] {
				return out, fmt.Errorf("the last window along the %s starts in the padding", axes[i])
			}
		}
	}
	return out, nil
}
