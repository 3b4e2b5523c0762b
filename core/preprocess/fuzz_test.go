package preprocess

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// fuzzMaxPixels caps what a fuzzed input may decode to, so the fuzzer
// explores parsers rather than allocating huge images.
const fuzzMaxPixels = 1 << 16

// fuzzMaxBytes skips inputs larger than this (image/jpeg's FuzzDecode caps too).
const fuzzMaxBytes = 1 << 16

// FuzzDecode: no input may panic; a refused input must be an *ImageError of a
// known kind; an accepted one must respect the pixel limit and go through
// Crops (10 crops) without error.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil && len(b) <= fuzzMaxBytes {
			f.Add(b)
		}
	}
	src := quadrants(16, 8)
	f.Add(encodePNG(f, src))
	f.Add(encodeJPEG(f, src, 75))
	f.Add(encodeGIF(f, src))
	f.Add(encodeBMP(f, src))
	f.Add(encodeTIFF(f, src))
	f.Add(withAPP1(encodeJPEG(f, src, 75), exifSegment(exifTIFF(binary.BigEndian, 3, 6))))
	f.Add(pngHeaderOnly(100000, 100000))

	spec := Spec{Channels: 3, Height: 4, Width: 4, Resize: 5, ChannelOrder: "BGR", Scale: 1, MeanValues: []float32{104, 117, 123}}
	dst := make([][]float32, 10)
	for i := range dst {
		dst[i] = make([]float32, 3*4*4)
	}
	var bufs Buffers
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxBytes {
			return
		}
		img, err := Decode(data, fuzzMaxPixels)
		if err != nil {
			var ie *ImageError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T is not an *ImageError: %v", err, err)
			}
			if ie.Kind != ErrEmpty && ie.Kind != ErrUnsupported && ie.Kind != ErrTooLarge && ie.Kind != ErrCorrupt {
				t.Fatalf("unknown kind %v", ie.Kind)
			}
			return
		}
		b := img.Bounds()
		if b.Dx() <= 0 || b.Dy() <= 0 || b.Dx()*b.Dy() > fuzzMaxPixels {
			t.Fatalf("accepted an image of %v", b)
		}
		// Any decoded image resizes to a shorter side of 5 and yields the 4x4
		// crops. (Skip extreme aspect ratios: a 1x65536 strip would become
		// 5x327680 and only measure the resizer's speed.)
		if rw, rh := ResizedSize(b.Dx(), b.Dy(), spec.Resize); rw*rh > fuzzMaxPixels {
			return
		}
		if err := bufs.Crops(img, spec, 10, dst); err != nil {
			t.Fatalf("Crops of a decoded %v image: %v", b, err)
		}
	})
}

// FuzzExif: the Exif parser and the JPEG marker walk never read out of
// bounds and only ever report orientations 1..8.
func FuzzExif(f *testing.F) {
	f.Add(exifTIFF(binary.LittleEndian, 3, 6))
	f.Add(exifTIFF(binary.BigEndian, 3, 8))
	f.Add(exifTIFF(binary.BigEndian, 4, 3))
	f.Add(exifTIFF(binary.LittleEndian, 3, 9))
	f.Add([]byte("MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x05\x00\x00"))
	f.Add([]byte("II*\x00\xff\xff\xff\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxBytes {
			return
		}
		if o, ok := exifOrientation(data); ok && (o < 1 || o > 8) {
			t.Fatalf("orientation %d reported ok", o)
		}
		// The same bytes as an Exif segment of a JPEG, and as a whole JPEG stream.
		seg := withAPP1([]byte{0xFF, markerSOI}, exifSegment(data[:min(len(data), 0xFFF0)]))
		if o := jpegOrientation(seg); o < 1 || o > 8 {
			t.Fatalf("jpegOrientation = %d", o)
		}
		if o := jpegOrientation(data); o < 1 || o > 8 {
			t.Fatalf("jpegOrientation = %d", o)
		}
	})
}

// FuzzReadHeader: ReadHeader never panics; a truncation it reports is one
// the format's decoder fails on too (it is never stricter than the
// decoder); for bytes it accepts, the size it reports is the decoded size,
// and everything Decode and Crops then allocate, whether they succeed or
// not, stays within Header.Memory.
func FuzzReadHeader(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil && len(b) <= fuzzMaxBytes && filepath.Ext(name) != ".md" {
			f.Add(b)
		}
	}
	src := quadrants(16, 8)
	f.Add(encodePNG(f, src))
	f.Add(encodeJPEG(f, src, 75))
	f.Add(encodeGIF(f, src))
	f.Add(encodeBMP(f, src))
	f.Add(encodeTIFF(f, src))
	spec := Spec{Channels: 3, Height: 4, Width: 4, Resize: 5, ChannelOrder: "BGR", Scale: 1}
	dst := make([][]float32, 10)
	for i := range dst {
		dst[i] = make([]float32, 3*4*4)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxBytes {
			return
		}
		h, err := ReadHeader(data, fuzzMaxPixels)
		if err != nil {
			if isTruncation(err) {
				if _, rawErr := rawDecode(data); rawErr == nil {
					t.Fatalf("ReadHeader: %v; the decoder accepts the bytes", err)
				}
			}
			return
		}
		if rw, rh := ResizedSize(h.Width, h.Height, spec.Resize); rw*rh > fuzzMaxPixels {
			return // as in FuzzDecode: an extreme aspect ratio only measures the resizer
		}
		var b Buffers
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		img, err := Decode(data, fuzzMaxPixels)
		if err == nil {
			err = b.Crops(img, spec, 10, dst)
		}
		runtime.ReadMemStats(&after)
		m := h.Memory(spec, 10)
		if alloc := int64(after.TotalAlloc - before.TotalAlloc); alloc > m.Decode+m.Crops+16<<10 {
			t.Fatalf("%s %dx%d: Decode and Crops allocated %d bytes, the bound is %d (%+v; error %v)",
				h.Format, h.Width, h.Height, alloc, m.Decode+m.Crops, m, err)
		}
		if img != nil {
			if bb := img.Bounds(); bb.Dx() != h.Width || bb.Dy() != h.Height {
				t.Fatalf("header %dx%d, decoded %v", h.Width, h.Height, bb)
			}
		}
	})
}
