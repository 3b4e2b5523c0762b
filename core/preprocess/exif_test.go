package preprocess

import (
	"encoding/binary"
	"image"
	"testing"
)

// exifTIFF builds a TIFF-structured Exif block (without the "Exif\0\0"
// prefix) whose IFD0 holds a Make entry and then an Orientation entry of the
// given type and value.
func exifTIFF(bo byteOrder, typ uint16, value uint32) []byte {
	b := make([]byte, 0, 64)
	if bo == byteOrder(binary.LittleEndian) {
		b = append(b, "II"...)
	} else {
		b = append(b, "MM"...)
	}
	b = bo.AppendUint16(b, 42)
	b = bo.AppendUint32(b, 8) // IFD0 right after the header
	b = bo.AppendUint16(b, 2) // two entries
	// Make, ASCII, 4 bytes "Go\0\0" stored inline.
	b = bo.AppendUint16(b, 0x010F)
	b = bo.AppendUint16(b, 2)
	b = bo.AppendUint32(b, 4)
	b = append(b, 'G', 'o', 0, 0)
	// Orientation.
	b = bo.AppendUint16(b, tagOrientation)
	b = bo.AppendUint16(b, typ)
	b = bo.AppendUint32(b, 1)
	if typ == 3 {
		b = bo.AppendUint16(b, uint16(value))
		b = append(b, 0, 0)
	} else {
		b = bo.AppendUint32(b, value)
	}
	b = bo.AppendUint32(b, 0) // no next IFD
	return b
}

// byteOrder is what exifTIFF needs of encoding/binary's byte orders.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// withAPP1 inserts an APP1 segment holding payload right after the SOI marker.
func withAPP1(jpegData, payload []byte) []byte {
	out := append([]byte{}, jpegData[:2]...)
	out = append(out, 0xFF, markerAPP1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(payload)+2))
	out = append(out, payload...)
	return append(out, jpegData[2:]...)
}

func exifSegment(tiff []byte) []byte { return append([]byte("Exif\x00\x00"), tiff...) }

// TestExifOrientation encodes a 64x32 image with red, green, blue and white
// quadrants (top-left, top-right, bottom-left, bottom-right as stored), marks
// it with each orientation and checks where the colours are displayed. The
// expected places follow from the Exif definition of each value (which side
// row 0 and column 0 are on), written out by hand here.
func TestExifOrientation(t *testing.T) {
	const (
		TL = iota
		TR
		BL
		BR
	)
	colors := [4][3]float32{{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}}
	tests := []struct {
		o     int
		where [4]int // displayed place of the stored TL, TR, BL, BR quadrants
	}{
		{1, [4]int{TL, TR, BL, BR}},
		{2, [4]int{TR, TL, BR, BL}}, // row 0 top, column 0 right
		{3, [4]int{BR, BL, TR, TL}}, // row 0 bottom, column 0 right
		{4, [4]int{BL, BR, TL, TR}}, // row 0 bottom, column 0 left
		{5, [4]int{TL, BL, TR, BR}}, // row 0 left, column 0 top
		{6, [4]int{TR, BR, TL, BL}}, // row 0 right, column 0 top
		{7, [4]int{BR, TR, BL, TL}}, // row 0 right, column 0 bottom
		{8, [4]int{BL, TL, BR, TR}}, // row 0 left, column 0 bottom
	}
	base := encodeJPEG(t, quadrants(64, 32), 100)
	orders := []struct {
		name string
		bo   byteOrder
		typ  uint16
	}{{"II SHORT", binary.LittleEndian, 3}, {"MM SHORT", binary.BigEndian, 3}, {"MM LONG", binary.BigEndian, 4}}
	for _, ord := range orders {
		for _, tc := range tests {
			data := withAPP1(base, exifSegment(exifTIFF(ord.bo, ord.typ, uint32(tc.o))))
			if got := jpegOrientation(data); got != tc.o {
				t.Fatalf("%s: jpegOrientation = %d, want %d", ord.name, got, tc.o)
			}
			img, err := Decode(data, 0)
			if err != nil {
				t.Fatalf("%s orientation %d: %v", ord.name, tc.o, err)
			}
			w, h := 64, 32
			if tc.o >= 5 {
				w, h = 32, 64
			}
			if b := img.Bounds(); b != image.Rect(0, 0, w, h) {
				t.Fatalf("%s orientation %d: bounds %v, want %dx%d", ord.name, tc.o, b, w, h)
			}
			s := rgbSpec(w, h)
			out := runCrops(t, img, s, 1)[0]
			centers := [4][2]int{{w / 4, h / 4}, {3 * w / 4, h / 4}, {w / 4, 3 * h / 4}, {3 * w / 4, 3 * h / 4}}
			for q, place := range tc.where {
				got := pixel(out, s, centers[place][0], centers[place][1])
				for c := range 3 {
					if abs32(got[c]-colors[q][c]) > 4 {
						t.Errorf("%s orientation %d: stored quadrant %d should be at place %d, found %v there", ord.name, tc.o, q, place, got)
						break
					}
				}
			}
		}
	}
}

