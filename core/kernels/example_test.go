package kernels_test

import (
	"fmt"

	"github.com/residual-go/residual/core/kernels"
)

// A 3x3 all-ones kernel with padding 1 over an all-ones 4x4 image counts the
// taps inside the image: 4 in the corners, 6 on the edges, 9 inside.
func ExampleConv2D() {
	p := kernels.ConvParams{InC: 1, InH: 4, InW: 4, OutC: 1, OutH: 4, OutW: 4, KH: 3, KW: 3, PH: 1, PW: 1}
	in := []float32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
	w := []float32{1, 1, 1, 1, 1, 1, 1, 1, 1}
	out := make([]float32, 16)
	scratch := make([]float32, kernels.ConvScratchSize(p))
	kernels.Conv2D(nil, p, in, w, nil, out, scratch, kernels.Act{})
	for r := 0; r < 4; r++ {
		fmt.Println(out[r*4 : r*4+4])
	}
	// Output:
	// [4 6 6 4]
	// [6 9 9 6]
	// [6 9 9 6]
	// [4 6 6 4]
}

// Caffe's average pooling divides by the window clipped to the padded input:
// here the last window (rows and columns 3..5 of the padded 6x6 grid) covers
// 2x2 padded cells, of which one holds the image's 16.
func ExamplePool2D() {
	in := make([]float32, 16)
	for i := range in {
		in[i] = float32(i + 1)
	}
	p := kernels.PoolParams{C: 1, InH: 4, InW: 4, OutH: 3, OutW: 3, KH: 3, KW: 3, SH: 2, SW: 2, PH: 1, PW: 1}
	out := make([]float32, 9)
	kernels.Pool2D(nil, p, in, out)
	fmt.Printf("%.3f\n", out)
	// Output:
	// [1.556 3.333 2.000 6.333 11.000 6.000 4.500 7.500 4.000]
}

func ExampleWidenF16() {
	src := []uint16{0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00}
	dst := make([]float32, len(src))
	kernels.WidenF16(dst, src)
	fmt.Println(dst)
	// Output:
	// [1 -2 5.9604645e-08 65504 +Inf]
}
