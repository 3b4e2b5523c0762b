package preprocess

import (
	"image"
	"image/color"
	"math/bits"
)

// rowReader writes n pixels of row y, from column x0 (absolute image
// coordinates), into dst as opaque 16-bit R, G, B triples (0..65535, so an
// 8-bit value v arrives as v*257), composited over white. len(dst) >= 3*n.
type rowReader func(dst []uint16, x0, y, n int)

// Compositing over white: a premultiplied colour c with alpha a (16-bit) over
// white is c + (65535 - a); a non-premultiplied one is (c*a + 65535*(65535-a)) / 65535.

// newRowReader returns the reader for img's pixel model. The concrete types
// the decoders produce have direct paths over their Pix slices; anything else
// goes through RGBA64At or At, which is exact but slower.
func newRowReader(img image.Image) rowReader {
	switch m := img.(type) {
	case *image.YCbCr:
		// Chroma sample of (x, y): (x/hd - Min.X/hd, y/vd - Min.Y/vd), as YCbCr.COffset computes it.
		hd, vd := chromaDivisors(m.SubsampleRatio)
		hs := bits.TrailingZeros(uint(hd)) // hd is 1, 2 or 4
		return func(dst []uint16, x0, y, n int) {
			yrow := m.Y[m.YOffset(x0, y):]
			crow := (y/vd - m.Rect.Min.Y/vd) * m.CStride
			cb, cr := m.Cb[crow:], m.Cr[crow:]
			base := m.Rect.Min.X / hd
			for i := 0; i < n; i++ {
				var ci int
				if x := x0 + i; x >= 0 {
					ci = x>>hs - base // x >= 0: the shift equals the division, and is cheaper
				} else {
					ci = x/hd - base
				}
				// The same fixed-point conversion as libjpeg's (JFIF, BT.601 full range), 8-bit out.
				r, g, b := color.YCbCrToRGB(yrow[i], cb[ci], cr[ci])
				dst[3*i], dst[3*i+1], dst[3*i+2] = uint16(r)*257, uint16(g)*257, uint16(b)*257
			}
		}
	case *image.NYCbCrA:
		return func(dst []uint16, x0, y, n int) {
			for i := 0; i < n; i++ {
				yi, ci := m.YOffset(x0+i, y), m.COffset(x0+i, y)
				r, g, b := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				a := uint32(m.A[m.AOffset(x0+i, y)])
				dst[3*i], dst[3*i+1], dst[3*i+2] = over8(uint32(r), a), over8(uint32(g), a), over8(uint32(b), a)
			}
		}
	case *image.Gray:
		return func(dst []uint16, x0, y, n int) {
			p := m.Pix[m.PixOffset(x0, y):]
			for i := 0; i < n; i++ {
				v := uint16(p[i]) * 257
				dst[3*i], dst[3*i+1], dst[3*i+2] = v, v, v
			}
		}
	case *image.Gray16:
		return func(dst []uint16, x0, y, n int) {
			p := m.Pix[m.PixOffset(x0, y):]
			for i := 0; i < n; i++ {
				v := uint16(p[2*i])<<8 | uint16(p[2*i+1])
				dst[3*i], dst[3*i+1], dst[3*i+2] = v, v, v
			}
		}
	case *image.RGBA:
		return func(dst []uint16, x0, y, n int) {
			p := m.Pix[m.PixOffset(x0, y):]
			for i := 0; i < n; i++ {
				q := p[4*i : 4*i+4 : 4*i+4]
				w := 255 - uint16(q[3]) // premultiplied: c + (255 - a)
				dst[3*i], dst[3*i+1], dst[3*i+2] = (uint16(q[0])+w)*257, (uint16(q[1])+w)*257, (uint16(q[2])+w)*257
			}
		}
	case *image.NRGBA:
		return func(dst []uint16, x0, y, n int) {
			p := m.Pix[m.PixOffset(x0, y):]
			for i := 0; i < n; i++ {
				q := p[4*i : 4*i+4 : 4*i+4]
				a := uint32(q[3])
				dst[3*i], dst[3*i+1], dst[3*i+2] = over8(uint32(q[0]), a), over8(uint32(q[1]), a), over8(uint32(q[2]), a)
			}
		}
	case *image.RGBA64:
		return func(dst []uint16, x0, y, n int) {
			p := m.Pix[m.PixOffset(x0, y):]
			for i := 0; i < n; i++ {
				q := p[8*i : 8*i+8 : 8*i+8]
				w := 65535 - (uint32(q[6])<<8 | uint32(q[7]))
				for c := 0; c < 3; c++ {
					dst[3*i+c] = uint16(min((uint32(q[2*c])<<8|uint32(q[2*c+1]))+w, 65535))
				}
			}
		}
	case *image.NRGBA64:
		return func(dst []uint16, x0, y, n int) {
			p := m.Pix[m.PixOffset(x0, y):]
			for i := 0; i < n; i++ {
				q := p[8*i : 8*i+8 : 8*i+8]
				a := uint64(q[6])<<8 | uint64(q[7])
				for c := 0; c < 3; c++ {
					v := uint64(q[2*c])<<8 | uint64(q[2*c+1])
					dst[3*i+c] = uint16((v*a + 65535*(65535-a) + 32767) / 65535)
				}
			}
		}
	case *image.CMYK:
		return func(dst []uint16, x0, y, n int) {
			p := m.Pix[m.PixOffset(x0, y):]
			for i := 0; i < n; i++ {
				q := p[4*i : 4*i+4 : 4*i+4]
				k := 255 - uint32(q[3])
				for c := 0; c < 3; c++ {
					dst[3*i+c] = cmykChannel(uint32(q[c]), k)
				}
			}
		}
	case *image.Paletted:
		// One table lookup per pixel; indices past the palette are transparent (white).
		var lut [256][3]uint16
		for i := range lut {
			lut[i] = [3]uint16{65535, 65535, 65535}
			if i < len(m.Palette) {
				r, g, b, a := m.Palette[i].RGBA()
				w := 65535 - a
				lut[i] = [3]uint16{uint16(min(r+w, 65535)), uint16(min(g+w, 65535)), uint16(min(b+w, 65535))}
			}
		}
		return func(dst []uint16, x0, y, n int) {
			p := m.Pix[m.PixOffset(x0, y):]
			for i := 0; i < n; i++ {
				e := &lut[p[i]]
				dst[3*i], dst[3*i+1], dst[3*i+2] = e[0], e[1], e[2]
			}
		}
	case image.RGBA64Image:
		return func(dst []uint16, x0, y, n int) {
			for i := 0; i < n; i++ {
				c := m.RGBA64At(x0+i, y)
				w := 65535 - uint32(c.A)
				dst[3*i] = uint16(min(uint32(c.R)+w, 65535))
				dst[3*i+1] = uint16(min(uint32(c.G)+w, 65535))
				dst[3*i+2] = uint16(min(uint32(c.B)+w, 65535))
			}
		}
	}
	return func(dst []uint16, x0, y, n int) {
		for i := 0; i < n; i++ {
			r, g, b, a := img.At(x0+i, y).RGBA()
			w := 65535 - a
			dst[3*i], dst[3*i+1], dst[3*i+2] = uint16(min(r+w, 65535)), uint16(min(g+w, 65535)), uint16(min(b+w, 65535))
		}
	}
}

