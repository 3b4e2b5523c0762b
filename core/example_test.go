package core_test

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/core/weights/weightstest"
)

// brightnessModel is a two-class "dark"/"bright" classifier on 2x2 gray
// images: pixels minus 128, times 1/128, summed by an inner product with
// weights -1/4 (dark) and +1/4 (bright), then softmax. A real model
// directory comes from tools/convert; this one is built in memory.
func brightnessModel() *weightstest.Builder {
	b := weightstest.New("brightness", 1, 2, 2, 1)
	b.M.Preprocess.MeanValues = []float64{128}
	b.M.Preprocess.Scale = 1.0 / 128
	b.F16("fc/w", []int{2, 4}, []float32{-0.25, -0.25, -0.25, -0.25, 0.25, 0.25, 0.25, 0.25})
	b.Op(weights.Op{Type: weights.OpInnerProduct, Inputs: []string{"data"}, Output: "fc", Weight: "fc/w"})
	b.Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"fc"}, Output: "prob"})
	b.M.Labels = []string{"dark", "bright"}
	return b
}

func ExampleOpen() {
	fsys, err := brightnessModel().MapFS() // natively: os.DirFS("weights/resnet50")
	if err != nil {
		log.Fatal(err)
	}
	m, err := core.Open(fsys, core.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	info := m.Info()
	fmt.Println(info.Model, info.Classes, "classes,", info.Params, "parameters, weights as", info.WeightMode)
	// Output: brightness 2 classes, 8 parameters, weights as f16
}

func ExampleModel_ClassifyBytes() {
	fsys, err := brightnessModel().MapFS()
	if err != nil {
		log.Fatal(err)
	}
	m, err := core.Open(fsys, core.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	// A white 2x2 PNG: each input value is (255-128)/128 = 0.9921875, so the
	// logits are -/+0.9921875 and P(bright) = 1/(1+exp(-1.984375)).
	img := image.NewGray(image.Rect(0, 0, 2, 2))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		log.Fatal(err)
	}
	res, err := m.ClassifyBytes(buf.Bytes(), core.ClassifyOptions{Top: 2})
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range res.Top {
		fmt.Printf("%d %-6s %.4f\n", p.Index, p.Label, p.Prob)
	}
	// Output:
	// 1 bright 0.8791
	// 0 dark   0.1209
}

func ExampleModel_ClassifyImage() {
	fsys, err := brightnessModel().MapFS()
	if err != nil {
		log.Fatal(err)
	}
	m, err := core.Open(fsys, core.Options{Float32Weights: true, Threads: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	// A black image (0 is 128 below the mean: inputs of -1). A color image
	// becomes luminance for this gray model.
	img := image.NewRGBA(image.Rect(0, 0, 2, 2))
	for x := range 2 {
		for y := range 2 {
			img.Set(x, y, color.Black)
		}
	}
	res, err := m.ClassifyImage(img, core.ClassifyOptions{Top: 1})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %.4f\n", res.Top[0].Label, res.Top[0].Prob)
	// Output: dark 0.8808
}
