package preprocess

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"strings"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"
)

// format is one supported container: how to recognise it and its decoders.
type format struct {
	name         string
	match        func([]byte) bool
	decodeConfig func(io.Reader) (image.Config, error)
	decode       func(io.Reader) (image.Image, error)
}

// formats are tried in order; every magic number below is the format's own
// signature (JPEG SOI + marker prefix, the PNG signature, the GIF header,
// RIFF....WEBP, the BMP file header, the two TIFF byte-order headers).
var formats = []format{
	{"JPEG", func(b []byte) bool { return hasPrefix(b, "\xff\xd8\xff") }, jpeg.DecodeConfig, jpeg.Decode},
	{"PNG", func(b []byte) bool { return hasPrefix(b, "\x89PNG\r\n\x1a\n") }, png.DecodeConfig, png.Decode},
	{"GIF", func(b []byte) bool { return hasPrefix(b, "GIF87a") || hasPrefix(b, "GIF89a") }, gif.DecodeConfig, gif.Decode},
	{"WebP", func(b []byte) bool { return hasPrefix(b, "RIFF") && len(b) >= 12 && string(b[8:12]) == "WEBP" }, webp.DecodeConfig, webp.Decode},
	{"BMP", func(b []byte) bool { return hasPrefix(b, "BM") }, bmp.DecodeConfig, bmp.Decode},
	{"TIFF", func(b []byte) bool { return hasPrefix(b, "II*\x00") || hasPrefix(b, "MM\x00*") }, tiff.DecodeConfig, tiff.Decode},
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// Sniff names the format of data ("JPEG", "PNG", "GIF", "WebP", "BMP", "TIFF")
// from its leading bytes, or returns "" when it is none of them.
func Sniff(data []byte) string {
	for _, f := range formats {
		if f.match(data) {
			return f.name
		}
	}
	return ""
}

func decode(data []byte, maxPixels int) (image.Image, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	// Header first (ReadHeader): refuse oversized and truncated images
	// before any pixel memory is allocated.
	hdr, f, err := readHeader(data, maxPixels)
	if err != nil {
		return nil, err
	}
	cfg := image.Config{Width: hdr.Width, Height: hdr.Height}
	if hdr.Orientation >= 5 {
		cfg.Width, cfg.Height = hdr.Height, hdr.Width // the stored size
	}

	img, err := protect(func() (image.Image, error) { return f.decode(bytes.NewReader(data)) })
	if err != nil {
		return nil, decoderError(f.name, "cannot decode the pixels"+truncationHint(f.name, data), err)
	}
	if img == nil {
		return nil, &ImageError{Kind: ErrCorrupt, Format: f.name, Reason: "the decoder returned no image"}
	}
	// The decoded bounds must agree with the limit too (a GIF frame or a TIFF
	// page is checked again here, whatever its header said).
	b := img.Bounds()
	if err := checkSize(f.name, b.Dx(), b.Dy(), maxPixels); err != nil {
		return nil, err
	}
	switch f.name {
	case "JPEG":
		img = orient(img, hdr.Orientation)
	case "GIF":
		img = gifCanvas(img, cfg)
	}
	return img, nil
}

// gifCanvas places a GIF's first frame on the logical screen the header
// declares, as a browser shows it: the area the frame does not cover is
// transparent (so white once composited). A frame that fills the screen is
// returned as it is.
func gifCanvas(img image.Image, cfg image.Config) image.Image {
	screen := image.Rect(0, 0, cfg.Width, cfg.Height)
	if img.Bounds() == screen {
		return img
	}
	canvas := image.NewNRGBA(screen)
	draw.Draw(canvas, img.Bounds(), img, img.Bounds().Min, draw.Src)
	return canvas
}

// checkSize refuses empty, negative and oversized dimensions.
func checkSize(name string, w, h, maxPixels int) error {
	if w <= 0 || h <= 0 {
		return &ImageError{Kind: ErrCorrupt, Format: name, Reason: fmt.Sprintf("the image declares a size of %dx%d pixels; width and height must be positive", w, h)}
	}
	if w > maxPixels/h {
		return &ImageError{Kind: ErrTooLarge, Format: name, Reason: fmt.Sprintf(
			"%dx%d pixels (%d) is more than the limit of %d pixels; downscale the image before classifying it",
			w, h, int64(w)*int64(h), maxPixels)}
	}
	return nil
}

// decoderError turns a decoder's error into an *ImageError of the right kind.
func decoderError(name, what string, err error) error {
	var (
		jue jpeg.UnsupportedError
		pue png.UnsupportedError
		tue tiff.UnsupportedError
	)
	if errors.As(err, &jue) || errors.As(err, &pue) || errors.As(err, &tue) ||
		errors.Is(err, bmp.ErrUnsupported) || strings.Contains(err.Error(), "unsupported") {
		return &ImageError{Kind: ErrUnsupported, Format: name, Reason: what + " (the file uses a feature this decoder does not implement; re-save it as a baseline JPEG or a PNG)", Err: err}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &ImageError{Kind: ErrCorrupt, Format: name, Reason: what + ": the data is truncated", Err: err}
	}
	return &ImageError{Kind: ErrCorrupt, Format: name, Reason: what, Err: err}
}

// truncationHint says when a JPEG or PNG that failed to decode lacks its
// end marker (JPEG EOI, PNG IEND chunk), the usual sign of a cut-off upload.
func truncationHint(name string, data []byte) string {
	d := bytes.TrimRight(data, "\x00") // some writers pad after the end marker
	switch {
	case name == "JPEG" && !bytes.HasSuffix(d, []byte{0xFF, markerEOI}):
		return " (no end-of-image marker: the file looks truncated)"
	case name == "PNG" && !bytes.Contains(data[max(0, len(data)-64):], []byte("IEND")):
		return " (no IEND chunk: the file looks truncated)"
	}
	return ""
}

// protect runs a third-party decoder and turns a panic into an error, so that
// no malformed input can crash the caller.
func protect[T any](fn func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero T
			v, err = zero, fmt.Errorf("decoder panicked: %v", r)
		}
	}()
	return fn()
}
