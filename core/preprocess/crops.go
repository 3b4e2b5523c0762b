package preprocess

import (
	"fmt"
	"image"

	"golang.org/x/image/draw"
)

// MaxResizedPixels caps the resized image (rw*rh) Crops will produce: 2^19
// pixels, an aspect ratio of 8:1 at a shorter side of 256. The scratch memory
// of one call is at most about 270 bytes per resized pixel (the box-reduced
// copy, under 4x4 resized pixels at 8 bytes each; x/image/draw's temporary,
// under 4 at 32 bytes; the resized image): 23 MB for a 4:3 photo at 256. The
// cap keeps a thin strip such as 1x60000 from asking for gigabytes.
const MaxResizedPixels = 1 << 19

// maxBox caps the box pre-reduction factor so that a block's 16-bit sums fit
// in a uint32 (256*256 * 65535 < 2^32).
const maxBox = 256

// Luminance weights of ITU-R BT.601 (Y' = 0.299 R' + 0.587 G' + 0.114 B'),
// applied to the 0..255 values when a color image feeds a one-channel model.
const (
	lumaR = 0.299
	lumaG = 0.587
	lumaB = 0.114
)

// Buffers holds the scratch images Crops works in. Keep one per goroutine and
// pass it to every call: once it has grown to the largest image seen, Crops
// allocates nothing in proportion to the image for same-sized inputs, apart
// from x/image/draw's temporary, which its scaler keeps in a sync.Pool (a
// garbage collection may drop it). The zero value is ready to use; a Buffers
// must not be used by two goroutines at once.
type Buffers struct {
	row     []uint16     // one source row (or f rows' worth of columns), RGB 16-bit
	acc     []uint32     // box sums for one reduced row
	work    image.RGBA64 // the source, opaque over white, box-reduced by an integer factor
	resized image.RGBA64 // the image the crops are cut from

	scaler    draw.Scaler // CatmullRom scaler for scalerKey's sizes (it pools its own temporary)
	scalerKey [4]int      // dw, dh, sw, sh
}

// Crops is the method form of the package-level Crops, reusing b's buffers.
func (b *Buffers) Crops(img image.Image, s Spec, n int, dst [][]float32) error {
	if err := s.validate(); err != nil {
		return err
	}
	if n != 1 && n != 10 {
		return &SpecError{Reason: fmt.Sprintf("%d crops requested; use 1 (center) or 10 (corners, center and their mirrors)", n)}
	}
	if len(dst) < n {
		return &SpecError{Reason: fmt.Sprintf("%d crops requested but dst has room for %d", n, len(dst))}
	}
	size := s.Channels * s.Height * s.Width
	for i := 0; i < n; i++ {
		if len(dst[i]) != size {
			return &SpecError{Reason: fmt.Sprintf("dst[%d] has length %d; it must be Channels*Height*Width = %d", i, len(dst[i]), size)}
		}
	}
	if img == nil {
		return &GeometryError{Reason: "nil image"}
	}
	r := img.Bounds()
	l, err := CropLayout(r.Dx(), r.Dy(), s, n)
	if err != nil {
		return err
	}
	// Box-reduce by an integer factor while the image stays at least twice
	// the resized size, then resize (unless the reduced image already has
	// the size: always so for an image used as is).
	f := min(r.Dx()/(2*l.W), r.Dy()/(2*l.H), maxBox)
	b.reduce(newRowReader(img), r, max(f, 1))
	src := &b.work
	if b.work.Rect.Dx() != l.W || b.work.Rect.Dy() != l.H {
		b.resize(l.W, l.H)
		src = &b.resized
	}
	for i, c := range l.Crops {
		writeCrop(dst[i], src, c.Rect.Min, c.Mirror, &s)
	}
	return nil
}

// ResizedSize is the size an image of w x h is resized to before cropping: the
// shorter side becomes shorter, the longer one keeps the aspect ratio, rounded
// to the nearest integer (halves round up). A square image becomes shorter x shorter.
func ResizedSize(w, h, shorter int) (rw, rh int) {
	if w <= h {
		return shorter, int((2*int64(h)*int64(shorter) + int64(w)) / (2 * int64(w)))
	}
	return int((2*int64(w)*int64(shorter) + int64(h)) / (2 * int64(h))), shorter
}

