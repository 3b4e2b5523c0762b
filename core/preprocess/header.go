package preprocess

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"strings"
)

// Header is what an image's bytes say before any pixel is decoded: enough to
// refuse the image (not an image, truncated, too many pixels) and to bound
// the memory decoding and preprocessing it will take (Header.Memory).
type Header struct {
	Format string // "JPEG", "PNG", "GIF", "WebP", "BMP" or "TIFF"
	// Width and Height are the size of the image Decode returns: for a JPEG
	// with an Exif orientation of 5 to 8, the stored size transposed.
	Width, Height int
	ColorModel    color.Model // the decoder's colour model, from the header
	Orientation   int         // the Exif orientation Decode applies to a JPEG (1..8); 1 otherwise
	Bytes         int64       // the length of the encoded data (a WebP decoder copies its compressed partitions)

	// layout is what Memory needs beyond the fields above. A Header made by
	// hand (not by ReadHeader) has the zero layout, which Memory reads as the
	// most memory-hungry layout the format allows at that size.
	layout layout
}

// layout is what a decoder's allocations depend on beyond size and colour
// model, read from the headers by ReadHeader.
type layout struct {
	known bool // set by ReadHeader

	// JPEG: the start-of-frame components as image/jpeg uses them.
	comps       int
	h, v        [4]int // sampling factors (a one-component image counts as 1x1, as image/jpeg does)
	progressive bool   // SOF2: coefficients kept for every block until the end
	rgb         bool   // three components stored as RGB: image/jpeg converts them to an RGBA copy

	// PNG: Adam7 interlacing (each pass decoded into its own image, then
	// merged) and a tRNS chunk (which widens gray and truecolour to N)RGBA.
	interlaced  bool
	transparent bool
	bitsPerPx   int // the bits of one pixel in the filtered rows

	// GIF: the first frame's bounds on the logical screen (interlaced is shared).
	frame image.Rectangle

	// WebP: which chunk holds the pixels, and how its alpha is stored; for
	// a lossless image or alpha plane, what x/image/vp8l allocates for it
	// (vp8lMemory; 0 when that could not be worked out).
	lossless, alpha, alphaLossless bool
	vp8l, alphaVP8L                int64

	// TIFF: the strip or tile x/image/tiff decodes at a time, and whether
	// it is compressed (then inflated into a buffer that grows by doubling).
	blockW, blockH int
	compressed     bool
}

// ReadHeader reads the header of JPEG, PNG, GIF, WebP, BMP or TIFF bytes
// without decoding the pixels, and checks what can be checked before
// decoding: the format, the size against maxPixels (<= 0:
// DefaultMaxPixels) and, for JPEG, PNG, GIF and WebP, that the data is not
// cut off before the end the decoder needs (the JPEG end-of-image marker
// after the last scan, the PNG IEND chunk, the end of the first GIF frame,
// the lossy WebP image chunk, a lossless one's entropy codes; BMP and TIFF
// decoders find a cut themselves). Decode runs the same checks first, so an image
// ReadHeader refuses is one Decode refuses, with the same *ImageError
// (ErrEmpty, ErrUnsupported, ErrTooLarge or ErrCorrupt).
func ReadHeader(data []byte, maxPixels int) (*Header, error) {
	h, _, err := readHeader(data, maxPixels)
	return h, err
}

