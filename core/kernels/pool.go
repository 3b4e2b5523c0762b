package kernels

import (
	"errors"
	"fmt"
	"math"

	"github.com/residual-go/residual/core/shape"
)

func (p PoolParams) normalized() PoolParams {
	if p.SH == 0 {
		p.SH = 1
	}
	if p.SW == 0 {
		p.SW = 1
	}
	return p
}

// Pool2D computes max or average pooling of in into out with Caffe's
// semantics (caffe/src/caffe/layers/pooling_layer.cpp):
//
//   - window (oh, ow) starts at hstart = oh*SH - PH, wstart = ow*SW - PW;
//   - MAX: the window is clipped to the image, hend = min(hstart+KH, InH),
//     hstart = max(hstart, 0); padding never wins; an empty window gives
//     -MaxFloat32, Caffe's initial value (Caffe's size rule keeps a window
//     that starts past the input when neither pad is set and the stride
//     exceeds the kernel; AVE then divides 0 by 0, as Caffe does);
//   - AVE: the divisor is the window clipped to the padded input,
//     (min(hstart+KH, InH+PH) - hstart) * (min(wstart+KW, InW+PW) - wstart),
//     taken before the window is clipped to the image for the sum.
//
// The output size is the caller's, and must be Caffe's (core/shape.Pool,
// rounded up or down): anything else panics. Global pooling is KH=InH, KW=InW.
// Zero strides mean 1. Channels are split over r's workers.
func Pool2D(r *Runner, p PoolParams, in, out []float32) {
	p = p.normalized()
	if p.C <= 0 || p.InH <= 0 || p.InW <= 0 || p.OutH <= 0 || p.OutW <= 0 || p.KH <= 0 || p.KW <= 0 ||
		p.SH <= 0 || p.SW <= 0 || p.PH < 0 || p.PW < 0 {
		panic(fmt.Sprintf("kernels: invalid PoolParams %+v", p))
	}
	// The output size must be Caffe's, rounded up or down (core/shape).
	size, k, s, pad := [2]int{p.InH, p.InW}, [2]int{p.KH, p.KW}, [2]int{p.SH, p.SW}, [2]int{p.PH, p.PW}
	ceil, errC := shape.Pool(size, k, s, pad, true)
	floor, errF := shape.Pool(size, k, s, pad, false)
	if out := [2]int{p.OutH, p.OutW}; (errC != nil || out != ceil) && (errF != nil || out != floor) {
		panic(fmt.Sprintf("kernels: PoolParams output %v, Caffe's rule gives %v (ceil) or %v (floor) (%v)", out, ceil, floor, errors.Join(errC, errF)))
	}
	if len(in) < p.C*p.InH*p.InW || len(out) < p.C*p.OutH*p.OutW {
		panic(fmt.Sprintf("kernels: Pool2D: len(in) = %d, len(out) = %d, want %d and %d",
			len(in), len(out), p.C*p.InH*p.InW, p.C*p.OutH*p.OutW))
	}
	if r == nil {
		poolChannels(&p, in, out, 0, p.C)
		return
	}
	r.lock()
	defer r.unlock()
	r.poolT = poolTask{p: p, in: in, out: out}
	r.dispatch(&r.poolT)
	r.poolT = poolTask{}
}

type poolTask struct {
	p       PoolParams
	in, out []float32
}

func (t *poolTask) run(w, nw int, _ *workspace) {
	lo, hi := share(t.p.C, w, nw)
	poolChannels(&t.p, t.in, t.out, lo, hi)
}

