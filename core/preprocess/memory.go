package preprocess

import (
	"image"
	"image/color"
)

// Memory bounds the bytes Decode and Crops allocate for one image, garbage
// included, from its header alone; so it also bounds what they hold at any
// one moment. TestMemoryBoundsAllocations checks it against what the
// decoders and Crops allocate for images of every format and layout, and
// that it stays close to that where it is not a worst case.
type Memory struct {
	// Decode: the decoded image and the decoder's working memory (JPEG
	// coefficients of a progressive scan, PNG rows and the zlib window, the
	// WebP partitions and lossless Huffman tables, the TIFF strip buffer),
	// plus the copy Decode makes for an Exif orientation or to place a GIF
	// frame on its screen.
	Decode int64
	// Crops: Buffers.Crops with an empty Buffers: the row buffers, the
	// box-reduced copy, x/image/draw's resize temporary and weights, and the
	// resized image. (A zero Buffers used before may hold up to KeepLimit
	// more from an earlier small image.)
	Crops int64
	// Output: the n crop tensors (n * Channels * Height * Width float32),
	// which the caller provides.
	Output int64
}

// Total is Decode + Crops + Output.
func (m Memory) Total() int64 { return m.Decode + m.Crops + m.Output }

// decoderState bounds the fixed working memory of each decoder beyond what
// Memory counts per pixel: its state struct, Huffman or LZW tables, palettes
// (a color.Palette boxes each entry), the zlib window, buffered readers.
// Measured by TestMemoryBoundsAllocations on small images, where nothing
// else dominates (at most 23 KiB for JPEG, 50 KiB PNG, 23 KiB GIF, 12 KiB
// lossy WebP, 10 KiB BMP, 50 KiB TIFF), and doubled.
var decoderState = map[string]int64{
	"JPEG": 48 << 10,
	"PNG":  100 << 10,
	"GIF":  48 << 10,
	"WebP": 32 << 10,
	"BMP":  24 << 10,
	"TIFF": 100 << 10,
}

// Lossless WebP (x/image/vp8l) builds its Huffman tables from the bitstream
// and keeps them while it decodes the pixels: up to vp8lMaxGroups groups of
// five trees (x/image/vp8l refuses more, as libwebp's encoder never writes
// more), at most one kept group per 4x4 tile, though the trees of every
// group index up to the largest are read. A tree of an alphabet of n
// symbols reads its code lengths into 4n bytes; a kept one also holds up to
// 2n-1 nodes of 8 bytes and a 512-byte lookup table, and builds 4n bytes of
// codes. Each tree's code-length code takes under 512 bytes more. The
// alphabets are 256+24 literal and length codes plus up to 2^11
// colour-cache entries, 256 for each of red, blue and alpha, and 40
// distance codes. So a lossless WebP may allocate 38 MB for tables it
// reads, and 53 KB more per 4x4 tile up to 138 MB, whatever its pixels:
// only a file made for it comes near, but nothing in the header tells such
// a file apart.
const (
	vp8lMaxGroups  = 2600
	vp8lSymbols    = (256 + 24 + 1<<11) + 3*256 + 40
	vp8lReadBytes  = 4*vp8lSymbols + 5*512                       // a group's trees read (code lengths, code-length codes)
	vp8lGroupBytes = vp8lReadBytes + 20*vp8lSymbols + 5*(512+24) // a kept group: nodes, codes, lookup tables
)

// Memory bounds what decoding the image and cutting n crops (1 or 10) for s
// take; see the type's documentation. A Header made by hand gets the most
// memory-hungry layout of its Format, ColorModel and size.
func (h *Header) Memory(s Spec, n int) Memory {
	m := Memory{Decode: h.decodeBytes() + decoderState[h.Format]}
	m.Crops = cropsBytes(h.Width, h.Height, s)
	m.Output = int64(n) * int64(s.Channels*s.Height*s.Width) * 4
	return m
}

// storedSize is the size the decoder decodes: Width x Height before the
// Exif orientation.
func (h *Header) storedSize() (w, ht int64) {
	if h.Orientation >= 5 {
		return int64(h.Height), int64(h.Width)
	}
	return int64(h.Width), int64(h.Height)
}