// readHeader is ReadHeader, also returning the format's decoder.
func readHeader(data []byte, maxPixels int) (*Header, *format, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	if len(data) == 0 {
		return nil, nil, &ImageError{Kind: ErrEmpty, Reason: "no bytes were given; send the image file's contents"}
	}
	var f *format
	for i := range formats {
		if formats[i].match(data) {
			f = &formats[i]
			break
		}
	}
	if f == nil {
		return nil, nil, &ImageError{Kind: ErrUnsupported, Reason: fmt.Sprintf(
			"not a recognised image format (first bytes % x); supported formats: %s",
			data[:min(len(data), 8)], strings.Join(SupportedFormats, ", "))}
	}
	// Size first: an oversized image is refused before anything else is
	// read (the header of a 10^10-pixel PNG is all it takes to refuse it).
	cfg, err := protect(func() (image.Config, error) { return f.decodeConfig(bytes.NewReader(data)) })
	if err != nil {
		return nil, nil, decoderError(f.name, "cannot read the header", err)
	}
	if err := checkSize(f.name, cfg.Width, cfg.Height, maxPixels); err != nil {
		return nil, nil, err
	}
	h := &Header{Format: f.name, Width: cfg.Width, Height: cfg.Height, ColorModel: cfg.ColorModel, Orientation: 1, Bytes: int64(len(data))}
	var missing string // what the data lacks, when it is cut off
	switch f.name {
	case "JPEG":
		h.layout, missing = jpegLayout(data)
		h.Orientation = jpegOrientation(data)
		h.Width, h.Height = orientedSize(h.Orientation, cfg.Width, cfg.Height)
	case "PNG":
		h.layout, missing = pngLayout(data)
	case "GIF":
		h.layout, missing = gifLayout(data)
	case "WebP":
		h.layout, missing = webpLayout(data)
	case "TIFF": // its decoder finds a truncation itself
		h.layout = tiffLayout(data, cfg.Width, cfg.Height)
	default: // BMP: likewise
		h.layout.known = true
	}
	if missing != "" {
		return nil, nil, &ImageError{Kind: ErrCorrupt, Format: f.name, Reason: "the data is truncated: " + missing +
			"; send the whole file"}
	}
	return h, f, nil
}

// The walks below read only the framing the decoder itself needs to reach
// the end of the image, exactly as the decoder frames it, so they never
// refuse an image the decoder would accept: a truncation they report is one
// the decoder would fail on too (FuzzReadHeader checks this). Anything else
// that is wrong is left to the decoder, which says what it is.

// jpegLayout walks the marker segments of a JPEG to its end-of-image
// marker, as image/jpeg does: bytes between segments (the entropy-coded
// scans, stuffed 0xFF00 pairs, restart markers, padding) are skipped, and
// every other marker carries a length that counts itself. It records the
// frame (SOF0, SOF1, SOF2: the ones image/jpeg decodes), JFIF (APP0) and
// Adobe (APP14) segments, which decide whether image/jpeg converts the
// pixels to RGBA. missing is non-empty when the data ends before the
// end-of-image marker.
func jpegLayout(b []byte) (l layout, missing string) {
	l.known = true
	var jfif, adobe bool
	var adobeTransform byte
	var ids [4]byte
	for i := 2; ; {
		j := bytes.IndexByte(b[i:], 0xFF)
		if j < 0 {
			return l, "no end-of-image marker"
		}
		i += j
		for i < len(b) && b[i] == 0xFF { // fill bytes (T.81 B.1.1.2)
			i++
		}
		if i >= len(b) {
			return l, "no end-of-image marker"
		}
		m := b[i]
		i++
		switch {
		case m == 0x00 || (m >= markerRST0 && m <= markerRST7):
			continue // a stuffed 0xFF data byte, or a restart marker: no length
		case m == markerEOI:
			l.rgb = l.comps == 3 && !jfif && (adobe && adobeTransform == 0 || ids == [4]byte{'R', 'G', 'B'})
			return l, ""
		}
		if i+2 > len(b) {
			return l, "the data ends inside a marker segment"
		}
		n := int(binary.BigEndian.Uint16(b[i:]))
		if n < 2 {
			return l, "" // the decoder refuses a segment shorter than its length field
		}
		if i+n > len(b) {
			return l, "the data ends inside a marker segment"
		}
		seg := b[i+2 : i+n]
		switch {
		case (m == 0xC0 || m == 0xC1 || m == 0xC2) && l.comps == 0 && len(seg) >= 6:
			nc := int(seg[5])
			if nc < 1 || nc > 4 || len(seg) < 6+3*nc {
				return l, "" // the decoder refuses it
			}
			l.comps, l.progressive = nc, m == 0xC2
			for c := range nc {
				ids[c] = seg[6+3*c]
				l.h[c], l.v[c] = max(int(seg[7+3*c]>>4), 1), max(int(seg[7+3*c]&15), 1)
				if nc == 1 {
					l.h[c], l.v[c] = 1, 1 // image/jpeg: one component is always one block per MCU
				}
			}
		case m == 0xE0 && len(seg) >= 5: // APP0: image/jpeg sets jfif from every one
			jfif = string(seg[:5]) == "JFIF\x00"
		case m == 0xEE && len(seg) >= 12 && string(seg[:5]) == "Adobe":
			adobe, adobeTransform = true, seg[11]
		}
		i += n
	}
}