func poolChannels(p *PoolParams, in, out []float32, lo, hi int) {
	ip, op := p.InH*p.InW, p.OutH*p.OutW
	if p.Max && p.InW+p.PW <= maxRow && (p.OutW-1)*p.SW+p.KW <= maxRow+64 {
		for c := lo; c < hi; c++ {
			maxPoolSeparable(p, in[c*ip:(c+1)*ip], out[c*op:(c+1)*op])
		}
		return
	}
	for c := lo; c < hi; c++ {
		src := in[c*ip : (c+1)*ip]
		dst := out[c*op : (c+1)*op]
		for oh := 0; oh < p.OutH; oh++ {
			hs := oh*p.SH - p.PH
			for ow := 0; ow < p.OutW; ow++ {
				ws := ow*p.SW - p.PW
				if p.Max {
					dst[oh*p.OutW+ow] = maxWindow(src, p.InW, max(hs, 0), min(hs+p.KH, p.InH), max(ws, 0), min(ws+p.KW, p.InW))
					continue
				}
				he, we := min(hs+p.KH, p.InH+p.PH), min(ws+p.KW, p.InW+p.PW)
				size := float32((he - hs) * (we - ws))
				s := sumWindow(src, p.InW, max(hs, 0), min(he, p.InH), max(ws, 0), min(we, p.InW))
				dst[oh*p.OutW+ow] = s / size
			}
		}
	}
}

// maxRow is the widest input row maxPoolSeparable takes (its row buffers
// live on the stack).
const maxRow = 1024

// maxPoolSeparable max-pools one channel in passes over rows, each
// branch-free and vectorized in the simd build (maxInto, windowMax): per
// output row, the column maxima of the window's input rows (clipped to
// the image), then the sliding maximum of KW of them along the row, whose
// values at the stride are the outputs. The row is padded with
// -MaxFloat32, which never wins, so windows clipped at the image's edge
// need no special case. Same result as maxWindow: the largest value, NaNs
// never winning (x > m ? x : m throughout, Caffe's comparison), -MaxFloat32
// for an empty window. ResNet's pool1 (3x3, stride 2, 112x112): see doc.go.
func maxPoolSeparable(p *PoolParams, src, dst []float32) {
	var colBuf, winBuf [maxRow + 64]float32
	// col holds the padded row: PW values of -MaxFloat32, the InW column
	// maxima, then enough -MaxFloat32 for the last window.
	n := max(p.PW+p.InW, (p.OutW-1)*p.SW+p.KW)
	col, win := colBuf[:n], winBuf[:n-p.KW+1]
	for oh := 0; oh < p.OutH; oh++ {
		hs := oh*p.SH - p.PH
		h0, h1 := max(hs, 0), min(hs+p.KH, p.InH)
		for i := range col {
			col[i] = -math.MaxFloat32
		}
		body := col[p.PW : p.PW+p.InW]
		for h := h0; h < h1; h++ {
			maxInto(body, src[h*p.InW:(h+1)*p.InW])
		}
		windowMax(win, col, p.KW)
		out := dst[oh*p.OutW : (oh+1)*p.OutW]
		for ow := range out {
			out[ow] = win[ow*p.SW]
		}
	}
}

// maxIntoGeneric sets m[i] = x[i] > m[i] ? x[i] : m[i].
func maxIntoGeneric(m, x []float32) {
	x = x[:len(m)]
	for i, v := range x {
		if v > m[i] {
			m[i] = v
		}
	}
}

// windowMaxGeneric sets dst[i] to the maximum of src[i..i+k-1] (each
// window scanned in order with maxIntoGeneric's comparison).
func windowMaxGeneric(dst, src []float32, k int) {
	for i := range dst {
		m := src[i]
		for _, v := range src[i+1 : i+k] {
			if v > m {
				m = v
			}
		}
		dst[i] = m
	}
}

func maxWindow(src []float32, w, h0, h1, w0, w1 int) float32 {
	m := float32(-math.MaxFloat32)
	for h := h0; h < h1; h++ {
		for _, v := range src[h*w+w0 : h*w+w1] {
			if v > m {
				m = v
			}
		}
	}
	return m
}

func sumWindow(src []float32, w, h0, h1, w0, w1 int) float32 {
	var s float32
	for h := h0; h < h1; h++ {
		for _, v := range src[h*w+w0 : h*w+w1] {
			s += v
		}
	}
	return s
}
