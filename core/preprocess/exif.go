package preprocess

import (
	"encoding/binary"
	"image"
	"image/color"
)

// JPEG markers used while looking for the Exif segment (ITU-T T.81 table B.1).
const (
	markerSOI  = 0xD8 // start of image
	markerEOI  = 0xD9 // end of image
	markerSOS  = 0xDA // start of scan: metadata segments come before it
	markerAPP1 = 0xE1 // application segment 1: Exif (and XMP)
	markerTEM  = 0x01 // standalone, no length
	markerRST0 = 0xD0 // RST0..RST7 are standalone
	markerRST7 = 0xD7
)

// tagOrientation is the Exif/TIFF Orientation tag (TIFF 6.0 section 8;
// Exif 2.3 section 4.6.4 A). Values 1..8; anything else means "normal".
const tagOrientation = 0x0112

// maxExifSegments caps how many marker segments jpegOrientation walks before
// giving up (real files have a handful; the cap bounds work on hostile input).
const maxExifSegments = 4096

// jpegOrientation returns the Exif orientation (1..8) of a JPEG stream, read
// from the first APP1 "Exif\0\0" segment before the first scan, or 1 when there
// is none or it cannot be parsed. It never reads outside data.
func jpegOrientation(data []byte) int {
	if len(data) < 4 || data[0] != 0xFF || data[1] != markerSOI {
		return 1
	}
	i := 2
	for seg := 0; seg < maxExifSegments; seg++ {
		// Markers may be preceded by any number of 0xFF fill bytes (T.81 B.1.1.2).
		if i >= len(data) || data[i] != 0xFF {
			return 1
		}
		for i < len(data) && data[i] == 0xFF {
			i++
		}
		if i >= len(data) {
			return 1
		}
		m := data[i]
		i++
		switch {
		case m == markerEOI || m == markerSOS:
			return 1
		case m == markerTEM || (m >= markerRST0 && m <= markerRST7):
			continue
		}
		if i+2 > len(data) {
			return 1
		}
		n := int(binary.BigEndian.Uint16(data[i:])) // includes the 2 length bytes
		if n < 2 || i+n > len(data) {
			return 1
		}
		payload := data[i+2 : i+n]
		i += n
		if m == markerAPP1 && len(payload) >= 6 && string(payload[:6]) == "Exif\x00\x00" {
			o, ok := exifOrientation(payload[6:])
			if !ok {
				return 1
			}
			return o
		}
	}
	return 1
}

