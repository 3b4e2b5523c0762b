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