// TestOrientPixelModels: orient keeps Gray and CMYK, turns YCbCr into 4:4:4,
// and moves every pixel exactly (checked on a 3x2 image per model, orientation 6).
func TestOrientPixelModels(t *testing.T) {
	// Stored 3x2, values v(x,y) = 10*y + x + 1. Orientation 6 (rotate 90
	// clockwise) displays 2x3: displayed (dx, dy) shows stored (dy, 1-dx).
	want := [][]byte{{11, 1}, {12, 2}, {13, 3}}
	gray := image.NewGray(image.Rect(0, 0, 3, 2))
	cmyk := image.NewCMYK(image.Rect(0, 0, 3, 2))
	ycc := image.NewYCbCr(image.Rect(0, 0, 3, 2), image.YCbCrSubsampleRatio444)
	for y := 0; y < 2; y++ {
		for x := 0; x < 3; x++ {
			v := byte(10*y + x + 1)
			gray.Pix[y*gray.Stride+x] = v
			copy(cmyk.Pix[y*cmyk.Stride+4*x:], []byte{v, 0, 0, 0})
			ycc.Y[y*ycc.YStride+x], ycc.Cb[y*ycc.CStride+x], ycc.Cr[y*ycc.CStride+x] = v, 128, 128
		}
	}
	g := orient(gray, 6).(*image.Gray)
	c := orient(cmyk, 6).(*image.CMYK)
	yc := orient(ycc, 6).(*image.YCbCr)
	if yc.SubsampleRatio != image.YCbCrSubsampleRatio444 {
		t.Fatalf("ratio %v", yc.SubsampleRatio)
	}
	for dy := 0; dy < 3; dy++ {
		for dx := 0; dx < 2; dx++ {
			w := want[dy][dx]
			if got := g.GrayAt(dx, dy).Y; got != w {
				t.Errorf("Gray (%d,%d) = %d, want %d", dx, dy, got, w)
			}
			if got := c.CMYKAt(dx, dy).C; got != w {
				t.Errorf("CMYK (%d,%d) = %d, want %d", dx, dy, got, w)
			}
			if got := yc.YCbCrAt(dx, dy).Y; got != w {
				t.Errorf("YCbCr (%d,%d) = %d, want %d", dx, dy, got, w)
			}
		}
	}
	// Orientation 1 (and invalid values) return the image itself.
	if orient(gray, 1) != image.Image(gray) || orient(gray, 9) != image.Image(gray) {
		t.Error("orient changed an image that needs no change")
	}
}

