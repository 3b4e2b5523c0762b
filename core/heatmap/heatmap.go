// Package heatmap draws class activation maps (core.ClassMap) for people:
// the map min-max normalized, colored with a perceptually uniform colormap,
// and blended over the image it was computed from, at any size. The command
// line tool writes the result as PNG; the page's Web Worker draws the
// thumbnails' overlays with it.
//
// The colormap is a ramp in OKLab (Björn Ottosson's perceptual color space):
// lightness rises linearly from dark to light, so equal steps of the map are
// equal steps of perceived lightness, and the hue turns from blue-violet
// through teal and green to yellow, which stays readable for the common
// color-vision deficiencies (lightness alone orders it). Chroma is reduced
// where a color would leave the sRGB gamut.
package heatmap

import (
	"image"
	"image/color"
	"image/draw"
	"math"
	"sync"

	xdraw "golang.org/x/image/draw"

	"github.com/residual-go/residual/core"
)

// Ramp endpoints in OKLCh (lightness, chroma, hue in degrees).
const (
	lightLow, lightHigh = 0.28, 0.94
	chroma              = 0.14
	hueLow, hueHigh     = 285.0, 100.0
)

var (
	lutOnce sync.Once
	lut     [256]color.NRGBA
)

// Color returns the colormap's color at t in [0, 1] (clamped): dark
// blue-violet at 0, bright yellow at 1.
func Color(t float64) color.NRGBA {
	lutOnce.Do(func() {
		for i := range lut {
			lut[i] = ramp(float64(i) / 255)
		}
	})
	if !(t > 0) {
		return lut[0]
	}
	return lut[int(math.Round(min(t, 1)*255))]
}

// ramp computes the colormap at t, halving the chroma until the color is in
// the sRGB gamut.
func ramp(t float64) color.NRGBA {
	l := lightLow + t*(lightHigh-lightLow)
	h := (hueLow + t*(hueHigh-hueLow)) * math.Pi / 180
	c := chroma
	for {
		r, g, b := oklabToLinearSRGB(l, c*math.Cos(h), c*math.Sin(h))
		if (r >= 0 && r <= 1 && g >= 0 && g <= 1 && b >= 0 && b <= 1) || c < 1e-4 {
			return color.NRGBA{R: encode(r), G: encode(g), B: encode(b), A: 255}
		}
		c *= 0.97
	}
}

// oklabToLinearSRGB converts OKLab to linear sRGB (Ottosson's matrices).
func oklabToLinearSRGB(L, a, b float64) (r, g, bl float64) {
	l := L + 0.3963377774*a + 0.2158037573*b
	m := L - 0.1055613458*a - 0.0638541728*b
	s := L - 0.0894841775*a - 1.2914855480*b
	l, m, s = l*l*l, m*m*m, s*s*s
	return 4.0767416621*l - 3.3077115913*m + 0.2309699292*s,
		-1.2684380046*l + 2.6097574011*m - 0.3413193965*s,
		-0.0041960863*l - 0.7034186147*m + 1.7076147010*s
}

// encode applies the sRGB transfer function to a linear value in [0, 1].
func encode(v float64) uint8 {
	v = max(0, min(1, v))
	if v <= 0.0031308 {
		v *= 12.92
	} else {
		v = 1.055*math.Pow(v, 1/2.4) - 0.055
	}
	return uint8(math.Round(v * 255))
}

// Opacity is how much of the colormap Overlay mixes into the image.
const Opacity = 0.5

// Overlay returns img scaled to w x h (bilinear), over white, with m's
// placed map over it: min-max normalized over the values the crops cover, colored, mixed in
// at Opacity. Where no crop lay (outside the center crop of a 1-crop
// classification) the image shows through unchanged. img must be the image
// m was computed from, in the orientation it was classified in.
func Overlay(img image.Image, m *core.ClassMap, w, h int) *image.NRGBA {
	// The image over white, as the classifier saw it (transparent pixels
	// often hold arbitrary colors under their zero alpha).
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	draw.Draw(out, out.Rect, image.White, image.Point{}, draw.Src)
	if b := img.Bounds(); b.Dx() == w && b.Dy() == h {
		draw.Draw(out, out.Rect, img, b.Min, draw.Over)
	} else {
		xdraw.ApproxBiLinear.Scale(out, out.Rect, img, b, xdraw.Over, nil)
	}
	lo, hi := valueRange(m.Placed)
	for y := range h {
		for x := range w {
			v, ok := sample(m, (float64(x)+0.5)/float64(w), (float64(y)+0.5)/float64(h))
			if !ok {
				continue
			}
			t := 0.5
			if hi > lo {
				t = (v - lo) / (hi - lo)
			}
			c := Color(t)
			i := out.PixOffset(x, y)
			p := out.Pix[i : i+4 : i+4]
			p[0] = mix(p[0], c.R)
			p[1] = mix(p[1], c.G)
			p[2] = mix(p[2], c.B)
			p[3] = 255
		}
	}
	return out
}

func mix(a, b uint8) uint8 {
	return uint8(math.Round((1-Opacity)*float64(a) + Opacity*float64(b)))
}

// valueRange is the smallest and largest non-NaN value of v.
func valueRange(v []float32) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range v {
		if x == x {
			lo, hi = min(lo, float64(x)), max(hi, float64(x))
		}
	}
	return lo, hi
}

// sample reads m's placed map at (u, v), fractions of its width and height,
// bilinearly; ok is false when a neighbour lies outside every crop.
func sample(m *core.ClassMap, u, v float64) (float64, bool) {
	W, H := m.Layout.W, m.Layout.H
	fx := max(0, min(float64(W-1), u*float64(W)-0.5))
	fy := max(0, min(float64(H-1), v*float64(H)-0.5))
	x0, y0 := int(fx), int(fy)
	x1, y1 := min(x0+1, W-1), min(y0+1, H-1)
	tx, ty := fx-float64(x0), fy-float64(y0)
	a, b := m.Placed[y0*W+x0], m.Placed[y0*W+x1]
	c, d := m.Placed[y1*W+x0], m.Placed[y1*W+x1]
	if a != a || b != b || c != c || d != d {
		return 0, false
	}
	return (1-ty)*((1-tx)*float64(a)+tx*float64(b)) + ty*((1-tx)*float64(c)+tx*float64(d)), true
}
