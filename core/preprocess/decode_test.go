package preprocess

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestDecodeFormats decodes each format from bytes written by that format's
// encoder and checks the size and the four quadrant colours of the image.
func TestDecodeFormats(t *testing.T) {
	const w, h = 64, 32 // quadrants of 32x16: whole JPEG 16x16 MCUs
	src := quadrants(w, h)
	pal := image.NewPaletted(src.Bounds(), color.Palette{
		color.NRGBA{255, 0, 0, 255}, color.NRGBA{0, 255, 0, 255}, color.NRGBA{0, 0, 255, 255}, color.NRGBA{255, 255, 255, 255},
	})
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			pal.Set(x, y, src.At(x, y))
		}
	}
	tests := []struct {
		format string
		data   []byte
		tol    float32 // per channel, on 0..255
	}{
		{"PNG", encodePNG(t, src), 0},
		{"GIF", encodeGIF(t, pal), 0},
		{"BMP", encodeBMP(t, src), 0},
		{"TIFF", encodeTIFF(t, src), 0},
		// Quality 100 on flat, MCU-aligned blocks: only the YCbCr round trip and
		// ringing at the quadrant edges remain; the sampled centers are within a few levels.
		{"JPEG", encodeJPEG(t, src, 100), 4},
	}
	want := map[[2]int][3]float32{ // quadrant centers
		{w / 4, h / 4}: {255, 0, 0}, {3 * w / 4, h / 4}: {0, 255, 0},
		{w / 4, 3 * h / 4}: {0, 0, 255}, {3 * w / 4, 3 * h / 4}: {255, 255, 255},
	}
	for _, tc := range tests {
		t.Run(tc.format, func(t *testing.T) {
			if got := Sniff(tc.data); got != tc.format {
				t.Fatalf("Sniff = %q, want %q", got, tc.format)
			}
			img, err := Decode(tc.data, 0)
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
				t.Fatalf("bounds %v, want %dx%d", b, w, h)
			}
			s := rgbSpec(w, h)
			out := runCrops(t, img, s, 1)[0]
			for p, rgb := range want {
				got := pixel(out, s, p[0], p[1])
				for c := range 3 {
					if abs32(got[c]-rgb[c]) > tc.tol {
						t.Errorf("pixel %v = %v, want %v (tolerance %v)", p, got, rgb, tc.tol)
						break
					}
				}
			}
		})
	}
}

// TestDecodeWebP checks WebP (there is no Go encoder) against the reference
// PNGs shipped with golang.org/x/image: the lossless files must decode to the
// same pixels exactly, transparency composited over white on both sides.
func TestDecodeWebP(t *testing.T) {
	for _, name := range []string{"gopher-doc.8bpp", "gopher-doc.with-alpha"} {
		t.Run(name, func(t *testing.T) {
			webpData, pngData := readTestdata(t, name+".lossless.webp"), readTestdata(t, name+".png")
			if f := Sniff(webpData); f != "WebP" {
				t.Fatalf("Sniff = %q", f)
			}
			wi, err := Decode(webpData, 0)
			if err != nil {
				t.Fatal(err)
			}
			pi, err := Decode(pngData, 0)
			if err != nil {
				t.Fatal(err)
			}
			if wi.Bounds() != pi.Bounds() {
				t.Fatalf("bounds %v vs %v", wi.Bounds(), pi.Bounds())
			}
			s := rgbSpec(wi.Bounds().Dx(), wi.Bounds().Dy())
			a, b := runCrops(t, wi, s, 1)[0], runCrops(t, pi, s, 1)[0]
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("value %d: WebP %v, PNG %v", i, a[i], b[i])
				}
			}
		})
	}
	t.Run("lossy", func(t *testing.T) {
		// The same video frame as video-001.jpeg, lossily compressed twice: the
		// mean absolute difference stays within a few levels.
		wi, err := Decode(readTestdata(t, "video-001.lossy.webp"), 0)
		if err != nil {
			t.Fatal(err)
		}
		ji, err := Decode(readTestdata(t, "video-001.jpeg"), 0)
		if err != nil {
			t.Fatal(err)
		}
		if wi.Bounds() != image.Rect(0, 0, 150, 103) || ji.Bounds() != wi.Bounds() {
			t.Fatalf("bounds %v, %v", wi.Bounds(), ji.Bounds())
		}
		// 3.2 KB against 21 KB: the WebP lost much detail, so the per-pixel
		// bound is loose; the colours must still agree on average.
		if d := meanAbsDiff(t, wi, ji); d > 15 {
			t.Errorf("mean |WebP - JPEG| = %.2f levels, want <= 15", d)
		}
		if d := meanAbsDiff(t, wi, image.NewGray16(wi.Bounds())); d < 50 {
			t.Errorf("mean |WebP - black| = %.2f levels: the frame did not decode", d)
		}
	})
}