// TestExifOrientationParse covers malformed Exif blocks: each must give
// ok=false (so the image is shown as stored), never a panic or a bad read.
func TestExifOrientationParse(t *testing.T) {
	le := binary.LittleEndian
	good := exifTIFF(le, 3, 6)
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, good...)) }
	tests := []struct {
		name string
		tiff []byte
		want int // 0: not ok
	}{
		{"valid II", good, 6},
		{"valid MM", exifTIFF(binary.BigEndian, 3, 8), 8},
		{"LONG value", exifTIFF(le, 4, 3), 3},
		{"empty", nil, 0},
		{"short header", good[:7], 0},
		{"bad byte order", mutate(func(b []byte) []byte { b[0] = 'X'; return b }), 0},
		{"bad magic", mutate(func(b []byte) []byte { b[2] = 43; return b }), 0},
		{"IFD offset past end", mutate(func(b []byte) []byte { le.PutUint32(b[4:], 1<<31); return b }), 0},
		{"IFD offset 0xFFFFFFFF", mutate(func(b []byte) []byte { le.PutUint32(b[4:], 0xFFFFFFFF); return b }), 0},
		{"IFD offset inside header", mutate(func(b []byte) []byte { le.PutUint32(b[4:], 2); return b }), 0},
		{"entry count too large", mutate(func(b []byte) []byte { le.PutUint16(b[8:], 0xFFFF); return b }), 6}, // found before running out
		{"entry cut off", good[:len(good)-10], 0},
		{"count 0", mutate(func(b []byte) []byte { le.PutUint16(b[8:], 0); return b }), 0},
		{"tag absent", mutate(func(b []byte) []byte { le.PutUint16(b[8:], 1); return b }), 0},
		{"value 0", exifTIFF(le, 3, 0), 0},
		{"value 9", exifTIFF(le, 3, 9), 0},
		{"ASCII type", exifTIFF(le, 2, 6), 0},
		{"count 2", mutate(func(b []byte) []byte { le.PutUint32(b[10+12+4:], 2); return b }), 0},
	}
	for _, tc := range tests {
		o, ok := exifOrientation(tc.tiff)
		if (tc.want == 0) == ok || (ok && o != tc.want) {
			t.Errorf("%s: got (%d, %v), want %d", tc.name, o, ok, tc.want)
		}
	}
}

// TestJPEGOrientationWalk: the marker walk finds the Exif segment after other
// segments and fill bytes, and stops cleanly on broken lengths.
func TestJPEGOrientationWalk(t *testing.T) {
	seg := exifSegment(exifTIFF(binary.LittleEndian, 3, 6))
	app1 := binary.BigEndian.AppendUint16([]byte{0xFF, markerAPP1}, uint16(len(seg)+2))
	app1 = append(app1, seg...)
	app0 := []byte{0xFF, 0xE0, 0x00, 0x07, 'J', 'F', 'I', 'F', 0}
	xmp := append([]byte{0xFF, markerAPP1, 0x00, 0x0B}, "http://ns"...) // APP1 that is not Exif
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	soi := []byte{0xFF, markerSOI}
	sos := []byte{0xFF, markerSOS, 0x00, 0x02}
	tests := []struct {
		name string
		data []byte
		want int
	}{
		{"after APP0 and XMP", cat(soi, app0, xmp, app1, sos), 6},
		{"fill bytes", cat(soi, []byte{0xFF, 0xFF, 0xFF}, app1[1:], sos), 6},
		{"standalone RST marker first", cat(soi, []byte{0xFF, 0xD3}, app1), 6},
		{"after SOS: ignored", cat(soi, sos, app1), 1},
		{"after EOI: ignored", cat(soi, []byte{0xFF, markerEOI}, app1), 1},
		{"segment length past end", cat(soi, []byte{0xFF, 0xE0, 0xFF, 0xFF, 0}), 1},
		{"segment length 1", cat(soi, []byte{0xFF, 0xE0, 0x00, 0x01}, app1), 1},
		{"garbage between segments", cat(soi, app0, []byte{0x12}, app1), 1},
		{"not a JPEG", cat([]byte{0x89, 'P'}, app1), 1},
		{"no segments", soi, 1},
		{"Exif cut short", cat(soi, app1[:len(app1)-5]), 1},
	}
	for _, tc := range tests {
		if got := jpegOrientation(tc.data); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}
