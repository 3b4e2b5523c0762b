package convert

import (
	"fmt"
	"math"
)

// Caffe's output-size rules for convolution and pooling: their one home on
// the writing side of the weights format, used by Lower for every conv and
// pool layer. The reading side has its own copy (core/shape), which the
// validator runs on every manifest, and the float64 reference a third;
// FuzzShapeRules checks that the three agree.
//
// Both follow BVLC Caffe line by line (the variable names are Caffe's), and
// refuse three things Caffe would compute: an empty input, a kernel extent
// larger than the padded input (Caffe's truncating division would still give
// one output when it overhangs by less than the stride), and sizes beyond
// Caffe's int.

// caffeInt is the largest value of the C++ int Caffe's formulas use.
const caffeInt = math.MaxInt32

// geometryInRange refuses values no Caffe layer accepts (kernel, stride,
// dilation below 1, pad below 0) and sizes Caffe's int cannot hold.
func geometryInRange(bottom, kernel, stride, pad, dilation [2]int) error {
	for _, v := range [][2]int{bottom, kernel, stride, dilation} {
		if v[0] < 1 || v[1] < 1 || v[0] > caffeInt || v[1] > caffeInt {
			return fmt.Errorf("input %v, kernel %v, stride %v, dilation %v: each must be 1 to %d", bottom, kernel, stride, dilation, caffeInt)
		}
	}
	for i := range 2 {
		if pad[i] < 0 || pad[i] > caffeInt || int64(bottom[i])+2*int64(pad[i]) > caffeInt {
			return fmt.Errorf("pad %v on an input of %v: out of Caffe's range", pad, bottom)
		}
	}
	return nil
}

// convOutputShape is ConvolutionLayer::compute_output_shape: for each
// spatial axis, (input_dim + 2*pad - kernel_extent) / stride + 1 with
// kernel_extent = dilation*(kernel-1) + 1, in integers. bottom, the result
// and the parameters are [height, width].
func convOutputShape(bottom, kernel, stride, pad, dilation [2]int) ([2]int, error) {
	var top [2]int
	if err := geometryInRange(bottom, kernel, stride, pad, dilation); err != nil {
		return top, err
	}
	for i := range 2 {
		kernelExtent := int64(dilation[i])*int64(kernel[i]-1) + 1
		paddedDim := int64(bottom[i]) + 2*int64(pad[i])
		if kernelExtent > paddedDim { // also catches an extent beyond Caffe's int
			return top, fmt.Errorf("kernel extent %d is larger than the padded input %d", kernelExtent, paddedDim)
		}
		top[i] = int((paddedDim-kernelExtent)/int64(stride[i])) + 1
	}
	return top, nil
}

// poolOutputShape is PoolingLayer::Reshape: pooled = ceil (round_mode CEIL)
// or floor (FLOOR) of float(height + 2*pad_h - kernel_h) / stride_h, plus 1,
// the division in float as Caffe writes it; then, `if (pad_h_ || pad_w_)`,
// a last window that would start at or beyond height + pad_h (width + pad_w)
// is clipped, on each axis, whichever pad is set. LayerSetUp requires pad <
// kernel when a pad is set (always true when none is).
func poolOutputShape(bottom, kernel, stride, pad [2]int, ceil bool) ([2]int, error) {
	var pooled [2]int
	if err := geometryInRange(bottom, kernel, stride, pad, [2]int{1, 1}); err != nil {
		return pooled, err
	}
	if pad[0] >= kernel[0] || pad[1] >= kernel[1] {
		return pooled, fmt.Errorf("pad %v must be smaller than the kernel %v", pad, kernel)
	}
	round := math.Floor
	if ceil {
		round = math.Ceil
	}
	for i := range 2 {
		num := bottom[i] + 2*pad[i] - kernel[i]
		if num < 0 {
			return pooled, fmt.Errorf("kernel %v is larger than the padded input %dx%d", kernel, bottom[0]+2*pad[0], bottom[1]+2*pad[1])
		}
		pooled[i] = int(round(float64(float32(num)/float32(stride[i])))) + 1
	}
	if pad[0] != 0 || pad[1] != 0 {
		for i := range 2 {
			if (pooled[i]-1)*stride[i] >= bottom[i]+pad[i] {
				pooled[i]--
			}
			if (pooled[i]-1)*stride[i] >= bottom[i]+pad[i] { // Caffe's CHECK_LT
				return pooled, fmt.Errorf("the last pooling window starts in the padding")
			}
		}
	}
	return pooled, nil
}