func (h *Header) decodeBytes() int64 {
	w, ht := h.storedSize()
	px := w * ht
	l := h.layout
	switch h.Format {
	case "JPEG":
		return h.jpegBytes()
	case "PNG":
		if !l.known {
			l.interlaced, l.transparent, l.bitsPerPx = true, true, 64
		}
		img := px * int64(pngPixelBytes(h.ColorModel, l.transparent))
		rows := 2 * (1 + (int64(l.bitsPerPx)*w+7)/8) // the current and previous filtered row
		if l.interlaced {
			return 2*img + 7*rows // each Adam7 pass in its own image and rows, then merged into the whole
		}
		return img + rows
	case "GIF":
		screen := image.Rect(0, 0, int(w), int(ht))
		frame := l.frame
		if !l.known {
			frame, l.interlaced = screen.Inset(1), true
		}
		fpx := int64(frame.Dx()) * int64(frame.Dy())
		b := fpx // the paletted frame
		if l.interlaced {
			b += fpx // de-interlaced into a second buffer
		}
		if frame != screen {
			b += 4 * px // the NRGBA screen the frame is drawn on
		}
		return b
	case "WebP":
		if !l.known { // lossless, or lossy with lossless alpha: whichever takes more
			lossy := *h
			lossy.layout = layout{known: true, alpha: true, alphaLossless: true}
			if h.Bytes == 0 {
				lossy.Bytes = 1<<24 + 1<<19 // partitions of data not at hand: x/image/vp8 refuses more
			}
			return max(vp8lWorst(w, ht), lossy.decodeBytes())
		}
		if l.lossless {
			return l.vp8lOr(l.vp8l, w, ht)
		}
		mb := ((w + 15) / 16) * ((ht + 15) / 16)
		b := 384*mb + 4*mb + 8*((w+15)/16) // 4:2:0 YCbCr of whole macroblocks, per-macroblock filter parameters and contexts
		b += 1<<19 + h.Bytes               // the first partition (19-bit length) and the others, copied from the chunk
		if l.alpha {
			b += px // the alpha plane
			if l.alphaLossless {
				b += l.vp8lOr(l.alphaVP8L, w, ht)
			}
		}
		return b
	case "BMP":
		if _, ok := h.ColorModel.(color.Palette); ok {
			return px + 4*w + 4
		}
		return 4*px + 4*w + 4 // RGBA or NRGBA, and one row of the file
	case "TIFF":
		if !l.known {
			l.compressed, l.blockW, l.blockH = true, max(int(w)+16, 1024), max(int(ht)+16, 1024)
		}
		img := px * int64(colorModelBytes(h.ColorModel))
		bw, bh := int64(l.blockW), int64(l.blockH)
		blocks := ((w + bw - 1) / bw) * ((ht + bh - 1) / bh)
		area := blocks * bw * bh // the blocks' pixels, padding included
		if !l.compressed {
			// A fresh slice per block, of at most 8 bytes a pixel.
			return img + 8*area + blocks*1024
		}
		// Per block, a new decompressor (an LZW or zlib state, under 48 KiB)
		// inflating up to 8 bytes a pixel (x/image/tiff's RGBA64 limit):
		// into one bytes.Buffer reused across blocks that grows by doubling
		// (all it ever allocates is under 4 times its last size), or for
		// PackBits into a fresh slice per block that grows likewise.
		return img + blocks*(48<<10) + max(4*8*bw*bh, 2*8*area+blocks*1024)
	}
	return 8 * px
}

// jpegBytes bounds image/jpeg's allocations (the YCbCr or gray planes of
// whole MCUs, the K plane and the CMYK or RGBA image of a 4-component or RGB
// file, one [64]int32 block per 8x8 block of a progressive file) and the
// copy an Exif orientation makes.
func (h *Header) jpegBytes() int64 {
	w, ht := h.storedSize()
	l := h.layout
	if !l.known {
		l.comps, l.progressive = 3, true
		switch h.ColorModel {
		case color.GrayModel:
			l.comps = 1
		case color.CMYKModel:
			l.comps = 4
		default:
			l.rgb = true
		}
		l.h, l.v = [4]int{1, 1, 1, 1}, [4]int{1, 1, 1, 1}
	}
	if l.comps < 1 {
		return 0 // image/jpeg refuses a JPEG without a frame it decodes before allocating
	}
	maxH, maxV := 1, 1
	for c := range l.comps {
		maxH, maxV = max(maxH, l.h[c]), max(maxV, l.v[c])
	}
	mxx, myy := (w+8*int64(maxH)-1)/(8*int64(maxH)), (ht+8*int64(maxV)-1)/(8*int64(maxV))
	pw, ph := 8*int64(maxH)*mxx, 8*int64(maxV)*myy // the planes' size: whole MCUs
	var b int64
	switch l.comps {
	case 1:
		b = pw * ph
	default:
		b = pw*ph + 2*chromaPlane(l, maxH, maxV, pw, ph)
		if l.comps == 4 {
			b += 64 * int64(l.h[3]) * mxx * int64(l.v[3]) * myy // the K plane
			b += 4 * w * ht                                     // the CMYK image
		} else if l.rgb {
			b += 4 * w * ht // the RGBA image
		}
	}
	if l.progressive {
		for c := range l.comps {
			b += 256 * mxx * myy * int64(l.h[c]*l.v[c])
		}
	}
	if o := h.Orientation; o != 1 { // 0 (made by hand) counts as a rotated one
		switch {
		case l.comps == 1:
			b += w * ht // Gray
		case l.comps == 4:
			b += 4 * w * ht // CMYK
		case l.rgb:
			b += 8 * w * ht // RGBA64
		default:
			b += 3 * w * ht // YCbCr 4:4:4
		}
	}
	return b
}

