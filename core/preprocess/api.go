package preprocess

// This file holds the API package core calls; the implementation lives in
// decode.go, exif.go, color.go and crops.go.

import (
	"image"
)

// DefaultMaxPixels is the largest width*height accepted before decoding
// (64 Mi pixels: a 64 MP photo; about 96 MiB once decoded as 4:2:0 JPEG).
const DefaultMaxPixels = 64 << 20

// Spec says how to turn an image into the network's input (from the manifest).
type Spec struct {
	Channels      int       // 3 (color) or 1 (gray)
	Height, Width int       // network input size (the crop)
	Resize        int       // shorter side before cropping; images already Height x Width are used as is; <= 0: max(Height, Width)
	ChannelOrder  string    // "BGR", "RGB" or "GRAY"
	Scale         float32   // applied after mean subtraction; 0 means 1 (Caffe's default)
	Mean          []float32 // Channels x Height x Width mean image in ChannelOrder, or nil
	MeanValues    []float32 // per channel (or one for all), used when Mean is nil (may be nil: no mean)
}

// Decode decodes JPEG, PNG, GIF (first frame), WebP, BMP or TIFF bytes, applying the
// JPEG EXIF orientation. It refuses images whose header declares more than
// maxPixels pixels before decoding them (maxPixels <= 0: DefaultMaxPixels).
// Every refusal is an *ImageError wrapping ErrEmpty, ErrUnsupported,
// ErrTooLarge or ErrCorrupt; a panicking decoder is reported as ErrCorrupt.
func Decode(data []byte, maxPixels int) (image.Image, error) { return decode(data, maxPixels) }

// Crops turns img into the network input tensors (each Channels x Height x Width,
// written into dst[i], which must have that length): 1 crop = the center crop;
// 10 crops = 4 corners + center and their horizontal mirrors, in that order
// (top-left, top-right, bottom-left, bottom-right, center, then the mirrors of
// those five in the same order). It allocates its scratch images on every
// call; use a Buffers to reuse them across calls.
func Crops(img image.Image, s Spec, n int, dst [][]float32) error {
	var b Buffers
	return b.Crops(img, s, n, dst)
}
