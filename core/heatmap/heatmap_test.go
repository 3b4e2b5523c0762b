package heatmap

import (
	"image"
	"image/color"
	"image/draw"
	"math"
	"testing"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/preprocess"
)

// oklabLightness is the OKLab L of an sRGB color (the inverse of what ramp
// does, written from the forward definitions).
func oklabLightness(c color.NRGBA) float64 {
	lin := func(u uint8) float64 {
		v := float64(u) / 255
		if v <= 0.04045 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	r, g, b := lin(c.R), lin(c.G), lin(c.B)
	l := math.Cbrt(0.4122214708*r + 0.5363325363*g + 0.0514459929*b)
	m := math.Cbrt(0.2119034982*r + 0.6806995451*g + 0.1073969566*b)
	s := math.Cbrt(0.0883024619*r + 0.2817188376*g + 0.6299787005*b)
	return 0.2104542553*l + 0.7936177850*m - 0.0040720468*s
}

// TestColormapUniform: perceived lightness rises by nearly equal steps from
// one end of the colormap to the other (8-bit rounding aside).
func TestColormapUniform(t *testing.T) {
	step := (lightHigh - lightLow) / 255
	prev := oklabLightness(Color(0))
	if math.Abs(prev-lightLow) > 0.01 || math.Abs(oklabLightness(Color(1))-lightHigh) > 0.01 {
		t.Errorf("ends at lightness %v and %v, want %v and %v", prev, oklabLightness(Color(1)), lightLow, lightHigh)
	}
	// Over windows of 8 entries (8-bit rounding moves single steps by as
	// much as a step) lightness rises by 8 steps, give or take 40%.
	for i := 8; i < 256; i += 8 {
		l := oklabLightness(Color(float64(i) / 255))
		if d := l - prev; d < 0.6*8*step || d > 1.4*8*step {
			t.Errorf("entries %d..%d: lightness %v -> %v, want about +%v", i-8, i, prev, l, 8*step)
		}
		prev = l
	}
	if Color(-1) != Color(0) || Color(2) != Color(1) || Color(math.NaN()) != Color(0) {
		t.Error("out-of-range inputs are not clamped")
	}
}

// TestOverlay: a map whose left quarter lies outside every crop leaves the
// image unchanged there (at any output size); elsewhere the smallest value
// gets the colormap's first color mixed in, the largest its last.
func TestOverlay(t *testing.T) {
	const W, H = 20, 10
	m := &core.ClassMap{Layout: preprocess.Layout{W: W, H: H}, Placed: make([]float32, W*H)}
	for y := range H {
		for x := range W {
			v := float32(max(0, x-10))
			if x < 5 {
				v = float32(math.NaN())
			}
			m.Placed[y*W+x] = v
		}
	}
	gray := color.NRGBA{R: 100, G: 110, B: 120, A: 255}
	img := image.NewNRGBA(image.Rect(0, 0, 40, 20))
	draw.Draw(img, img.Rect, image.NewUniform(gray), image.Point{}, draw.Src)
	for _, size := range [][2]int{{40, 20}, {13, 7}} {
		out := Overlay(img, m, size[0], size[1])
		if out.Rect.Dx() != size[0] || out.Rect.Dy() != size[1] {
			t.Fatalf("overlay is %v, want %v", out.Rect, size)
		}
		if got := out.NRGBAAt(0, size[1]/2); got != gray {
			t.Errorf("%v: uncovered pixel %v, want the image's %v", size, got, gray)
		}
		want := func(c color.NRGBA) color.NRGBA {
			return color.NRGBA{R: mix(gray.R, c.R), G: mix(gray.G, c.G), B: mix(gray.B, c.B), A: 255}
		}
		if size[0] != 40 {
			continue
		}
		// Full size: pixel x samples placed column (x+0.5)/2-0.5.
		if got := out.NRGBAAt(39, 0); got != want(Color(1)) {
			t.Errorf("largest value drawn %v, want %v", got, want(Color(1)))
		}
		if got := out.NRGBAAt(12, 5); got != want(Color(0)) {
			t.Errorf("smallest value drawn %v, want %v", got, want(Color(0)))
		}
	}
}

// TestOverlayTransparent: transparent pixels show as white (as the
// classifier composites them), whatever color hides under their zero alpha.
func TestOverlayTransparent(t *testing.T) {
	m := &core.ClassMap{Layout: preprocess.Layout{W: 2, H: 2}, Placed: []float32{float32(math.NaN()), 1, 2, 3}}
	img := image.NewNRGBA(image.Rect(0, 0, 2, 2))
	for i := range img.Pix {
		img.Pix[i] = 0x3c // alpha 0x3c too; then make pixel (0,0) fully transparent
	}
	img.SetNRGBA(0, 0, color.NRGBA{R: 200, G: 10, B: 90, A: 0})
	out := Overlay(img, m, 2, 2)
	if got := out.NRGBAAt(0, 0); got != (color.NRGBA{R: 255, G: 255, B: 255, A: 255}) {
		t.Errorf("transparent uncovered pixel drawn %v, want white", got)
	}
}
