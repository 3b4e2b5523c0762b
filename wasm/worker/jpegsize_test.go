//go:build !js

package main

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"

	"github.com/residual-go/residual/internal/testfiles"
)

// sof builds a JPEG prefix: SOI, optional APP1 Exif, then a start-of-frame
// segment with the given marker, size and per-component sampling (HxV as 0xHV).
func sof(marker byte, w, h int, exif bool, sampling ...byte) []byte {
	b := []byte{0xFF, 0xD8}
	if exif {
		b = append(b, 0xFF, 0xE1, 0, 8, 'E', 'x', 'i', 'f', 0, 0)
	}
	seg := []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), byte(len(sampling))}
	for i, s := range sampling {
		seg = append(seg, byte(i+1), s, 0)
	}
	n := len(seg) + 2
	b = append(b, 0xFF, marker, byte(n>>8), byte(n))
	return append(b, seg...)
}

func TestParseJPEGLayout(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want jpegLayout
		ok   bool
	}{
		// 4:2:0 100x60: MCU 16x16 -> 7x4 MCUs; Y 2x2 blocks per MCU, Cb and Cr 1 each.
		{"baseline 4:2:0", sof(0xC0, 100, 60, false, 0x22, 0x11, 0x11), jpegLayout{Components: 3, Blocks: 7 * 4 * 6}, true},
		// 4:4:4 16x8: MCU 8x8 -> 2x1 MCUs, 3 blocks each.
		{"baseline 4:4:4", sof(0xC0, 16, 8, false, 0x11, 0x11, 0x11), jpegLayout{Components: 3, Blocks: 6}, true},
		{"progressive gray with Exif", sof(0xC2, 9, 9, true, 0x11), jpegLayout{Components: 1, Blocks: 4, Progressive: true, Exif: true}, true},
		{"not a JPEG", []byte("GIF89a...."), jpegLayout{}, false},
		{"truncated frame", sof(0xC0, 100, 60, false, 0x22, 0x11, 0x11)[:12], jpegLayout{}, false},
		{"no components", sof(0xC0, 10, 10, false), jpegLayout{}, false},
		{"scan before frame", []byte{0xFF, 0xD8, 0xFF, 0xDA, 0, 2}, jpegLayout{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseJPEGLayout(tt.data)
			if ok != tt.ok || (ok && got != tt.want) {
				t.Fatalf("got %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestJPEGLayoutMatchesDecoder: the blocks counted from the header hold the
// samples image/jpeg allocates, for the encoder's 4:2:0 and gray output.
func TestJPEGLayoutMatchesDecoder(t *testing.T) {
	for _, tt := range []struct {
		name string
		img  image.Image
	}{
		{"color 4:2:0", image.NewRGBA(image.Rect(0, 0, 123, 77))},
		{"gray", image.NewGray(image.Rect(0, 0, 50, 33))},
	} {
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, tt.img, nil); err != nil {
			t.Fatal(err)
		}
		l, ok := parseJPEGLayout(buf.Bytes())
		if !ok {
			t.Fatalf("%s: not parsed", tt.name)
		}
		dec, err := jpeg.Decode(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		var samples int
		switch d := dec.(type) {
		case *image.YCbCr:
			samples = len(d.Y) + len(d.Cb) + len(d.Cr)
		case *image.Gray:
			samples = len(d.Pix)
		}
		if int64(samples) > l.Blocks*64 {
			t.Errorf("%s: decoder holds %d samples, the layout allows %d", tt.name, samples, l.Blocks*64)
		}
	}
}

// FuzzJPEGLayout: the header walk never panics or reads out of range, and
// what it reports is consistent.
func FuzzJPEGLayout(f *testing.F) {
	f.Add(sof(0xC0, 100, 60, true, 0x22, 0x11, 0x11))
	f.Add(sof(0xC2, 1, 1, false, 0x11))
	f.Add(testfiles.Read(f, testfiles.Photos+"/video-001.exif6.jpeg"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		l, ok := parseJPEGLayout(b)
		if ok && (l.Components < 1 || l.Blocks < 0) {
			t.Fatalf("inconsistent layout %+v", l)
		}
	})
}