// cropOrigins returns the top-left corners of the crops of a cw x ch window in
// a w x h image: for n == 1 the center; for n == 10 top-left, top-right,
// bottom-left, bottom-right, center, and then the same five again (the caller
// mirrors those). Center offsets are floored: ((w-cw)/2, (h-ch)/2).
func cropOrigins(w, h, cw, ch, n int) []image.Point {
	center := image.Pt((w-cw)/2, (h-ch)/2)
	var o [10]image.Point
	o[0] = center
	if n == 1 {
		return o[:1]
	}
	o = [10]image.Point{{0, 0}, {w - cw, 0}, {0, h - ch}, {w - cw, h - ch}, center}
	copy(o[5:], o[:5])
	return o[:]
}

// reduce fills b.work with the image inside r, opaque over white, reduced by
// an integer box filter of f x f (f == 1: a plain copy). When the size is not
// a multiple of f, the (at most f-1) leftover rows and columns are trimmed
// evenly from both sides, so the center stays put; the crops move by less
// than f/2 source pixels, under a quarter of an output pixel since f is
// chosen so that the reduced image stays at least twice the resized size.
func (b *Buffers) reduce(read rowReader, r image.Rectangle, f int) {
	w, h := r.Dx()/f, r.Dy()/f
	x0 := r.Min.X + (r.Dx()-w*f)/2
	y0 := r.Min.Y + (r.Dy()-h*f)/2
	setRGBA64Size(&b.work, w, h)
	b.row = grow(b.row, 3*w*f)
	row := b.row
	if f == 1 {
		for y := 0; y < h; y++ {
			read(row, x0, y0+y, w)
			packRow(b.work.Pix[y*b.work.Stride:], row[:3*w])
		}
		return
	}
	b.acc = grow(b.acc, 3*w)
	acc := b.acc
	area := uint32(f * f)
	for y := 0; y < h; y++ {
		clear(acc)
		for j := 0; j < f; j++ {
			read(row, x0, y0+y*f+j, w*f)
			for x := 0; x < w; x++ {
				seg := row[3*x*f : 3*(x+1)*f]
				var sr, sg, sb uint32
				for k := 0; k+2 < len(seg); k += 3 {
					sr += uint32(seg[k])
					sg += uint32(seg[k+1])
					sb += uint32(seg[k+2])
				}
				acc[3*x] += sr
				acc[3*x+1] += sg
				acc[3*x+2] += sb
			}
		}
		out := row[:3*w]
		for i, v := range acc {
			out[i] = uint16((v + area/2) / area)
		}
		packRow(b.work.Pix[y*b.work.Stride:], out)
	}
}

// resize scales b.work to rw x rh into b.resized with x/image/draw's
// CatmullRom kernel (bicubic, a = -0.5; when shrinking the kernel is widened
// by the scale factor, so it also low-pass filters).
func (b *Buffers) resize(rw, rh int) {
	setRGBA64Size(&b.resized, rw, rh)
	key := [4]int{rw, rh, b.work.Rect.Dx(), b.work.Rect.Dy()}
	if b.scaler == nil || b.scalerKey != key {
		b.scaler = draw.CatmullRom.NewScaler(key[0], key[1], key[2], key[3])
		b.scalerKey = key
	}
	b.scaler.Scale(&b.resized, b.resized.Rect, &b.work, b.work.Rect, draw.Src, nil)
}

