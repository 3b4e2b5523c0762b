package main

import "encoding/binary"

// jpegLayout is what a JPEG's frame header says about the memory decoding it
// takes in Go's image/jpeg.
type jpegLayout struct {
	Components  int
	Blocks      int64 // 8x8 blocks over all components, padded to whole MCUs
	Progressive bool  // SOF2: the decoder keeps every block's coefficients ([64]int32) until the end
	Exif        bool  // an APP1 Exif segment: an orientation may add a rotated copy
}

// parseJPEGLayout walks the marker segments up to the first start of frame.
// ok is false when the bytes are not a JPEG it can read (core then reports
// what is wrong with them).
func parseJPEGLayout(b []byte) (l jpegLayout, ok bool) {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return l, false
	}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			return l, false
		}
		marker := b[i+1]
		if marker == 0xFF { // fill byte
			i++
			continue
		}
		n := int(binary.BigEndian.Uint16(b[i+2:])) // counts its own two bytes
		if n < 2 {
			return l, false
		}
		seg := b[i+4 : min(len(b), i+2+n)]
		switch {
		case marker == 0xE1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00":
			l.Exif = true
		case marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC:
			// SOFn: precision, height, width, components (id, HxV sampling, table).
			if len(seg) < 6 {
				return l, false
			}
			h, w, nc := int64(binary.BigEndian.Uint16(seg[1:])), int64(binary.BigEndian.Uint16(seg[3:])), int(seg[5])
			if len(seg) < 6+3*nc || nc == 0 {
				return l, false
			}
			hmax, vmax := int64(1), int64(1)
			for c := range nc {
				s := seg[6+3*c+1]
				hmax, vmax = max(hmax, int64(s>>4)), max(vmax, int64(s&15))
			}
			mcuX, mcuY := (w+8*hmax-1)/(8*hmax), (h+8*vmax-1)/(8*vmax)
			for c := range nc {
				s := seg[6+3*c+1]
				l.Blocks += mcuX * int64(s>>4) * mcuY * int64(s&15)
			}
			l.Components = nc
			l.Progressive = marker == 0xC2 || marker == 0xC6 || marker == 0xCA || marker == 0xCE
			return l, true
		case marker == 0xD9 || marker == 0xDA: // end of image or start of scan before any frame
			return l, false
		}
		i += 2 + n
	}
	return l, false
}