// pngLayout walks the chunks of a PNG (length, type, data, CRC) to IEND,
// as image/png does. It records the IHDR fields that decide the decoded
// pixel type and the row size, and whether a tRNS chunk comes before the
// image data.
func pngLayout(b []byte) (l layout, missing string) {
	l.known = true
	seenIDAT := false
	for i := 8; ; {
		if i+8 > len(b) {
			return l, "no IEND chunk"
		}
		n := binary.BigEndian.Uint32(b[i:])
		typ := string(b[i+4 : i+8])
		if n > 0x7fffffff {
			return l, "" // the decoder refuses it
		}
		if uint64(i)+12+uint64(n) > uint64(len(b)) {
			if typ == "IEND" {
				return l, "the IEND chunk is cut off"
			}
			return l, fmt.Sprintf("the data ends inside a %q chunk, before IEND", typ)
		}
		data := b[i+8 : i+8+int(n)]
		switch typ {
		case "IHDR":
			if len(data) >= 13 {
				channels := 1 // gray (0), palette (3)
				switch data[9] {
				case 2: // truecolour
					channels = 3
				case 4: // gray with alpha
					channels = 2
				case 6: // truecolour with alpha
					channels = 4
				}
				l.bitsPerPx = int(data[8]) * channels
				l.interlaced = data[12] == 1
			}
		case "tRNS":
			l.transparent = l.transparent || !seenIDAT
		case "IDAT":
			seenIDAT = true
		case "IEND":
			return l, ""
		}
		i += 12 + int(n)
	}
}

// gifLayout walks a GIF's blocks to the end of its first image (the one
// image/gif's Decode returns), as image/gif reads them: the global colour
// table, extensions, then the image descriptor, its local colour table and
// its data sub-blocks up to the terminating empty one.
func gifLayout(b []byte) (l layout, missing string) {
	l.known = true
	if len(b) < 13 {
		return l, "the screen descriptor is cut off"
	}
	i := 13
	if b[10]&0x80 != 0 {
		i += 3 << (b[10]&7 + 1)
	}
	// subBlocks skips data sub-blocks up to and including the empty one.
	subBlocks := func() bool {
		for {
			if i >= len(b) {
				return false
			}
			n := int(b[i])
			i += 1 + n
			if n == 0 {
				return true
			}
		}
	}
	for {
		if i >= len(b) {
			return l, "the data ends before the first image"
		}
		switch b[i] {
		case 0x21: // extension
			if i+2 > len(b) {
				return l, "the data ends inside an extension"
			}
			label := b[i+1]
			i += 2
			switch label {
			case 0xF9: // graphic control: image/gif reads six bytes
				i += 6
			case 0x01: // plain text: image/gif reads thirteen bytes, then sub-blocks
				i += 13
			case 0xFE, 0xFF: // comment, application: sub-blocks
			default:
				return l, "" // the decoder refuses it
			}
			if label != 0xF9 && !subBlocks() || i > len(b) {
				return l, "the data ends inside an extension"
			}
		case 0x2C: // image descriptor
			if i+10 > len(b) {
				return l, "the image descriptor is cut off"
			}
			d := b[i+1 : i+10]
			x, y := int(binary.LittleEndian.Uint16(d)), int(binary.LittleEndian.Uint16(d[2:]))
			l.frame = image.Rect(x, y, x+int(binary.LittleEndian.Uint16(d[4:])), y+int(binary.LittleEndian.Uint16(d[6:])))
			l.interlaced = d[8]&0x40 != 0
			i += 10
			if d[8]&0x80 != 0 {
				i += 3 << (d[8]&7 + 1)
			}
			i++ // LZW minimum code size
			if i > len(b) || !subBlocks() {
				return l, "the data ends inside the first image"
			}
			return l, ""
		default: // the trailer or an unknown block: the decoder decides
			return l, ""
		}
	}
}

