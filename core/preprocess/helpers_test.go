package preprocess

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// rgbSpec is a 3-channel RGB spec of w x h with no mean and scale 1, so the
// output is the 0..255 pixel values themselves.
func rgbSpec(w, h int) Spec {
	return Spec{Channels: 3, Height: h, Width: w, Resize: max(w, h), ChannelOrder: "RGB", Scale: 1}
}

// runCrops runs Crops and returns the n tensors.
func runCrops(t testing.TB, img image.Image, s Spec, n int) [][]float32 {
	t.Helper()
	dst := make([][]float32, n)
	for i := range dst {
		dst[i] = make([]float32, s.Channels*s.Height*s.Width)
	}
	if err := Crops(img, s, n, dst); err != nil {
		t.Fatalf("Crops: %v", err)
	}
	return dst
}

// pixel returns the channel values at (x, y) of a C x H x W tensor.
func pixel(t []float32, s Spec, x, y int) []float32 {
	out := make([]float32, s.Channels)
	for c := range out {
		out[c] = t[(c*s.Height+y)*s.Width+x]
	}
	return out
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, img image.Image, q int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeGIF(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gif.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeBMP(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := bmp.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeTIFF(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := tiff.Encode(&b, img, &tiff.Options{Compression: tiff.Deflate}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// quadrants returns a w x h opaque image whose four quadrants are red (top
// left), green (top right), blue (bottom left) and white (bottom right).
func quadrants(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var c color.NRGBA
			switch {
			case x < w/2 && y < h/2:
				c = color.NRGBA{255, 0, 0, 255}
			case y < h/2:
				c = color.NRGBA{0, 255, 0, 255}
			case x < w/2:
				c = color.NRGBA{0, 0, 255, 255}
			default:
				c = color.NRGBA{255, 255, 255, 255}
			}
			m.SetNRGBA(x, y, c)
		}
	}
	return m
}

// lcg is a fixed-seed generator for test pixels (no global rand state).
type lcg uint64

func (g *lcg) next() uint32 {
	*g = *g*6364136223846793005 + 1442695040888963407
	return uint32(*g >> 33)
}

// randomNRGBA returns a w x h image of seeded random opaque pixels.
func randomNRGBA(w, h int, seed uint64) *image.NRGBA {
	g := lcg(seed)
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(m.Pix); i += 4 {
		v := g.next()
		m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = byte(v), byte(v>>8), byte(v>>16), 255
	}
	return m
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}
