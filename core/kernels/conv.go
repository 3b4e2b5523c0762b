package kernels

import (
	"fmt"

	"github.com/residual-go/residual/core/shape"
)

// normalized returns p with the zero values Caffe treats as defaults
// (stride 1, dilation 1, group 1) filled in.
func (p ConvParams) normalized() ConvParams {
	if p.SH == 0 {
		p.SH = 1
	}
	if p.SW == 0 {
		p.SW = 1
	}
	if p.DH == 0 {
		p.DH = 1
	}
	if p.DW == 0 {
		p.DW = 1
	}
	if p.Group == 0 {
		p.Group = 1
	}
	return p
}

// pointwise reports whether the convolution is a plain GEMM on the input:
// a 1x1 kernel, stride 1, no padding (the input is then the K x N matrix).
func (p ConvParams) pointwise() bool {
	return p.KH == 1 && p.KW == 1 && p.SH == 1 && p.SW == 1 && p.PH == 0 && p.PW == 0
}

// colSize is the size of the scratch for one group's im2col matrix: 0 for
// a pointwise convolution, and 0 when the GEMM builds the matrix itself
// (packsIm2col).
func (p ConvParams) colSize() int {
	if p.pointwise() || packsIm2col {
		return 0
	}
	return p.InC / p.Group * p.KH * p.KW * p.OutH * p.OutW
}

// check panics when p is inconsistent (broken invariants of the caller).
func (p ConvParams) check() {
	if p.InC <= 0 || p.InH <= 0 || p.InW <= 0 || p.OutC <= 0 || p.OutH <= 0 || p.OutW <= 0 ||
		p.KH <= 0 || p.KW <= 0 || p.SH <= 0 || p.SW <= 0 || p.PH < 0 || p.PW < 0 ||
		p.DH <= 0 || p.DW <= 0 || p.Group <= 0 {
		panic(fmt.Sprintf("kernels: invalid ConvParams %+v", p))
	}
	if p.InC%p.Group != 0 || p.OutC%p.Group != 0 {
		panic(fmt.Sprintf("kernels: group %d does not divide InC %d and OutC %d", p.Group, p.InC, p.OutC))
	}
	// Caffe's output size (core/shape).
	out, err := shape.Conv([2]int{p.InH, p.InW}, [2]int{p.KH, p.KW}, [2]int{p.SH, p.SW}, [2]int{p.PH, p.PW}, [2]int{p.DH, p.DW})
	if err != nil || out != [2]int{p.OutH, p.OutW} {
		panic(fmt.Sprintf("kernels: ConvParams output %dx%d, Caffe's rule gives %v (%v)", p.OutH, p.OutW, out, err))
	}
}

// ConvScratchSize is the number of float32s Conv2D needs as scratch for p:
// the calling goroutine's GEMM buffers plus, in the scalar build, one
// group's im2col matrix (none for 1x1 stride-1 unpadded convolutions), or
// with the assembly GEMM, one group's padded copy of the input (see imageB)
// or what a Winograd convolution takes (see winoShape), whichever is more.
func ConvScratchSize(p ConvParams) int {
	p = p.normalized()
	return max(workspaceSize()+p.colSize()+p.imageSize(), winoScratch(&p))
}

// ConvScratchSizeF16 is the scratch Conv2DF16 needs for p: ConvScratchSize
// plus room to widen up to f16Chunk filter values at once where the
// assembly GEMM does not widen them itself.
func ConvScratchSizeF16(p ConvParams) int {
	p = p.normalized()
	return ConvScratchSize(p) + p.f16Chunk()
}

// f16Chunk is the most float16 filter values Conv2DF16 widens at once when
// the GEMM cannot take them as they are: whole output channels, at most
// 1 MiB of float32 (or one channel's filters).
func (p ConvParams) f16Chunk() int {
	k := p.InC / p.Group * p.KH * p.KW
	return k * min(p.OutC/p.Group, max(1, (1<<18)/k))
}

// imageSize is the scratch for the assembly GEMM's copy of one group's input.
func (p ConvParams) imageSize() int {
	if !hasAsm || p.pointwise() {
		return 0
	}
	_, n := imageFor(&p)
	return n
}

