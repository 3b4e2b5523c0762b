package preprocess

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"github.com/residual-go/residual/internal/testfiles"
)

// memoryCase is one image for TestMemoryBoundsAllocations.
type memoryCase struct {
	name  string
	data  func(t testing.TB) []byte
	tight bool // the bound is meant to be close to what is allocated (not a worst case the file does not reach)
	long  bool // skipped with -short (large encodes, slow under wasm)
}

func memoryCases() []memoryCase {
	jpegOf := func(w, h int) func(testing.TB) []byte {
		return func(t testing.TB) []byte { return encodeJPEG(t, randomNRGBA(w, h, uint64(w)), 90) }
	}
	pngOf := func(img image.Image) func(testing.TB) []byte {
		return func(t testing.TB) []byte { return encodePNG(t, img) }
	}
	file := func(name string) func(testing.TB) []byte {
		return func(t testing.TB) []byte { return readTestdata(t, name) }
	}
	cases := []memoryCase{
		{"JPEG 4:2:0 150x103 (upscaled)", jpegOf(150, 103), true, false},
		{"JPEG 4:2:0 224x224 (used as is)", jpegOf(224, 224), true, false},
		{"JPEG 4:2:0 640x480", jpegOf(640, 480), true, false},
		{"JPEG 4:2:0 1000x872", jpegOf(1000, 872), true, false},
		{"JPEG 4:2:0 1364x1023 (no box reduction)", jpegOf(1364, 1023), true, true},
		{"JPEG 4:2:0 1920x1080 (box-reduced by 2)", jpegOf(1920, 1080), true, true},
		{"JPEG 4:2:0 4000x3000 (box-reduced by 5)", jpegOf(4000, 3000), true, true},
		{"JPEG gray 700x1400", func(t testing.TB) []byte { return encodeJPEG(t, grayImage(700, 1400), 90) }, true, false},
		{"JPEG 4:2:0 with Exif orientation 6, 1000x872", func(t testing.TB) []byte {
			return withAPP1(encodeJPEG(t, randomNRGBA(872, 1000, 5), 90), exifSegment(exifTIFF(binary.BigEndian, 3, 6)))
		}, true, false},
		{"PNG NRGBA 900x700", pngOf(randomNRGBA(900, 700, 3)), true, false},
		{"PNG RGB 1536x1024", pngOf(opaque(randomNRGBA(1536, 1024, 4))), true, true},
		{"PNG gray 700x1400", pngOf(grayImage(700, 1400)), true, false},
		{"PNG gray16 600x400", pngOf(image.NewGray16(image.Rect(0, 0, 600, 400))), true, false},
		{"PNG RGBA64 600x400", pngOf(opaque64(600, 400)), true, false},
		{"PNG NRGBA64 600x400", pngOf(image.NewNRGBA64(image.Rect(0, 0, 600, 400))), true, false},
		{"PNG paletted 800x600", pngOf(palettedImage(800, 600)), true, false},
		{"GIF 800x600", func(t testing.TB) []byte { return encodeGIF(t, palettedImage(800, 600)) }, true, false},
		{"BMP RGB 800x600", func(t testing.TB) []byte { return encodeBMP(t, opaque(randomNRGBA(800, 600, 6))) }, true, false},
		{"BMP NRGBA 800x600", func(t testing.TB) []byte { return encodeBMP(t, randomNRGBA(800, 600, 7)) }, true, false},
		{"BMP paletted 800x600", func(t testing.TB) []byte { return encodeBMP(t, palettedImage(800, 600)) }, true, false},
		{"TIFF RGBA uncompressed 800x600", tiffOf(opaque(randomNRGBA(800, 600, 8)), tiff.Uncompressed), false, false},
		{"TIFF RGBA deflate 800x600", tiffOf(opaque(randomNRGBA(800, 600, 9)), tiff.Deflate), false, false},
		{"TIFF gray deflate 800x600", tiffOf(grayImage(800, 600), tiff.Deflate), false, false},
	}
	// Every layout the generators cannot make comes from the Go project's
	// test files (testdata/README.md): progressive, 4:4:4, 4:1:0, "flex"
	// sampling, RGB, CMYK and gray JPEGs; interlaced and tRNS PNGs;
	// interlaced and off-screen-frame GIFs; lossy, lossy with alpha and
	// lossless WebP; strip, tile, 16-bit and LZW TIFFs; 8-bit BMP.
	names, _ := filepath.Glob(filepath.Join("testdata", "*"))
	for _, name := range names {
		base := filepath.Base(name)
		switch ext := filepath.Ext(base); {
		case ext == ".md" || ext == ".bz2" || base == "fuzz":
		case ext == ".png" && !isPNGLayoutFile(base):
		default:
			cases = append(cases, memoryCase{"file " + base, file(base), ext != ".tiff", false})
		}
	}
	for _, name := range []string{"video-001.exif6.jpeg", "yellow_rose.png", "yellow_rose.lossy.webp", "blue-purple-pink.lossless.webp"} {
		cases = append(cases, memoryCase{"photo " + name, func(t testing.TB) []byte {
			return testfiles.Read(t, testfiles.Photos+"/"+name)
		}, true, false})
	}
	return cases
}