// writeCrop writes the cw x ch window of src at o into out as Channels x
// Height x Width float32: (value - mean) * scale, value in 0..255 (16-bit
// samples / 257). A mirrored crop is the horizontal mirror of the
// mean-subtracted crop: output column x takes source column o.X+cw-1-x and
// the mean at column cw-1-x (as Caffe's DataTransformer indexes the mean by
// source position).
func writeCrop(out []float32, src *image.RGBA64, o image.Point, mirror bool, s *Spec) {
	cw, ch := s.Width, s.Height
	plane := cw * ch
	scale := s.scale()
	var order [3]int // source channel (0=R,1=G,2=B) of each output channel
	switch s.ChannelOrder {
	case "BGR":
		order = [3]int{2, 1, 0}
	case "RGB":
		order = [3]int{0, 1, 2}
	}
	for y := 0; y < ch; y++ {
		line := src.Pix[(o.Y+y)*src.Stride+o.X*8:]
		for x := 0; x < cw; x++ {
			sx := x
			if mirror {
				sx = cw - 1 - x
			}
			p := line[sx*8 : sx*8+6 : sx*8+6]
			rgb := [3]float32{
				float32(uint16(p[0])<<8|uint16(p[1])) / 257,
				float32(uint16(p[2])<<8|uint16(p[3])) / 257,
				float32(uint16(p[4])<<8|uint16(p[5])) / 257,
			}
			mi := y*cw + sx // mean index within a plane, by source position
			di := y*cw + x
			if s.Channels == 1 {
				v := float32(lumaR*float64(rgb[0]) + lumaG*float64(rgb[1]) + lumaB*float64(rgb[2]))
				out[di] = (v - s.meanAt(0, mi, plane)) * scale
				continue
			}
			for c := 0; c < 3; c++ {
				out[c*plane+di] = (rgb[order[c]] - s.meanAt(c, mi, plane)) * scale
			}
		}
	}
}

// meanAt is the mean to subtract from channel c at plane index i.
func (s *Spec) meanAt(c, i, plane int) float32 {
	switch {
	case s.Mean != nil:
		return s.Mean[c*plane+i]
	case len(s.MeanValues) == 1:
		return s.MeanValues[0]
	case len(s.MeanValues) > c:
		return s.MeanValues[c]
	}
	return 0
}

// scale is Spec.Scale, with 0 meaning 1 (Caffe's default transform_param.scale).
func (s *Spec) scale() float32 {
	if s.Scale == 0 {
		return 1
	}
	return s.Scale
}

// resize is Spec.Resize, with 0 (or less) meaning the crop's longer side.
func (s *Spec) resize() int {
	if s.Resize <= 0 {
		return max(s.Width, s.Height)
	}
	return s.Resize
}

func (s *Spec) validate() error {
	switch {
	case s.Channels == 3 && s.ChannelOrder != "BGR" && s.ChannelOrder != "RGB":
		return &SpecError{Reason: fmt.Sprintf("channel order %q with 3 channels; use \"BGR\" (Caffe's) or \"RGB\"", s.ChannelOrder)}
	case s.Channels == 1 && s.ChannelOrder != "GRAY":
		return &SpecError{Reason: fmt.Sprintf("channel order %q with 1 channel; use \"GRAY\"", s.ChannelOrder)}
	case s.Channels != 1 && s.Channels != 3:
		return &SpecError{Reason: fmt.Sprintf("%d channels; only 1 (gray) and 3 (color) are supported", s.Channels)}
	case s.Height <= 0 || s.Width <= 0:
		return &SpecError{Reason: fmt.Sprintf("input size %dx%d; height and width must be positive", s.Height, s.Width)}
	case s.Mean != nil && len(s.Mean) != s.Channels*s.Height*s.Width:
		return &SpecError{Reason: fmt.Sprintf("mean image has %d values; it must be Channels*Height*Width = %d", len(s.Mean), s.Channels*s.Height*s.Width)}
	case s.Mean == nil && len(s.MeanValues) > 1 && len(s.MeanValues) != s.Channels:
		return &SpecError{Reason: fmt.Sprintf("%d mean values for %d channels; give one per channel, one for all, or none", len(s.MeanValues), s.Channels)}
	}
	return nil
}

// setRGBA64Size makes m an opaque-capable w x h RGBA64 image at the origin,
// reusing its pixel slice when large enough.
func setRGBA64Size(m *image.RGBA64, w, h int) {
	m.Pix = grow(m.Pix, 8*w*h)
	m.Stride = 8 * w
	m.Rect = image.Rect(0, 0, w, h)
}

// packRow stores RGB triples as opaque big-endian RGBA64 pixels.
func packRow(pix []byte, rgb []uint16) {
	for i, j := 0, 0; i+2 < len(rgb); i, j = i+3, j+8 {
		p := pix[j : j+8 : j+8]
		p[0], p[1] = byte(rgb[i]>>8), byte(rgb[i])
		p[2], p[3] = byte(rgb[i+1]>>8), byte(rgb[i+1])
		p[4], p[5] = byte(rgb[i+2]>>8), byte(rgb[i+2])
		p[6], p[7] = 0xff, 0xff
	}
}

// grow returns s resliced to n elements, reallocating only when too short.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