// Conv2D computes out = act(conv(in, w) + bias). w is OutC x InC/Group x KH x KW;
// bias may be nil. len(scratch) >= ConvScratchSize(p). Zero strides,
// dilations and group count mean 1. out must not overlap in, w or scratch.
//
// Each group is one GEMM, as in Caffe: out_g (OutC/G x OH*OW) = w_g
// (OutC/G x K) * col_g (K x OH*OW) with K = InC/G*KH*KW, where col_g is the
// im2col matrix of the group's input channels, or the input itself for a
// pointwise convolution. The simd GEMM builds col_g itself, one cache-sized
// panel at a time; the scalar build materializes it in scratch; the
// assembly GEMM packs it from the input or a padded copy (imageB), and
// runs 3x3 stride-1 convolutions with Winograd's algorithm (wino.go). The
// bias and the activation are applied in the GEMM's epilogue.
func Conv2D(r *Runner, p ConvParams, in, w, bias, out, scratch []float32, act Act) {
	p = p.normalized()
	p.check()
	if k := p.InC / p.Group * p.KH * p.KW; len(w) < p.OutC*k {
		panic(fmt.Sprintf("kernels: Conv2D: len(w) = %d < %d", len(w), p.OutC*k))
	}
	if len(scratch) < ConvScratchSize(p) {
		panic(fmt.Sprintf("kernels: Conv2D: len(scratch) = %d < ConvScratchSize = %d", len(scratch), ConvScratchSize(p)))
	}
	conv2D(r, p, in, w, nil, bias, nil, out, scratch, act)
}

// Conv2DF16 is Conv2D with float16 filters (IEEE binary16 bits, as stored
// in the weight shards): the assembly GEMM widens each block of filters as
// it stages it for the micro-kernel (VCVTPH2PS), so the filters are never
// widened all at once; other builds widen up to f16Chunk values at a time
// into scratch. len(scratch) >= ConvScratchSizeF16(p). The result is the
// same as Conv2D's with the widened filters.
func Conv2DF16(r *Runner, p ConvParams, in []float32, w []uint16, bias, out, scratch []float32, act Act) {
	p = p.normalized()
	p.check()
	if k := p.InC / p.Group * p.KH * p.KW; len(w) < p.OutC*k {
		panic(fmt.Sprintf("kernels: Conv2DF16: len(w) = %d < %d", len(w), p.OutC*k))
	}
	if len(scratch) < ConvScratchSizeF16(p) {
		panic(fmt.Sprintf("kernels: Conv2DF16: len(scratch) = %d < ConvScratchSizeF16 = %d", len(scratch), ConvScratchSizeF16(p)))
	}
	conv2D(r, p, in, nil, w, bias, nil, out, scratch, act)
}

// Conv2DAdd computes out = act(conv(in, w) + bias + res): Conv2D with a
// residual (ResNet's shortcut) added before the activation, the result bit
// for bit that of Conv2D without activation followed by Eltwise(EltSum,
// nil, [out, res], out, act) (the sign of a zero aside: Eltwise's own vector
// and scalar paths differ there). The assembly GEMM adds res in its epilogue,
// while the tile is in registers (no pass over out); other paths
// (Winograd, GEMV, the portable builds) run those two steps. res is
// OutC x OutH x OutW and must not overlap out; scratch as for Conv2D.
func Conv2DAdd(r *Runner, p ConvParams, in, w, bias, res, out, scratch []float32, act Act) {
	p = p.normalized()
	p.check()
	if k := p.InC / p.Group * p.KH * p.KW; len(w) < p.OutC*k {
		panic(fmt.Sprintf("kernels: Conv2DAdd: len(w) = %d < %d", len(w), p.OutC*k))
	}
	if len(scratch) < ConvScratchSize(p) {
		panic(fmt.Sprintf("kernels: Conv2DAdd: len(scratch) = %d < ConvScratchSize = %d", len(scratch), ConvScratchSize(p)))
	}
	if n := p.OutC * p.OutH * p.OutW; len(res) < n {
		panic(fmt.Sprintf("kernels: Conv2DAdd: len(res) = %d < %d", len(res), n))
	}
	conv2D(r, p, in, w, nil, bias, res, out, scratch, act)
}