// TestDecodeCMYKJPEG decodes an Adobe CMYK JPEG and compares it with the RGB
// rendering Go's image/jpeg tests use as reference, with the same tolerance
// of 8 levels per channel (image/decode_test.go).
func TestDecodeCMYKJPEG(t *testing.T) {
	ci, err := Decode(readTestdata(t, "video-001.cmyk.jpeg"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ci.(*image.CMYK); !ok {
		t.Fatalf("decoded as %T, want *image.CMYK", ci)
	}
	ri, err := Decode(readTestdata(t, "video-001.cmyk.png"), 0)
	if err != nil {
		t.Fatal(err)
	}
	s := rgbSpec(150, 103)
	a, b := runCrops(t, ci, s, 1)[0], runCrops(t, ri, s, 1)[0]
	var worst float32
	for i := range a {
		worst = max(worst, abs32(a[i]-b[i]))
	}
	if worst > 8 {
		t.Errorf("max |CMYK JPEG - reference PNG| = %v levels, want <= 8", worst)
	}
}

func meanAbsDiff(t *testing.T, a, b image.Image) float64 {
	s := rgbSpec(a.Bounds().Dx(), a.Bounds().Dy())
	x, y := runCrops(t, a, s, 1)[0], runCrops(t, b, s, 1)[0]
	var sum float64
	for i := range x {
		sum += float64(abs32(x[i] - y[i]))
	}
	return sum / float64(len(x))
}

// pngHeaderOnly returns a PNG signature and an IHDR chunk (with a correct CRC)
// declaring w x h RGBA pixels, and no image data.
func pngHeaderOnly(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := make([]byte, 0, 17)
	chunk = append(chunk, "IHDR"...)
	chunk = binary.BigEndian.AppendUint32(chunk, w)
	chunk = binary.BigEndian.AppendUint32(chunk, h)
	chunk = append(chunk, 8, 6, 0, 0, 0) // bit depth, colour type RGBA, compression, filter, interlace
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func TestDecodeErrors(t *testing.T) {
	jpegData := encodeJPEG(t, randomNRGBA(64, 64, 1), 90)
	pngData := encodePNG(t, randomNRGBA(64, 64, 2))
	g := lcg(3)
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(g.next())
	}
	tests := []struct {
		name      string
		data      []byte
		maxPixels int
		kind      error
		msg       []string // substrings of the message
	}{
		{"empty", nil, 0, ErrEmpty, []string{"empty image"}},
		{"random bytes", random, 0, ErrUnsupported, []string{"supported formats: JPEG, PNG, GIF, WebP, BMP, TIFF"}},
		{"RIFF but not WebP", []byte("RIFF\x10\x00\x00\x00WAVEfmt "), 0, ErrUnsupported, []string{"supported formats"}},
		{"truncated JPEG", jpegData[:len(jpegData)/2], 0, ErrCorrupt, []string{"corrupt JPEG", "truncated"}},
		{"JPEG header only", jpegData[:2], 0, ErrUnsupported, nil}, // FF D8 alone is not even a JPEG signature
		{"JPEG cut in the header", jpegData[:20], 0, ErrCorrupt, []string{"corrupt JPEG", "header"}},
		{"truncated PNG", pngData[:len(pngData)-40], 0, ErrCorrupt, []string{"corrupt PNG", "truncated"}},
		{"PNG header 100000x100000", pngHeaderOnly(100000, 100000), 0, ErrTooLarge, []string{"100000x100000", "limit of 67108864 pixels"}},
		{"PNG over a caller limit", pngData, 64*64 - 1, ErrTooLarge, []string{"64x64", "limit of 4095 pixels"}},
		{"PNG zero width", pngHeaderOnly(0, 10), 0, ErrCorrupt, []string{"corrupt PNG"}},
		{"GIF garbage", []byte("GIF89a\x01"), 0, ErrCorrupt, []string{"corrupt GIF"}},
		{"BMP garbage", []byte("BM\x00\x00\x00"), 0, ErrCorrupt, []string{"corrupt BMP"}},
		{"TIFF garbage", []byte("II*\x00\xff\xff\xff\x7f"), 0, ErrCorrupt, []string{"corrupt TIFF"}},
		{"WebP garbage", []byte("RIFF\x04\x00\x00\x00WEBPVP8 "), 0, ErrCorrupt, []string{"corrupt WebP"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img, err := Decode(tc.data, tc.maxPixels)
			if err == nil {
				t.Fatalf("Decode succeeded (%v), want an error", img.Bounds())
			}
			var ie *ImageError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v is not an *ImageError", err, err)
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("error %q: kind %v, want %v", err, ie.Kind, tc.kind)
			}
			for _, m := range tc.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not contain %q", err, m)
				}
			}
		})
	}
}