// webpLayout walks the RIFF chunks of a WebP up to its image chunk (VP8 or
// VP8L; x/image/webp reads nothing after it), recording whether the image
// is lossless and how its alpha is stored.
func webpLayout(b []byte) (l layout, missing string) {
	l.known = true
	w, h := 0, 0 // the canvas of a VP8X chunk
	for i := 12; ; {
		if i+8 > len(b) {
			return l, "no image chunk"
		}
		id := string(b[i : i+4])
		n := uint64(binary.LittleEndian.Uint32(b[i+4:]))
		if uint64(i)+8+n > uint64(len(b)) {
			if id != "VP8L" {
				return l, fmt.Sprintf("the data ends inside the %q chunk", id)
			}
			// x/image/vp8l reads a lossless chunk's bits only as far as it
			// needs them: the walk below tells whether they are there.
			n = uint64(len(b) - i - 8)
		}
		data := b[i+8 : i+8+int(n)]
		switch id {
		case "VP8X":
			if len(data) >= 10 {
				l.alpha = data[0]&0x10 != 0
				w = 1 + int(data[4]) | int(data[5])<<8 | int(data[6])<<16
				h = 1 + int(data[7]) | int(data[8])<<8 | int(data[9])<<16
			}
		case "ALPH":
			if len(data) > 0 && data[0]&3 == 1 {
				l.alphaLossless = true
				bytes, ok, eof := vp8lMemory(data[1:], w, h)
				if eof {
					return l, "the alpha chunk ends inside its entropy codes"
				}
				if ok {
					l.alphaVP8L = bytes
				}
			}
		case "VP8L":
			l.lossless = true
			if len(data) >= 5 && data[0] == 0x2f { // the VP8L signature, then 14-bit width and height less one
				dims := binary.LittleEndian.Uint32(data[1:])
				bytes, ok, eof := vp8lMemory(data[5:], 1+int(dims&0x3fff), 1+int(dims>>14&0x3fff))
				if eof {
					return l, "the data ends inside the lossless image's entropy codes"
				}
				if ok {
					l.vp8l = bytes
				}
			}
			return l, ""
		case "VP8 ":
			return l, ""
		}
		i += 8 + int(n) + int(n&1) // chunks are padded to an even length
	}
}

// tiffLayout reads, from the first IFD of a TIFF (the one x/image/tiff
// decodes), the strip or tile size and the compression, which decide the
// buffer the decoder inflates each block into. A tag it cannot read (absent,
// or not a single inline SHORT or LONG) leaves the worst case x/image/tiff
// allows: tiles up to 1024x1024 (or the image plus 16), compressed.
func tiffLayout(b []byte, w, h int) layout {
	l := layout{known: true, compressed: true, blockW: max(w+16, 1024), blockH: max(h+16, 1024)}
	if len(b) < 8 {
		return l
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if b[0] == 'M' {
		bo = binary.BigEndian
	}
	off := uint64(bo.Uint32(b[4:]))
	if off+2 > uint64(len(b)) {
		return l
	}
	n := uint64(bo.Uint16(b[off:]))
	tags := map[uint16]int{}
	for k := range n {
		e := off + 2 + 12*k
		if e+12 > uint64(len(b)) {
			break
		}
		tag, typ, count := bo.Uint16(b[e:]), bo.Uint16(b[e+2:]), bo.Uint32(b[e+4:])
		if count != 1 {
			continue
		}
		switch typ {
		case 3: // SHORT
			tags[tag] = int(bo.Uint16(b[e+8:]))
		case 4: // LONG
			tags[tag] = int(bo.Uint32(b[e+8:]))
		}
	}
	const (
		tagCompression  = 259
		tagRowsPerStrip = 278
		tagTileWidth    = 322
		tagTileLength   = 323
	)
	if c, ok := tags[tagCompression]; ok {
		l.compressed = c != 1 // 1: none (x/image/tiff also reads a missing tag as none, which the worst case covers)
	}
	tw, okW := tags[tagTileWidth]
	th, okH := tags[tagTileLength]
	switch {
	case okW && okH && tw > 0 && th > 0:
		l.blockW, l.blockH = tw, th
	case !okW && !okH:
		l.blockW, l.blockH = w, h
		if r, ok := tags[tagRowsPerStrip]; ok && r > 0 && r < h {
			l.blockH = r
		}
	}
	return l
}