// isPNGLayoutFile tells the PNGs kept for their layout (interlaced, tRNS)
// from those kept as reference renderings of other files.
func isPNGLayoutFile(name string) bool {
	return bytes.Contains([]byte(name), []byte("interlace")) || name[:2] == "ft"
}

// TestMemoryBoundsAllocations: for images of every format and layout,
// everything Decode and Crops allocate (garbage included, so at least what
// they hold at once) stays within Header.Memory, and, where the bound is
// not a worst case the file does not reach, within a small margin of it
// (so that the bound cannot drift far above what is real).
func TestMemoryBoundsAllocations(t *testing.T) {
	s := resnetSpec()
	t.Logf("%-50s %12s %12s %12s %6s", "image", "allocated", "bound", "decode part", "ratio")
	for _, c := range memoryCases() {
		t.Run(c.name, func(t *testing.T) {
			if c.long && testing.Short() {
				t.Skip("large image (-short)")
			}
			data := c.data(t)
			h, err := ReadHeader(data, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{1, 10} {
				alloc := allocated(t, data, s, n)
				m := h.Memory(s, n)
				bound := m.Decode + m.Crops
				if n == 1 {
					t.Logf("%-50s %12d %12d %12d %6.2f", c.name, alloc, bound, m.Decode, float64(bound)/float64(alloc))
				}
				if alloc > bound {
					t.Errorf("%d crops: allocated %d bytes, more than the bound %d (%+v)", n, alloc, bound, m)
				}
				if c.tight && bound > alloc+alloc/4+128<<10 {
					t.Errorf("%d crops: bound %d is more than 1.25x the %d bytes allocated, plus 128 KiB", n, bound, alloc)
				}
				if want := int64(n * 3 * 224 * 224 * 4); m.Output != want {
					t.Errorf("Output = %d, want %d", m.Output, want)
				}
			}
			// A Header made by hand from the same fields gets the format's
			// worst case, which is never below the one read from the data.
			hand := &Header{Format: h.Format, Width: h.Width, Height: h.Height, ColorModel: h.ColorModel, Bytes: h.Bytes}
			if got, read := hand.Memory(s, 1).Total(), h.Memory(s, 1).Total(); got < read {
				t.Errorf("a Header made by hand bounds %d bytes, less than the %d of the one read from the data", got, read)
			}
		})
	}
}

// allocated returns the bytes Decode and an empty Buffers' Crops allocate
// for data (the crop tensors excluded: the caller provides them).
func allocated(t testing.TB, data []byte, s Spec, n int) int64 {
	t.Helper()
	dst := newDst(s, n)
	var b Buffers
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	img, err := Decode(data, 0)
	if err == nil {
		err = b.Crops(img, s, n, dst)
	}
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	return int64(after.TotalAlloc - before.TotalAlloc)
}

// TestBuffersKeepLittle: the zero Buffers keeps nothing of an image whose
// scratch is over KeepLimit (so a large image's memory never carries over
// to the next), keeps a small image's, and drops what it kept when a large
// image comes; with Retain it keeps everything.
func TestBuffersKeepLittle(t *testing.T) {
	s := resnetSpec()
	dst := newDst(s, 1)
	kept := func(b *Buffers) int { return len(b.work.Pix) + len(b.resized.Pix) + 2*len(b.row) + 4*len(b.acc) }
	var b Buffers
	lenet := Spec{Channels: 1, Height: 28, Width: 28, ChannelOrder: "GRAY"}
	if err := b.Crops(randomNRGBA(40, 30, 20), lenet, 1, newDst(lenet, 1)); err != nil {
		t.Fatal(err)
	}
	if n := kept(&b); n == 0 || n > KeepLimit {
		t.Errorf("after a 40x30 image for a 28x28 input, the zero Buffers keeps %d bytes, want some, at most %d", n, KeepLimit)
	}
	if err := b.Crops(randomNRGBA(640, 480, 21), s, 1, dst); err != nil {
		t.Fatal(err)
	}
	if n := kept(&b); n != 0 || b.scaler != nil {
		t.Errorf("after a 640x480 image, the zero Buffers keeps %d bytes", n)
	}
	r := Buffers{Retain: true}
	if err := r.Crops(randomNRGBA(640, 480, 21), s, 1, dst); err != nil {
		t.Fatal(err)
	}
	if r.work.Pix == nil || r.resized.Pix == nil || !r.Retain {
		t.Error("a Buffers with Retain kept nothing")
	}
}

// TestMemoryHandMadeHeader: a Header made by hand gets the format's worst
// layout: an interlaced PNG counts two images, a JPEG the progressive
// coefficients and an oriented copy.
func TestMemoryHandMadeHeader(t *testing.T) {
	s := resnetSpec()
	for _, tt := range []struct {
		h    Header
		want int64 // Decode, without decoderState
	}{
		// 640x480 16-bit RGBA interlaced: 2 images of 8 bytes a pixel, 7 passes' two rows of 1+8*640 bytes.
		{Header{Format: "PNG", Width: 640, Height: 480, ColorModel: color.NRGBA64Model}, 2*8*640*480 + 7*2*(1+8*640)},
		// 640x480 color JPEG, 4:4:4, progressive, RGB, oriented: planes 3, RGBA 4, coefficients 3*4, RGBA64 copy 8.
		{Header{Format: "JPEG", Width: 640, Height: 480, ColorModel: color.YCbCrModel}, (3 + 4 + 12 + 8) * 640 * 480},
	} {
		got := tt.h.Memory(s, 1).Decode - decoderState[tt.h.Format]
		if got != tt.want {
			t.Errorf("%s %dx%d: Decode %d, want %d", tt.h.Format, tt.h.Width, tt.h.Height, got, tt.want)
		}
	}
}

func grayImage(w, h int) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	return img
}