// Conv2DAddF16 is Conv2DAdd with float16 filters (see Conv2DF16);
// len(scratch) >= ConvScratchSizeF16(p).
func Conv2DAddF16(r *Runner, p ConvParams, in []float32, w []uint16, bias, res, out, scratch []float32, act Act) {
	p = p.normalized()
	p.check()
	if k := p.InC / p.Group * p.KH * p.KW; len(w) < p.OutC*k {
		panic(fmt.Sprintf("kernels: Conv2DAddF16: len(w) = %d < %d", len(w), p.OutC*k))
	}
	if len(scratch) < ConvScratchSizeF16(p) {
		panic(fmt.Sprintf("kernels: Conv2DAddF16: len(scratch) = %d < ConvScratchSizeF16 = %d", len(scratch), ConvScratchSizeF16(p)))
	}
	if n := p.OutC * p.OutH * p.OutW; len(res) < n {
		panic(fmt.Sprintf("kernels: Conv2DAddF16: len(res) = %d < %d", len(res), n))
	}
	conv2D(r, p, in, nil, w, bias, res, out, scratch, act)
}

// conv2D runs Conv2D (w32) or Conv2DF16 (w16), plus a residual res when
// not nil, on checked parameters.
func conv2D(r *Runner, p ConvParams, in, w32 []float32, w16 []uint16, bias, res, out, scratch []float32, act Act) {
	g := p.Group
	icg, ocg := p.InC/g, p.OutC/g
	k := icg * p.KH * p.KW
	n := p.OutH * p.OutW
	plane := p.InH * p.InW
	wsSize := workspaceSize()
	switch {
	case len(in) < p.InC*plane:
		panic(fmt.Sprintf("kernels: Conv2D: len(in) = %d < %d", len(in), p.InC*plane))
	case bias != nil && len(bias) < p.OutC:
		panic(fmt.Sprintf("kernels: Conv2D: len(bias) = %d < %d", len(bias), p.OutC))
	case len(out) < p.OutC*n:
		panic(fmt.Sprintf("kernels: Conv2D: len(out) = %d < %d", len(out), p.OutC*n))
	}
	r.lock()
	defer r.unlock()
	// The residual goes into the assembly GEMM's epilogue (not Winograd's,
	// nor the GEMV's, which a pointwise convolution with one output pixel
	// takes); anywhere else it is added after the convolution, as Eltwise
	// would.
	convAct := act
	if res != nil {
		convAct = Act{}
	}
	wm := winoPlan(&p, convAct)
	fused := res != nil && wm == 0 && usesImageB() && !(n == 1 && p.pointwise())
	if fused {
		convAct = act
	} else if res != nil {
		defer addAct(out[:p.OutC*n], res[:p.OutC*n], out[:p.OutC*n], act)
	}
	if wm > 0 {
		s := winoShapeFor(&p, wm)
		r.winograd(winoTask{s: s, p: p, in: in, w: w32, w16: w16, bias: bias, out: out, scratch: scratch[:s.size], act: convAct})
		return
	}
	ws := newWorkspace(scratch[:wsSize])
	col := scratch[wsSize : wsSize+p.colSize()]
	rest := scratch[wsSize+p.colSize():]
	imgBuf := rest[:p.imageSize()]
	wide := rest[p.imageSize():]
	for gi := 0; gi < g; gi++ {
		src := in[gi*icg*plane : (gi+1)*icg*plane]
		ga := gemmArgs{
			m: ocg, n: n, k: k, lda: k,
			b: src, ldb: n,
			c: out[gi*ocg*n : (gi+1)*ocg*n], ldc: n,
			bias: biasFrom(bias, gi*ocg), act: convAct,
		}
		if fused {
			ga.res = res[gi*ocg*n : (gi+1)*ocg*n]
		}
		if w16 != nil {
			ga.a16 = w16[gi*ocg*k : (gi+1)*ocg*k]
		} else {
			ga.a = w32[gi*ocg*k : (gi+1)*ocg*k]
		}
		switch {
		case p.pointwise():
		case usesImageB():
			img, n := imageFor(&p)
			if n > 0 {
				r.prepareImage(&p, img, src, imgBuf[:n])
				ga.b = imgBuf[:n]
			}
			ga.img, ga.conv = img, p
		case packsIm2col:
			ga.fromImage, ga.conv = true, p
		default:
			r.im2col(&p, src, col)
			ga.b = col
		}
		if ga.a16 == nil || usesImageB() {
			r.gemm(ga, &ws)
			continue
		}
		// This GEMM takes float32 filters: widen them a chunk of output
		// channels at a time.
		rows := p.f16Chunk() / k
		for m0 := 0; m0 < ocg; m0 += rows {
			sub := ga
			sub.m = min(rows, ocg-m0)
			sub.a16 = nil
			sub.a = wide[:sub.m*k]
			WidenF16(sub.a, ga.a16[m0*k:(m0+sub.m)*k])
			sub.c = ga.c[m0*n:]
			sub.bias = biasFrom(ga.bias, m0)
			r.gemm(sub, &ws)
		}
	}
}