// exifOrientation reads the Orientation tag from IFD0 of a TIFF-structured
// Exif block (the bytes after "Exif\0\0"): an 8-byte header ("II" little-endian
// or "MM" big-endian, the magic 42, the offset of IFD0), then IFD0: a 2-byte
// entry count and 12-byte entries (tag, type, count, value or offset). It
// reports ok=false when the block is malformed or has no valid orientation.
func exifOrientation(tiff []byte) (orientation int, ok bool) {
	if len(tiff) < 8 {
		return 0, false
	}
	var bo binary.ByteOrder
	switch string(tiff[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0, false
	}
	if bo.Uint16(tiff[2:]) != 42 {
		return 0, false
	}
	off := uint64(bo.Uint32(tiff[4:]))
	if off < 8 || off+2 > uint64(len(tiff)) {
		return 0, false
	}
	count := uint64(bo.Uint16(tiff[off:]))
	entries := off + 2
	for k := uint64(0); k < count; k++ {
		e := entries + 12*k
		if e+12 > uint64(len(tiff)) {
			return 0, false
		}
		if bo.Uint16(tiff[e:]) != tagOrientation {
			continue
		}
		typ, n := bo.Uint16(tiff[e+2:]), bo.Uint32(tiff[e+4:])
		if n != 1 {
			return 0, false
		}
		var v uint32
		switch typ {
		case 3: // SHORT, the type the standard prescribes; left-justified in the value field
			v = uint32(bo.Uint16(tiff[e+8:]))
		case 4: // LONG, written by a few tools
			v = bo.Uint32(tiff[e+8:])
		default:
			return 0, false
		}
		if v < 1 || v > 8 {
			return 0, false
		}
		return int(v), true
	}
	return 0, false
}

// orientedSize is the displayed size of a w x h stored image.
func orientedSize(o, w, h int) (int, int) {
	if o >= 5 {
		return h, w
	}
	return w, h
}

// sourceXY maps a displayed pixel (dx, dy) to the stored pixel it shows, for a
// stored image of w x h (relative coordinates). Orientation o says how the
// stored rows and columns are laid out (Exif 2.3, tag 0x0112):
//
//	1 row 0 = top,    col 0 = left      identity
//	2 row 0 = top,    col 0 = right     mirror horizontally
//	3 row 0 = bottom, col 0 = right     rotate 180
//	4 row 0 = bottom, col 0 = left      mirror vertically
//	5 row 0 = left,   col 0 = top       transpose
//	6 row 0 = right,  col 0 = top       rotate 90 clockwise to display
//	7 row 0 = right,  col 0 = bottom    transverse
//	8 row 0 = left,   col 0 = bottom    rotate 90 counter-clockwise to display
func sourceXY(o, w, h, dx, dy int) (sx, sy int) {
	switch o {
	case 2:
		return w - 1 - dx, dy
	case 3:
		return w - 1 - dx, h - 1 - dy
	case 4:
		return dx, h - 1 - dy
	case 5:
		return dy, dx
	case 6:
		return dy, h - 1 - dx
	case 7:
		return w - 1 - dy, h - 1 - dx
	case 8:
		return w - 1 - dy, dx
	}
	return dx, dy
}

// orient returns img as it should be displayed under Exif orientation o. The
// result keeps the pixel model where that is lossless: *image.Gray stays Gray,
// *image.CMYK stays CMYK, *image.YCbCr becomes a 4:4:4 YCbCr (each pixel keeps
// the chroma sample it had); anything else becomes *image.RGBA64.
func orient(img image.Image, o int) image.Image {
	if o <= 1 || o > 8 {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dw, dh := orientedSize(o, w, h)
	r := image.Rect(0, 0, dw, dh)
	switch src := img.(type) {
	case *image.Gray:
		dst := image.NewGray(r)
		for dy := 0; dy < dh; dy++ {
			row := dst.Pix[dy*dst.Stride : dy*dst.Stride+dw]
			for dx := range row {
				sx, sy := sourceXY(o, w, h, dx, dy)
				row[dx] = src.Pix[src.PixOffset(b.Min.X+sx, b.Min.Y+sy)]
			}
		}
		return dst
	case *image.CMYK:
		dst := image.NewCMYK(r)
		for dy := 0; dy < dh; dy++ {
			row := dst.Pix[dy*dst.Stride : dy*dst.Stride+4*dw]
			for dx := 0; dx < dw; dx++ {
				sx, sy := sourceXY(o, w, h, dx, dy)
				copy(row[4*dx:4*dx+4], src.Pix[src.PixOffset(b.Min.X+sx, b.Min.Y+sy):])
			}
		}
		return dst
	case *image.YCbCr:
		dst := image.NewYCbCr(r, image.YCbCrSubsampleRatio444)
		for dy := 0; dy < dh; dy++ {
			for dx := 0; dx < dw; dx++ {
				sx, sy := sourceXY(o, w, h, dx, dy)
				yi := src.YOffset(b.Min.X+sx, b.Min.Y+sy)
				ci := src.COffset(b.Min.X+sx, b.Min.Y+sy)
				di := dy*dst.YStride + dx
				dst.Y[di], dst.Cb[di], dst.Cr[di] = src.Y[yi], src.Cb[ci], src.Cr[ci]
			}
		}
		return dst
	}
	dst := image.NewRGBA64(r)
	src, direct := img.(image.RGBA64Image) // no color.Color boxed per pixel (image/jpeg's RGBA is one)
	for dy := 0; dy < dh; dy++ {
		for dx := 0; dx < dw; dx++ {
			sx, sy := sourceXY(o, w, h, dx, dy)
			if direct {
				dst.SetRGBA64(dx, dy, src.RGBA64At(b.Min.X+sx, b.Min.Y+sy))
				continue
			}
			cr, cg, cb, ca := img.At(b.Min.X+sx, b.Min.Y+sy).RGBA()
			dst.SetRGBA64(dx, dy, color.RGBA64{uint16(cr), uint16(cg), uint16(cb), uint16(ca)})
		}
	}
	return dst
}