// opaque returns img with every alpha at 255 (so encoders write RGB).
func opaque(img *image.NRGBA) *image.NRGBA {
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	return img
}

// opaque64 returns an opaque 16-bit image (PNG writes it as 16-bit RGB).
func opaque64(w, h int) *image.RGBA64 {
	img := image.NewRGBA64(image.Rect(0, 0, w, h))
	for i := 6; i < len(img.Pix); i += 8 {
		img.Pix[i], img.Pix[i+1] = 255, 255
	}
	return img
}

func palettedImage(w, h int) *image.Paletted {
	img := image.NewPaletted(image.Rect(0, 0, w, h), palette.Plan9)
	for i := range img.Pix {
		img.Pix[i] = uint8(i % 251)
	}
	return img
}

func tiffOf(img image.Image, c tiff.CompressionType) func(testing.TB) []byte {
	return func(t testing.TB) []byte {
		var b bytes.Buffer
		if err := tiff.Encode(&b, img, &tiff.Options{Compression: c}); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
}

// TestMemoryCaseLayouts: the encoders and files above have the layouts the
// cases name (a test of the test).
func TestMemoryCaseLayouts(t *testing.T) {
	var b bytes.Buffer
	if err := gif.Encode(&b, palettedImage(8, 8), nil); err != nil {
		t.Fatal(err)
	}
	if h, err := ReadHeader(b.Bytes(), 0); err != nil || h.layout.frame != image.Rect(0, 0, 8, 8) || h.layout.interlaced {
		t.Errorf("GIF header %+v, %v", h, err)
	}
	b.Reset()
	if err := bmp.Encode(&b, palettedImage(8, 8)); err != nil {
		t.Fatal(err)
	}
	if h, err := ReadHeader(b.Bytes(), 0); err != nil || !isPalette(h.ColorModel) {
		t.Errorf("BMP header %+v, %v", h, err)
	}
	for _, tt := range []struct {
		file string
		want string
	}{
		{"video-001.q50.222112.jpeg", "3 [2 2 1] [2 1 2] false false"}, // "flex" sampling: full-size chroma planes
		{"video-001.q50.444.progressive.jpeg", "3 [1 1 1] [1 1 1] true false"},
		{"video-001.rgb.jpeg", "3 [2 1 1] [2 1 1] false true"},
		{"video-001.interlaced.gif", "interlaced"},
		{"benchRGB-interlace.png", "interlaced"},
		{"ftbrn2c08.png", "transparent"},
		{"yellow_rose.lossy-with-alpha.webp", "alpha lossless"},
		{"video-001-tile-64x64.tiff", "64x64 compressed"},
	} {
		h, err := ReadHeader(readTestdata(t, tt.file), 0)
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		l := h.layout
		var got string
		switch h.Format {
		case "JPEG":
			got = fmt.Sprint(l.comps, l.h[:3], l.v[:3], l.progressive, l.rgb)
		case "GIF", "PNG":
			got = map[bool]string{true: "interlaced"}[l.interlaced] + map[bool]string{true: "transparent"}[l.transparent]
		case "WebP":
			got = fmt.Sprint(map[bool]string{true: "alpha"}[l.alpha], " ", map[bool]string{true: "lossless"}[l.alphaLossless && l.alphaVP8L > 0])
		case "TIFF":
			got = fmt.Sprintf("%dx%d %s", l.blockW, l.blockH, map[bool]string{true: "compressed"}[l.compressed])
		}
		if got != tt.want {
			t.Errorf("%s: layout %q, want %q", tt.file, got, tt.want)
		}
	}
}

func isPalette(cm color.Model) bool { _, ok := cm.(color.Palette); return ok }
