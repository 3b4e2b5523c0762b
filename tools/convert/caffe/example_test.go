package caffe_test

import (
	"bytes"
	"fmt"
	"log"
	"strings"

	"github.com/residual-go/residual/tools/convert/caffe"
)

func ExampleParsePrototxt() {
	n, err := caffe.ParsePrototxt(strings.NewReader(`
name: "tiny"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n.Name, n.Inputs[0].Name, n.Inputs[0].Shape)
	for _, l := range n.Layers {
		fmt.Println(l.Name, l.Type, l.Bottoms, "->", l.Tops)
	}
	c := n.Layers[0].Conv
	fmt.Println(c.NumOutput, c.KernelSize, c.Pad, c.BiasTerm)
	// Output:
	// tiny data [1 3 8 8]
	// conv Convolution [data] -> [conv]
	// relu ReLU [conv] -> [conv]
	// 4 [3] [1] true
}

func ExampleMerge() {
	deploy := &caffe.Net{Layers: []*caffe.Layer{
		{Name: "fc", Type: "InnerProduct", Phase: caffe.PhaseAny},
		{Name: "prob", Type: "Softmax", Phase: caffe.PhaseAny},
	}}
	trained := &caffe.Net{Layers: []*caffe.Layer{
		{Name: "data", Type: "Data", Phase: caffe.PhaseTrain},
		{Name: "fc", Type: "InnerProduct", Phase: caffe.PhaseAny,
			Blobs: []*caffe.Blob{{Shape: []int{2, 1}, Data: []float32{0.5, -1}}, {Shape: []int{2}, Data: []float32{0, 1}}}},
		{Name: "loss", Type: "SoftmaxWithLoss", Phase: caffe.PhaseAny},
	}}
	// Written and read back as a real caffemodel on the way.
	var buf bytes.Buffer
	if err := caffe.WriteModel(&buf, trained); err != nil {
		log.Fatal(err)
	}
	trained, err := caffe.ReadModel(&buf, int64(buf.Len()))
	if err != nil {
		log.Fatal(err)
	}
	n, err := caffe.Merge(deploy, trained)
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range n.Layers {
		fmt.Print(l.Name, ":")
		for _, b := range l.Blobs {
			fmt.Print(" ", b.Shape, b.Data)
		}
		fmt.Println()
	}
	// Output:
	// fc: [2 1] [0.5 -1] [2] [0 1]
	// prob:
}

func ExampleReadLabels() {
	ids, names, err := caffe.ReadLabels(strings.NewReader("n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n"))
	if err != nil {
		log.Fatal(err)
	}
	for i := range ids {
		fmt.Printf("%d %s %q\n", i, ids[i], names[i])
	}
	// Output:
	// 0 n01440764 "tench, Tinca tinca"
	// 1 n01443537 "goldfish, Carassius auratus"
}