// TestDecodeRefusesBeforeAllocating: a 33-byte PNG claiming 10^10 pixels must
// be refused from its header, quickly and without allocating pixel memory.
func TestDecodeRefusesBeforeAllocating(t *testing.T) {
	data := pngHeaderOnly(100000, 100000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := Decode(data, 0)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("allocated %d bytes refusing the image, want < 1 MiB", got)
	}
	if elapsed > 100*time.Millisecond {
		t.Errorf("took %v, want < 100ms", elapsed)
	}
}

// TestDecodeRecoversPanics: protect turns a decoder panic into an error.
func TestDecodeRecoversPanics(t *testing.T) {
	_, err := protect(func() (image.Image, error) { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "decoder panicked: boom") {
		t.Fatalf("err = %v", err)
	}
	e := decoderError("TIFF", "cannot decode the pixels", err)
	if !errors.Is(e, ErrCorrupt) || !strings.Contains(e.Error(), "corrupt TIFF") {
		t.Fatalf("decoderError = %v", e)
	}
}

// TestDecodeGIFFrameOnScreen: a first frame smaller than the logical screen
// is placed at its offset on a transparent (hence white) screen.
func TestDecodeGIFFrameOnScreen(t *testing.T) {
	pal := color.Palette{color.NRGBA{0, 0, 0, 255}, color.NRGBA{200, 10, 20, 255}}
	frame := image.NewPaletted(image.Rect(2, 1, 6, 4), pal)
	for i := range frame.Pix {
		frame.Pix[i] = 1
	}
	var b bytes.Buffer
	err := gif.EncodeAll(&b, &gif.GIF{
		Image: []*image.Paletted{frame}, Delay: []int{0},
		Config: image.Config{ColorModel: pal, Width: 8, Height: 6},
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := Decode(b.Bytes(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds() != image.Rect(0, 0, 8, 6) {
		t.Fatalf("bounds %v, want the 8x6 screen", img.Bounds())
	}
	s := rgbSpec(8, 6)
	out := runCrops(t, img, s, 1)[0]
	for y := 0; y < 6; y++ {
		for x := 0; x < 8; x++ {
			want := []float32{255, 255, 255}
			if (image.Point{x, y}).In(frame.Rect) {
				want = []float32{200, 10, 20}
			}
			if got := pixel(out, s, x, y); got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
				t.Fatalf("(%d,%d) = %v, want %v", x, y, got, want)
			}
		}
	}
}
