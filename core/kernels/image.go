package kernels

// imageB describes B of a convolution's GEMM as the assembly GEMM packs it:
// row k = (c, kh, kw) of the im2col matrix, column j = output pixel (oh,
// ow), is src[rowOffset(k) + oh*sh*wq + ow] where src holds InC*phases
// planes (one per input channel and column phase) of rows x wq values. That
// is the input itself for a stride-1 unpadded convolution; otherwise a copy
// (prepareImage) that is zero-padded, split into column phases for a
// column stride above 1 (phase ph holds padded columns ph, ph+SW, ...) so
// that every run of output pixels in one output row reads consecutive
// values, or for an unpadded 1x1 convolution, the strided subsample.
type imageB struct {
	on                   bool
	phases, rows, wq, sh int
}

// imageFor is the image form of B for p (normalized) and the size of the
// copy prepareImage makes, 0 when the GEMM reads the input in place.
func imageFor(p *ConvParams) (imageB, int) {
	icg := p.InC / p.Group
	switch {
	case p.PH == 0 && p.PW == 0 && p.SW == 1:
		return imageB{on: true, phases: 1, rows: p.InH, wq: p.InW, sh: p.SH}, 0
	case p.PH == 0 && p.PW == 0 && p.KH == 1 && p.KW == 1:
		return imageB{on: true, phases: 1, rows: p.OutH, wq: p.OutW, sh: 1}, icg * p.OutH * p.OutW
	}
	rows, wp := p.InH+2*p.PH, p.InW+2*p.PW
	wq := (wp + p.SW - 1) / p.SW
	return imageB{on: true, phases: p.SW, rows: rows, wq: wq, sh: p.SH}, icg * p.SW * rows * wq
}

// imageTask prepares the copy of the input a worker's share of channels
// at a time.
type imageTask struct {
	p       ConvParams
	img     imageB
	in, dst []float32
}

func (t *imageTask) run(w, nw int, _ *workspace) {
	lo, hi := share(t.p.InC/t.p.Group, w, nw)
	prepareImage(&t.p, t.img, t.in, t.dst, lo, hi)
}

// prepareImage runs prepareImage for all channels on r's workers.
func (r *Runner) prepareImage(p *ConvParams, img imageB, in, dst []float32) {
	if r == nil {
		prepareImage(p, img, in, dst, 0, p.InC/p.Group)
		return
	}
	r.imgT = imageTask{p: *p, img: img, in: in, dst: dst}
	r.dispatch(&r.imgT)
	r.imgT = imageTask{}
}

// prepareImage writes channels c0..c1-1 of the copy imageFor describes
// (when its size is not 0) of one group's input channels in to dst.
func prepareImage(p *ConvParams, img imageB, in, dst []float32, c0, c1 int) {
	plane := p.InH * p.InW
	if img.phases == 1 && img.rows == p.OutH && img.wq == p.OutW && img.sh == 1 && (p.SH > 1 || p.SW > 1) {
		// The subsample of an unpadded 1x1 convolution.
		for c := c0; c < c1; c++ {
			src := in[c*plane : (c+1)*plane]
			d := dst[c*p.OutH*p.OutW : (c+1)*p.OutH*p.OutW]
			for oh := 0; oh < p.OutH; oh++ {
				row := src[oh*p.SH*p.InW : oh*p.SH*p.InW+p.InW]
				out := d[oh*p.OutW : (oh+1)*p.OutW]
				for ow := range out {
					out[ow] = row[ow*p.SW]
				}
			}
		}
		return
	}
	for c := c0; c < c1; c++ {
		src := in[c*plane : (c+1)*plane]
		for ph := 0; ph < img.phases; ph++ {
			d := dst[(c*img.phases+ph)*img.rows*img.wq : (c*img.phases+ph+1)*img.rows*img.wq]
			for y := 0; y < img.rows; y++ {
				out := d[y*img.wq : (y+1)*img.wq]
				iy := y - p.PH
				if iy < 0 || iy >= p.InH {
					clear(out)
					continue
				}
				row := src[iy*p.InW : (iy+1)*p.InW]
				if img.phases == 1 {
					// Padded columns PW..PW+InW-1 hold the input row.
					clear(out[:p.PW])
					copy(out[p.PW:p.PW+p.InW], row)
					clear(out[p.PW+p.InW:])
					continue
				}
				// Columns x with 0 <= x*phases + ph - PW < InW hold the
				// input; the others are padding.
				s := img.phases
				x0 := min(max(0, (p.PW-ph+s-1)/s), len(out))
				x1 := min(max(x0, (p.InW+p.PW-ph+s-1)/s), len(out))
				clear(out[:x0])
				src := row[x0*s+ph-p.PW:]
				for x := range out[x0:x1] {
					out[x0+x] = src[x*s]
				}
				clear(out[x1:])
			}
		}
	}
}

// rowOffset is the offset in the image source of row k of the im2col
// matrix (the value for output pixel (0, 0)).
func (img *imageB) rowOffset(p *ConvParams, k int) int {
	c, kh, kw := k/(p.KH*p.KW), k/p.KW%p.KH, k%p.KW
	d := kw * p.DW
	ph, x := d%img.phases, d/img.phases
	return ((c*img.phases+ph)*img.rows+kh*p.DH)*img.wq + x
}

// segments appends to segs, as (source offset, packed offset, length)
// triples, the runs of output pixels j0..j0+n-1 within output rows, and
// returns them with the largest source offset plus length.
func (img *imageB) segments(p *ConvParams, j0, n int, segs []int) ([]int, int) {
	end := 0
	for d := 0; d < n; {
		oh, ow := (j0+d)/p.OutW, (j0+d)%p.OutW
		run := min(n-d, p.OutW-ow)
		off := oh*img.sh*img.wq + ow
		segs = append(segs, off, d, run)
		end = max(end, off+run)
		d += run
	}
	return segs, end
}