type im2colTask struct {
	p       ConvParams
	in, col []float32
}

func (t *im2colTask) run(w, nw int, _ *workspace) {
	lo, hi := share(t.p.InC/t.p.Group*t.p.KH*t.p.KW, w, nw)
	im2colRows(&t.p, t.in, t.col, lo, hi)
}

// im2col fills col from one group's input channels in, split over r's workers.
func (r *Runner) im2col(p *ConvParams, in, col []float32) {
	rows := p.InC / p.Group * p.KH * p.KW
	if r == nil {
		im2colRows(p, in, col, 0, rows)
		return
	}
	r.colT = im2colTask{p: *p, in: in, col: col}
	r.dispatch(&r.colT)
	r.colT = im2colTask{}
}

// im2colRows writes rows lo..hi-1 of the im2col matrix (see im2colRange).
func im2colRows(p *ConvParams, in, col []float32, lo, hi int) {
	n := p.OutH * p.OutW
	for row := lo; row < hi; row++ {
		im2colRange(p, in, row, 0, col[row*n:(row+1)*n])
	}
}

// im2colRange writes columns j0..j0+len(dst)-1 of row row of the im2col
// matrix of p's input in (one group's channels) to dst. In Caffe's layout,
// row (c*KH + kh)*KW + kw, column oh*OW + ow holds
// in[c][oh*SH - PH + kh*DH][ow*SW - PW + kw*DW], or 0 in the padding.
func im2colRange(p *ConvParams, in []float32, row, j0 int, dst []float32) {
	c, kh, kw := row/(p.KH*p.KW), row/p.KW%p.KH, row%p.KW
	plane := in[c*p.InH*p.InW : (c+1)*p.InH*p.InW]
	iw0 := kw*p.DW - p.PW // input column of output column 0
	// Output columns whose input column is inside the image, for stride 1.
	owLo, owHi := min(max(-iw0, 0), p.OutW), min(max(p.InW-iw0, 0), p.OutW)
	for len(dst) > 0 {
		oh, ow := j0/p.OutW, j0%p.OutW
		d := dst[:min(len(dst), p.OutW-ow)] // the part in output row oh
		dst, j0 = dst[len(d):], j0+len(d)
		ih := oh*p.SH - p.PH + kh*p.DH
		if ih < 0 || ih >= p.InH {
			clear(d)
			continue
		}
		src := plane[ih*p.InW : (ih+1)*p.InW]
		if p.SW == 1 {
			lo, hi := min(max(owLo, ow), ow+len(d)), min(max(owHi, ow), ow+len(d))
			clear(d[:lo-ow])
			if lo < hi {
				copy(d[lo-ow:hi-ow], src[lo+iw0:hi+iw0])
			}
			clear(d[hi-ow:])
			continue
		}
		for i := range d {
			iw := (ow+i)*p.SW + iw0
			if iw >= 0 && iw < p.InW {
				d[i] = src[iw]
			} else {
				d[i] = 0
			}
		}
	}
}