// chromaPlane is the size of one chroma plane image/jpeg allocates for a
// pw x ph frame: subsampled by a standard ratio, or full size (its "flex"
// mode, for any other sampling).
func chromaPlane(l layout, maxH, maxV int, pw, ph int64) int64 {
	flex := l.h[1] != l.h[2] || l.v[1] != l.v[2] || maxH != l.h[0] || maxV != l.v[0]
	if !flex && l.h[1] > 0 && l.v[1] > 0 {
		hr, vr := int64(maxH/l.h[1]), int64(maxV/l.v[1])
		if (hr == 1 || hr == 2 || hr == 4) && (vr == 1 || vr == 2) {
			return ((pw + hr - 1) / hr) * ((ph + vr - 1) / vr)
		}
	}
	return pw * ph
}

// pngPixelBytes is the bytes per pixel of the image image/png decodes into
// for a colour model read from IHDR (tRNS turns gray and truecolour into
// NRGBA or NRGBA64).
func pngPixelBytes(cm color.Model, transparent bool) int {
	switch cm {
	case color.GrayModel:
		if transparent {
			return 4
		}
		return 1
	case color.Gray16Model:
		if transparent {
			return 8
		}
		return 2
	}
	return colorModelBytes(cm)
}

// colorModelBytes is the bytes per pixel of an image in colour model cm.
func colorModelBytes(cm color.Model) int {
	switch cm {
	case color.GrayModel, color.AlphaModel:
		return 1
	case color.Gray16Model, color.Alpha16Model:
		return 2
	case color.RGBAModel, color.NRGBAModel, color.CMYKModel:
		return 4
	}
	if _, ok := cm.(color.Palette); ok {
		return 1
	}
	return 8
}

// vp8lOr is what a walk of the VP8L stream found it allocates (bytes), plus
// the walk's own scratch (ReadHeader's part of Decode: the code lengths and
// symbols of one code at a time, the 8 KiB set of group indices); or, when
// the stream could not be walked, the worst case of a w x h image.
func (l layout) vp8lOr(bytes, w, h int64) int64 {
	if bytes > 0 {
		return bytes + 32<<10
	}
	return vp8lWorst(w, h)
}

// vp8lWorst bounds x/image/vp8l for any w x h image: the ARGB pixels, a
// second copy when a colour-indexing transform unpacks them, the transform
// and entropy sub-images (at most one pixel per 4x4 tile, each decoded with
// one Huffman group and a colour cache of its own), the image's Huffman
// groups and its colour cache.
func vp8lWorst(w, h int64) int64 {
	tiles := ((w + 3) / 4) * ((h + 3) / 4)
	const subImages = 4 // predictor, cross-colour, colour-indexing palette, entropy image
	kept := min(tiles, vp8lMaxGroups)
	return 2*4*w*h + subImages*4*tiles +
		(kept+subImages)*(vp8lGroupBytes+4<<11) + (vp8lMaxGroups-kept)*vp8lReadBytes + 2*vp8lMaxGroups
}

// cropsState bounds Crops' allocations that do not grow with the image:
// the row reader (a palette's lookup table of 1.5 KiB), the crop origins,
// the scaler and its weight slices' headers.
const cropsState = 16 << 10

// cropsBytes bounds Buffers.Crops on an empty Buffers for a w x h image
// (see Crops): the source row(s), the box sums, the box-reduced copy
// (RGBA64), and when that is not already the resized size, x/image/draw's
// CatmullRom pass: its horizontal and vertical weights (a 24-byte source
// entry per output column or row and a 16-byte contribution per tap; a tap
// spans 4 source pixels, widened by the scale factor when shrinking, plus 2
// for rounding), its rw x h/f temporary of [4]float64, and the resized
// RGBA64 image.
func cropsBytes(w, h int, s Spec) int64 {
	if w <= 0 || h <= 0 {
		return 0
	}
	if w == s.Width && h == s.Height {
		return 6*int64(w) + 8*int64(w)*int64(h) + cropsState
	}
	rw, rh := ResizedSize(w, h, s.resize())
	if rw < s.Width || rh < s.Height || rw > MaxResizedPixels/max(rh, 1) {
		return 0 // refused (GeometryError) before anything is allocated
	}
	f := max(1, min(w/(2*rw), h/(2*rh), maxBox))
	ww, wh := int64(w/f), int64(h/f)
	b := 6*ww*int64(f) + 8*ww*wh // one source row (f rows' worth of columns), the reduced copy
	if f > 1 {
		b += 12 * ww // the box sums of one reduced row
	}
	if ww == int64(rw) && wh == int64(rh) {
		return b + cropsState
	}
	taps := func(dst, src int64) int64 { return 24*dst + 16*(4*max(dst, src)+2*dst) }
	return b + taps(int64(rw), ww) + taps(int64(rh), wh) + 32*int64(rw)*wh + 8*int64(rw)*int64(rh) + cropsState
}