// chromaDivisors returns the horizontal and vertical chroma subsampling
// factors of a YCbCr subsample ratio.
func chromaDivisors(r image.YCbCrSubsampleRatio) (h, v int) {
	switch r {
	case image.YCbCrSubsampleRatio422:
		return 2, 1
	case image.YCbCrSubsampleRatio420:
		return 2, 2
	case image.YCbCrSubsampleRatio440:
		return 1, 2
	case image.YCbCrSubsampleRatio411:
		return 4, 1
	case image.YCbCrSubsampleRatio410:
		return 4, 2
	}
	return 1, 1
}

// over8 composites the non-premultiplied 8-bit channel c with alpha a over
// white and returns it as 16-bit, rounded to nearest:
// (c*a + 255*(255-a)) / 255 in 8-bit units, times 257.
func over8(c, a uint32) uint16 {
	return uint16(((c*a+255*(255-a))*257 + 127) / 255)
}

// cmykChannel converts one ink channel of an 8-bit CMYK pixel to 16-bit RGB:
// R = 255 * (1 - C/255) * (1 - K/255), i.e. (255-C)*(255-K)/255 in 8-bit units
// (the naive device-independent conversion image/color uses too; image/jpeg has
// already undone Adobe's inverted CMYK/YCCK storage). kInv is 255-K.
func cmykChannel(c, kInv uint32) uint16 {
	return uint16(((255-c)*kInv*257 + 127) / 255)
}
