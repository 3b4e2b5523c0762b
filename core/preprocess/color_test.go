package preprocess

import (
	"image"
	"image/color"
	"testing"
)

// onePixel wraps a color model's 1x1 image construction.
func onePixel[T image.Image](m T, set func(T)) image.Image { set(m); return m }

// TestColorConversions: one pixel of every pixel model through Crops (a 1x1
// image is used as is), against values worked out by hand from the formulas
// in doc.go. Tolerance: half a 16-bit step (0.5/257) where 16-bit rounding
// happens, otherwise exact.
func TestColorConversions(t *testing.T) {
	r1 := image.Rect(0, 0, 1, 1)
	const q = 0.5 / 257
	tests := []struct {
		name string
		img  image.Image
		want [3]float32 // R, G, B on 0..255
		tol  float32
	}{
		{"Gray", onePixel(image.NewGray(r1), func(m *image.Gray) { m.Pix[0] = 100 }), [3]float32{100, 100, 100}, 0},
		{"Gray16", onePixel(image.NewGray16(r1), func(m *image.Gray16) { m.SetGray16(0, 0, color.Gray16{0x1234}) }),
			[3]float32{4660.0 / 257, 4660.0 / 257, 4660.0 / 257}, 1e-4},
		// Premultiplied (100, 50, 0) at alpha 128 over white adds 255-128 = 127.
		{"RGBA half transparent", onePixel(image.NewRGBA(r1), func(m *image.RGBA) { m.SetRGBA(0, 0, color.RGBA{100, 50, 0, 128}) }),
			[3]float32{227, 177, 127}, 0},
		{"RGBA opaque", onePixel(image.NewRGBA(r1), func(m *image.RGBA) { m.SetRGBA(0, 0, color.RGBA{1, 2, 3, 255}) }),
			[3]float32{1, 2, 3}, 0},
		// Non-premultiplied: c*a/255 + 255 - a.
		{"NRGBA half transparent", onePixel(image.NewNRGBA(r1), func(m *image.NRGBA) { m.SetNRGBA(0, 0, color.NRGBA{200, 100, 0, 128}) }),
			[3]float32{200*128/255.0 + 127, 100*128/255.0 + 127, 127}, q},
		{"NRGBA transparent", onePixel(image.NewNRGBA(r1), func(m *image.NRGBA) { m.SetNRGBA(0, 0, color.NRGBA{0, 0, 0, 0}) }),
			[3]float32{255, 255, 255}, 0},
		{"RGBA64", onePixel(image.NewRGBA64(r1), func(m *image.RGBA64) { m.SetRGBA64(0, 0, color.RGBA64{0x8000, 0x4000, 0, 0xC000}) }),
			[3]float32{(0x8000 + 0x3FFF) / 257.0, (0x4000 + 0x3FFF) / 257.0, 0x3FFF / 257.0}, 1e-4},
		{"NRGBA64", onePixel(image.NewNRGBA64(r1), func(m *image.NRGBA64) { m.SetNRGBA64(0, 0, color.NRGBA64{0xFFFF, 0x1000, 0, 0x8000}) }),
			[3]float32{255, (0x1000*0x8000/65535.0 + 0x7FFF) / 257, 0x7FFF / 257.0}, q},
		// (255-C)(255-K)/255: C=0 M=128 Y=255 K=0 -> (255, 127, 0); K=51 scales by 204/255.
		{"CMYK no black", onePixel(image.NewCMYK(r1), func(m *image.CMYK) { m.SetCMYK(0, 0, color.CMYK{0, 128, 255, 0}) }),
			[3]float32{255, 127, 0}, 0},
		{"CMYK with black", onePixel(image.NewCMYK(r1), func(m *image.CMYK) { m.SetCMYK(0, 0, color.CMYK{0, 128, 255, 51}) }),
			[3]float32{204, 127 * 204 / 255.0, 0}, q},
		{"Paletted opaque", onePixel(image.NewPaletted(r1, color.Palette{color.NRGBA{255, 0, 0, 0}, color.NRGBA{10, 20, 30, 255}}),
			func(m *image.Paletted) { m.Pix[0] = 1 }), [3]float32{10, 20, 30}, 0},
		{"Paletted transparent", onePixel(image.NewPaletted(r1, color.Palette{color.NRGBA{255, 0, 0, 0}, color.NRGBA{10, 20, 30, 255}}),
			func(m *image.Paletted) { m.Pix[0] = 0 }), [3]float32{255, 255, 255}, 0},
		{"Paletted half transparent", onePixel(image.NewPaletted(r1, color.Palette{color.NRGBA{0, 0, 0, 0x80}}),
			func(m *image.Paletted) { m.Pix[0] = 0 }), [3]float32{0x7F7F / 257.0, 0x7F7F / 257.0, 0x7F7F / 257.0}, 0},
		{"Paletted index past palette", onePixel(image.NewPaletted(r1, color.Palette{color.Black}),
			func(m *image.Paletted) { m.Pix[0] = 7 }), [3]float32{255, 255, 255}, 0},
		// YCbCr: the JFIF conversion, reference values from color.YCbCrToRGB.
		{"YCbCr gray", onePixel(image.NewYCbCr(r1, image.YCbCrSubsampleRatio420), func(m *image.YCbCr) { m.Y[0], m.Cb[0], m.Cr[0] = 77, 128, 128 }),
			[3]float32{77, 77, 77}, 0},
		{"YCbCr color", onePixel(image.NewYCbCr(r1, image.YCbCrSubsampleRatio444), func(m *image.YCbCr) { m.Y[0], m.Cb[0], m.Cr[0] = 81, 90, 240 }),
			ycc(81, 90, 240), 0},
		{"NYCbCrA half transparent", onePixel(image.NewNYCbCrA(r1, image.YCbCrSubsampleRatio444), func(m *image.NYCbCrA) { m.Y[0], m.Cb[0], m.Cr[0], m.A[0] = 255, 128, 128, 0 }),
			[3]float32{255, 255, 255}, 0},
		{"NYCbCrA opaque", onePixel(image.NewNYCbCrA(r1, image.YCbCrSubsampleRatio444), func(m *image.NYCbCrA) { m.Y[0], m.Cb[0], m.Cr[0], m.A[0] = 81, 90, 240, 255 }),
			ycc(81, 90, 240), 0},
		// Alpha is white at that alpha (premultiplied): over white, white. Generic path.
		{"Alpha", onePixel(image.NewAlpha(r1), func(m *image.Alpha) { m.Pix[0] = 40 }), [3]float32{255, 255, 255}, 0},
		{"Uniform-like generic", subImage{onePixel(image.NewRGBA(r1), func(m *image.RGBA) { m.SetRGBA(0, 0, color.RGBA{0, 0, 0, 255}) })},
			[3]float32{0, 0, 0}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := rgbSpec(1, 1)
			got := runCrops(t, tc.img, s, 1)[0]
			for c := range 3 {
				if abs32(got[c]-tc.want[c]) > tc.tol {
					t.Fatalf("RGB = %v, want %v (tolerance %v)", got, tc.want, tc.tol)
				}
			}
			// The same pixel through BGR and GRAY.
			s.ChannelOrder = "BGR"
			bgr := runCrops(t, tc.img, s, 1)[0]
			if bgr[0] != got[2] || bgr[1] != got[1] || bgr[2] != got[0] {
				t.Fatalf("BGR = %v, RGB = %v", bgr, got)
			}
			s.Channels, s.ChannelOrder = 1, "GRAY"
			y := runCrops(t, tc.img, s, 1)[0][0]
			wantY := 0.299*float64(got[0]) + 0.587*float64(got[1]) + 0.114*float64(got[2])
			if d := float64(y) - wantY; d > 1e-4 || d < -1e-4 {
				t.Fatalf("GRAY = %v, want BT.601 luma %v", y, wantY)
			}
		})
	}
}

