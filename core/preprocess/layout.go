package preprocess

import (
	"fmt"
	"image"
)

// Layout says where the crops of an image come from: the image is resized
// to W x H (or used as is when it already has the network's input size) and
// each crop is a window of it, mirrored horizontally or not. A class
// activation map computed on a crop is placed back on the image with it.
type Layout struct {
	W, H  int          // the resized image the crops are cut from
	Crops []CropWindow // in the order Crops writes them
}

// CropWindow is one crop's window in the resized image.
type CropWindow struct {
	Rect   image.Rectangle
	Mirror bool // the crop is the window flipped left to right
}

// CropLayout returns the Layout of n crops (1 or 10) of a w x h image under
// s, or the *GeometryError (or *SpecError) that Crops would return for it.
func CropLayout(w, h int, s Spec, n int) (Layout, error) {
	if err := s.validate(); err != nil {
		return Layout{}, err
	}
	if n != 1 && n != 10 {
		return Layout{}, &SpecError{Reason: fmt.Sprintf("%d crops requested; use 1 (center) or 10 (corners, center and their mirrors)", n)}
	}
	if w <= 0 || h <= 0 {
		return Layout{}, &GeometryError{Reason: fmt.Sprintf("the image is empty (%dx%d pixels)", w, h)}
	}
	l := Layout{W: w, H: h}
	if w != s.Width || h != s.Height {
		// Decision 4: an image already the network's input size is used as
		// is; any other is resized so that its shorter side is s.Resize.
		resize := s.resize()
		l.W, l.H = ResizedSize(w, h, resize)
		if l.W < s.Width || l.H < s.Height {
			return Layout{}, &GeometryError{Reason: fmt.Sprintf(
				"a %dx%d image resized to shorter side %d is %dx%d, smaller than the %dx%d (width x height) crop; Spec.Resize must be at least the crop size",
				w, h, resize, l.W, l.H, s.Width, s.Height)}
		}
		if l.W > MaxResizedPixels/l.H {
			return Layout{}, &GeometryError{Reason: fmt.Sprintf(
				"a %dx%d image resized to shorter side %d would be %dx%d, more than %d pixels: its aspect ratio is too extreme to classify; crop it first",
				w, h, resize, l.W, l.H, MaxResizedPixels)}
		}
	}
	l.Crops = make([]CropWindow, 0, n)
	for i, o := range cropOrigins(l.W, l.H, s.Width, s.Height, n) {
		l.Crops = append(l.Crops, CropWindow{Rect: image.Rect(o.X, o.Y, o.X+s.Width, o.Y+s.Height), Mirror: i >= 5})
	}
	return l, nil
}
