package reference

import (
	"github.com/residual-go/residual/tools/convert/caffe"
)

// BlobShapes returns the shapes of the learned blobs layer l needs for
// bottoms of the given shapes (batch first), in Caffe's blob order:
//
//	Convolution   weight [num_output, channels/group, kh, kw], bias [num_output] when bias_term
//	InnerProduct  weight [N, K] ([K, N] with transpose), bias [N] when bias_term
//	BatchNorm     mean [C], variance [C], scale factor [1]
//	Scale         gamma (the scaled axes of bottom 0; absent with two bottoms), beta when bias_term
//
// Other layers need none (nil).
func BlobShapes(l *caffe.Layer, bottoms [][]int) ([][]int, error) {
	info := layerInfo{l.Name, l.Type}
	if len(bottoms) == 0 {
		return nil, layerErr(info, "has no bottoms")
	}
	x := bottoms[0]
	switch l.Type {
	case "Convolution":
		g, err := convParams(l, x)
		if err != nil {
			return nil, err
		}
		s := [][]int{{g.numOut, x[1] / g.group, g.kh, g.kw}}
		if g.bias {
			s = append(s, []int{g.numOut})
		}
		return s, nil
	case "InnerProduct":
		p := ipParam(l)
		axis, err := canonAxis(info, p.Axis, len(x))
		if err != nil {
			return nil, err
		}
		k := count(x[axis:])
		s := [][]int{{p.NumOutput, k}}
		if p.Transpose {
			s[0] = []int{k, p.NumOutput}
		}
		if p.BiasTerm {
			s = append(s, []int{p.NumOutput})
		}
		return s, nil
	case "BatchNorm":
		if len(x) < 2 {
			return nil, layerErr(info, "bottom has shape %v; want at least N and C", x)
		}
		return [][]int{{x[1]}, {x[1]}, {1}}, nil
	case "Scale":
		_, dim, _, err := scaleSpan(l, bottoms)
		if err != nil {
			return nil, err
		}
		p := l.Scale
		if p == nil {
			p = caffe.DefaultScaleParam()
		}
		// Caffe shapes gamma as the scaled axes themselves; the count is what
		// matters, so it is given as one axis here.
		var s [][]int
		if len(bottoms) == 1 {
			s = append(s, []int{dim})
		}
		if p.BiasTerm {
			s = append(s, []int{dim})
		}
		return s, nil
	}
	return nil, nil
}

// checkBlobs verifies that l carries exactly the blobs BlobShapes asks for.
// Blobs are compared by their number of values, so the legacy 4-D shapes
// that old Caffe files give 1-D blobs are accepted, as Caffe accepts them.
func checkBlobs(l *caffe.Layer, bottoms []*Tensor) error {
	shapes := make([][]int, len(bottoms))
	for i, b := range bottoms {
		shapes[i] = b.Shape
	}
	want, err := BlobShapes(l, shapes)
	if err != nil {
		return err
	}
	info := layerInfo{l.Name, l.Type}
	if len(l.Blobs) != len(want) {
		return layerErr(info, "has %d blobs, want %d", len(l.Blobs), len(want))
	}
	for i, s := range want {
		if got := l.Blobs[i].Len(); got != count(s) {
			return layerErr(info, "blob %d has %d values (shape %v), want %d (shape %v)", i, got, l.Blobs[i].Shape, count(s), s)
		}
	}
	return nil
}
