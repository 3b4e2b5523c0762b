package reference_test

import (
	"fmt"

	"github.com/residual-go/residual/tools/convert/caffe"
	"github.com/residual-go/residual/tools/convert/caffe/reference"
)

// A 2x2 max pooling with stride 2 on a 3x3 image: Caffe's ceil rounding
// gives a 2x2 output, the windows at the right and bottom clipped.
func ExampleForward() {
	net := &caffe.Net{
		Inputs: []caffe.Input{{Name: "data", Shape: []int{1, 1, 3, 3}}},
		Layers: []*caffe.Layer{{
			Name: "pool", Type: "Pooling", Bottoms: []string{"data"}, Tops: []string{"pool"},
			Pooling: &caffe.PoolingParam{Pool: caffe.PoolMax, KernelSize: 2, Stride: 2},
		}},
	}
	out, err := reference.Forward(net, []float64{
		1, 2, 3,
		4, 5, 6,
		7, 8, 9,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(out["pool"])
	// Output: [5 6 8 9]
}
