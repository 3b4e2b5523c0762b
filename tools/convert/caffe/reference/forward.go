package reference

import (
	"errors"
	"fmt"
	"slices"

	"github.com/residual-go/residual/tools/convert/caffe"
)

// Tensor is a blob's value: row-major (NCHW) float64 data with its shape,
// batch dimension first.
type Tensor struct {
	Shape []int
	Data  []float64
}

// NewTensor returns a zero tensor of the given shape.
func NewTensor(shape ...int) *Tensor {
	return &Tensor{Shape: slices.Clone(shape), Data: make([]float64, count(shape))}
}

// Hook is called by [Run] before each executed layer with the layer and the
// values of its bottoms. It may set l.Blobs (the fixture generator computes
// BatchNorm statistics this way); an error stops the run.
type Hook func(l *caffe.Layer, bottoms []*Tensor) error

// Forward runs net on one input (batch 1) and returns the value of every blob
// by name, in-place blobs with their final value. input holds the C*H*W
// values (for a 4-D input) of the net's single input blob, whose shape is the
// declared one without its batch dimension.
func Forward(net *caffe.Net, input []float64) (map[string][]float64, error) {
	name, shape, err := inputOf(net)
	if err != nil {
		return nil, err
	}
	shape[0] = 1
	if len(input) != count(shape) {
		return nil, fmt.Errorf("reference: input %q has shape %v (batch 1) = %d values, got %d", name, shape, count(shape), len(input))
	}
	blobs, err := Run(net, &Tensor{Shape: shape, Data: input}, nil)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]float64, len(blobs))
	for k, t := range blobs {
		out[k] = t.Data
	}
	return out, nil
}

// Run runs net on input, whose shape (batch first) may differ from the
// declared one in batch size and spatial size. hook, if not nil, is called
// before every executed layer. It returns every blob's final value.
func Run(net *caffe.Net, input *Tensor, hook Hook) (map[string]*Tensor, error) {
	name, _, err := inputOf(net)
	if err != nil {
		return nil, err
	}
	if len(input.Data) != count(input.Shape) {
		return nil, fmt.Errorf("reference: input tensor has shape %v but %d values", input.Shape, len(input.Data))
	}
	blobs := map[string]*Tensor{name: input}
	for _, l := range net.Layers {
		if skipped(l) {
			continue
		}
		info := layerInfo{l.Name, l.Type}
		bottoms := make([]*Tensor, len(l.Bottoms))
		shapes := make([][]int, len(l.Bottoms))
		for i, b := range l.Bottoms {
			t, ok := blobs[b]
			if !ok {
				return nil, layerErr(info, "bottom %q is not produced by any earlier layer", b)
			}
			bottoms[i], shapes[i] = t, t.Shape
		}
		if err := checkTops(l, blobs); err != nil {
			return nil, err
		}
		if hook != nil {
			if err := hook(l, bottoms); err != nil {
				return nil, err
			}
		}
		outShapes, err := outputShapes(l, shapes)
		if err != nil {
			return nil, err
		}
		tops := make([]*Tensor, len(outShapes))
		for i, s := range outShapes {
			tops[i] = NewTensor(s...)
		}
		if err := compute(l, bottoms, tops); err != nil {
			return nil, err
		}
		for i, t := range l.Tops {
			blobs[t] = tops[i]
		}
	}
	return blobs, nil
}

// Shapes returns the shape of every blob of net at its declared input size,
// without the batch dimension (C, H, W for a 4-D blob).
func Shapes(net *caffe.Net) (map[string][]int, error) {
	_, shape, err := inputOf(net)
	if err != nil {
		return nil, err
	}
	return ShapesAt(net, shape[1:])
}

// ShapesAt is [Shapes] for an input of shape chw (batch dimension omitted)
// instead of the declared one.
func ShapesAt(net *caffe.Net, chw []int) (map[string][]int, error) {
	name, _, err := inputOf(net)
	if err != nil {
		return nil, err
	}
	shapes := map[string][]int{name: append([]int{1}, chw...)}
	for _, l := range net.Layers {
		if skipped(l) {
			continue
		}
		in := make([][]int, len(l.Bottoms))
		for i, b := range l.Bottoms {
			s, ok := shapes[b]
			if !ok {
				return nil, layerErr(layerInfo{l.Name, l.Type}, "bottom %q is not produced by any earlier layer", b)
			}
			in[i] = s
		}
		out, err := outputShapes(l, in)
		if err != nil {
			return nil, err
		}
		for i, t := range l.Tops {
			shapes[t] = out[i]
		}
	}
	for k, s := range shapes {
		shapes[k] = s[1:]
	}
	return shapes, nil
}

// notExecuted lists the layer types that have no part in a test-time forward
// pass: data sources (the net's input comes from the caller) and the loss
// and accuracy layers of training nets.
var notExecuted = map[string]bool{
	"Input": true, "Data": true, "ImageData": true, "MemoryData": true, "HDF5Data": true,
	"WindowData": true, "DummyData": true, "SoftmaxWithLoss": true, "Accuracy": true,
	"EuclideanLoss": true, "HingeLoss": true, "SigmoidCrossEntropyLoss": true,
	"InfogainLoss": true, "MultinomialLogisticLoss": true, "ContrastiveLoss": true,
	"Silence": true,
}

func skipped(l *caffe.Layer) bool { return l.Phase == caffe.PhaseTrain || notExecuted[l.Type] }

// inputOf finds the net's single input: a net-level `input:` declaration or
// the top of an Input layer. The returned shape is a fresh copy.
func inputOf(net *caffe.Net) (string, []int, error) {
	type in struct {
		name  string
		shape []int
	}
	var ins []in
	for _, i := range net.Inputs {
		ins = append(ins, in{i.Name, i.Shape})
	}
	for _, l := range net.Layers {
		if l.Type != "Input" || l.Phase == caffe.PhaseTrain {
			continue
		}
		if l.Input == nil || len(l.Input.Shapes) == 0 {
			return "", nil, layerErr(layerInfo{l.Name, l.Type}, "input_param has no shape")
		}
		for i, t := range l.Tops {
			s := l.Input.Shapes[0]
			if len(l.Input.Shapes) > 1 {
				if i >= len(l.Input.Shapes) {
					return "", nil, layerErr(layerInfo{l.Name, l.Type}, "%d tops but %d shapes", len(l.Tops), len(l.Input.Shapes))
				}
				s = l.Input.Shapes[i]
			}
			ins = append(ins, in{t, s})
		}
	}
	switch {
	case len(ins) == 0:
		return "", nil, errors.New("reference: the net declares no input (no `input:` and no Input layer); " +
			"a caffemodel alone holds the training net: merge it with its deploy prototxt")
	case len(ins) > 1:
		return "", nil, fmt.Errorf("reference: the net has %d inputs (%q, %q, ...); only nets with one input are supported", len(ins), ins[0].name, ins[1].name)
	}
	if len(ins[0].shape) < 2 {
		return "", nil, fmt.Errorf("reference: input %q has shape %v; want at least batch and channels", ins[0].name, ins[0].shape)
	}
	return ins[0].name, slices.Clone(ins[0].shape), nil
}

// checkTops applies Caffe's rule that a top either is one of the layer's own
// bottoms (in place) or names a new blob.
func checkTops(l *caffe.Layer, blobs map[string]*Tensor) error {
	for _, t := range l.Tops {
		if _, exists := blobs[t]; exists && !slices.Contains(l.Bottoms, t) {
			return layerErr(layerInfo{l.Name, l.Type}, "top %q is already produced by an earlier layer", t)
		}
	}
	return nil
}

func count(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