func ycc(y, cb, cr uint8) [3]float32 {
	r, g, b := color.YCbCrToRGB(y, cb, cr)
	return [3]float32{float32(r), float32(g), float32(b)}
}

// subImage hides the concrete type, forcing the generic At path.
type subImage struct{ image.Image }

// TestGrayStaysExact: gray input gives three equal channels for a colour
// model and its own value, exactly, for a gray model (the BT.601 weights sum
// to 1); a colour pixel gives the BT.601 luma.
func TestGrayStaysExact(t *testing.T) {
	m := image.NewGray(image.Rect(0, 0, 256, 1))
	for i := range m.Pix {
		m.Pix[i] = byte(i)
	}
	s := Spec{Channels: 1, Height: 1, Width: 256, ChannelOrder: "GRAY", Scale: 1}
	out := runCrops(t, m, s, 1)[0]
	for i, v := range out {
		if v != float32(i) {
			t.Fatalf("gray %d -> %v", i, v)
		}
	}
	s3 := rgbSpec(256, 1)
	out3 := runCrops(t, m, s3, 1)[0]
	for i := 0; i < 256; i++ {
		if out3[i] != float32(i) || out3[256+i] != float32(i) || out3[512+i] != float32(i) {
			t.Fatalf("gray %d -> %v %v %v", i, out3[i], out3[256+i], out3[512+i])
		}
	}
	red := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	red.Pix[0], red.Pix[3] = 255, 255
	s.Width = 1
	if got := runCrops(t, red, s, 1)[0][0]; abs32(got-76.245) > 1e-4 {
		t.Fatalf("pure red -> luma %v, want 0.299*255 = 76.245", got)
	}
}

// TestYCbCrSubsampling: the YCbCr row reader agrees with image.YCbCr's own
// accessors for every subsample ratio, on a rectangle not at the origin.
func TestYCbCrSubsampling(t *testing.T) {
	r := image.Rect(-3, 5, 14, 16)
	for _, ratio := range []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	} {
		m := image.NewYCbCr(r, ratio)
		g := lcg(uint64(ratio) + 1)
		for _, p := range [][]byte{m.Y, m.Cb, m.Cr} {
			for i := range p {
				p[i] = byte(g.next())
			}
		}
		read := newRowReader(m)
		row := make([]uint16, 3*r.Dx())
		for y := r.Min.Y; y < r.Max.Y; y++ {
			read(row, r.Min.X, y, r.Dx())
			for x := r.Min.X; x < r.Max.X; x++ {
				c := m.YCbCrAt(x, y)
				wr, wg, wb := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
				i := 3 * (x - r.Min.X)
				if row[i] != uint16(wr)*257 || row[i+1] != uint16(wg)*257 || row[i+2] != uint16(wb)*257 {
					t.Fatalf("%v (%d,%d): %v, want %d %d %d", ratio, x, y, row[i:i+3], wr, wg, wb)
				}
			}
		}
	}
}
