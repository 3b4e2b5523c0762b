package preprocess_test

import (
	"bytes"
	"fmt"
	"image"
	"image/png"

	"github.com/residual-go/residual/core/preprocess"
)

// A 300x500 PNG becomes one 224x224 BGR crop with the ResNet per-channel mean
// subtracted; the image is a single colour, so every value is known.
func Example() {
	img := image.NewNRGBA(image.Rect(0, 0, 300, 500))
	for i := 0; i < len(img.Pix); i += 4 {
		copy(img.Pix[i:], []byte{200, 120, 40, 255}) // R, G, B, A
	}
	var file bytes.Buffer
	if err := png.Encode(&file, img); err != nil {
		panic(err)
	}

	decoded, err := preprocess.Decode(file.Bytes(), preprocess.DefaultMaxPixels)
	if err != nil {
		panic(err)
	}
	spec := preprocess.Spec{
		Channels: 3, Height: 224, Width: 224, Resize: 256,
		ChannelOrder: "BGR", Scale: 1, MeanValues: []float32{104, 117, 123},
	}
	var bufs preprocess.Buffers // keep one per goroutine
	crop := make([]float32, 3*224*224)
	if err := bufs.Crops(decoded, spec, 1, [][]float32{crop}); err != nil {
		panic(err)
	}
	fmt.Println("B, G, R at (0,0):", crop[0], crop[224*224], crop[2*224*224])
	fmt.Println(preprocess.ResizedSize(300, 500, 256))

	_, err = preprocess.Decode([]byte("hello"), 0)
	fmt.Println(err)
	// Output:
	// B, G, R at (0,0): -64 3 77
	// 256 427
	// preprocess: unsupported image: not a recognised image format (first bytes 68 65 6c 6c 6f); supported formats: JPEG, PNG, GIF, WebP, BMP, TIFF
}
