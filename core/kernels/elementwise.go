package kernels

import (
	"fmt"
	"math"
)

// Eltwise combines equally sized inputs: sum (with coeffs; nil = all 1), prod or max, then act.
// out may alias any input. Caffe: EltwiseLayer (the MAX result is the value, the argmax is not kept).
func Eltwise(op int, coeffs []float32, ins [][]float32, out []float32, act Act) {
	if len(ins) == 0 {
		panic("kernels: Eltwise needs at least one input")
	}
	if coeffs != nil && len(coeffs) != len(ins) {
		panic(fmt.Sprintf("kernels: Eltwise: %d coeffs for %d inputs", len(coeffs), len(ins)))
	}
	n := len(out)
	for i, in := range ins {
		if len(in) < n {
			panic(fmt.Sprintf("kernels: Eltwise: len(ins[%d]) = %d < len(out) = %d", i, len(in), n))
		}
	}
	switch op {
	case EltSum:
		if len(ins) == 2 && coeffs == nil { // ResNet's shortcut: out = act(a + b) in one pass
			addAct(ins[0][:n], ins[1][:n], out, act)
			return
		}
		for i := range out {
			var s float32
			for j, in := range ins {
				if coeffs == nil {
					s += in[i]
				} else {
					s += coeffs[j] * in[i]
				}
			}
			out[i] = s
		}
	case EltProd:
		for i := range out {
			s := ins[0][i]
			for _, in := range ins[1:] {
				s *= in[i]
			}
			out[i] = s
		}
	case EltMax:
		for i := range out {
			s := ins[0][i]
			for _, in := range ins[1:] {
				if in[i] > s {
					s = in[i]
				}
			}
			out[i] = s
		}
	default:
		panic(fmt.Sprintf("kernels: unknown Eltwise op %d", op))
	}
	activate(out, out, act)
}

// Affine computes out[c][i] = act(in[c][i]*scale[c] + bias[c]) for c < channels, i < hw. bias may be nil.
// out may alias in. (Caffe's Scale layer with an optional bias; BatchNorm at inference is one too.)
func Affine(channels, hw int, in, scale, bias, out []float32, act Act) {
	if len(in) < channels*hw || len(out) < channels*hw || len(scale) < channels || (bias != nil && len(bias) < channels) {
		panic(fmt.Sprintf("kernels: Affine: slices too short for %d channels x %d", channels, hw))
	}
	for c := 0; c < channels; c++ {
		s := scale[c]
		var b float32
		if bias != nil {
			b = bias[c]
		}
		src, dst := in[c*hw:(c+1)*hw], out[c*hw:(c+1)*hw]
		for i, v := range src {
			dst[i] = v*s + b
		}
		activate(dst, dst, act)
	}
}

// Activate applies act elementwise (out may alias in).
func Activate(in, out []float32, act Act) {
	if len(out) < len(in) {
		panic(fmt.Sprintf("kernels: Activate: len(out) = %d < len(in) = %d", len(out), len(in)))
	}
	activate(in, out, act)
}

// InnerProduct computes out[n] = act(sum_k w[n*k+j]*in[j] + bias[n]) for n < len(out); w is N x K. bias may be nil.
// K is len(in); out must not overlap in or w. Rows are split over r's workers.
func InnerProduct(r *Runner, in, w, bias, out []float32, act Act) {
	n, k := len(out), len(in)
	if len(w) < n*k || (bias != nil && len(bias) < n) {
		panic(fmt.Sprintf("kernels: InnerProduct: len(w) = %d, len(bias) = %d for %d outputs x %d inputs", len(w), len(bias), n, k))
	}
	g := gemmArgs{m: n, n: 1, k: k, a: w, lda: k, b: in, ldb: 1, c: out, ldc: 1, bias: bias, act: act}
	if r == nil {
		runGemm(&g, 0, 1, nil) // a single column never packs: no workspace needed
		return
	}
	r.lock()
	defer r.unlock()
	r.gemm(g, nil)
}

// Softmax over channels at each of hw positions (Caffe: subtract the max, exp, normalize).
// out may alias in. exp is math.Exp in float64 and the sum is float64, so the
// result is the correctly rounded softmax of the float32 inputs to within a
// few ulps.
func Softmax(channels, hw int, in, out []float32) {
	if len(in) < channels*hw || len(out) < channels*hw {
		panic(fmt.Sprintf("kernels: Softmax: slices too short for %d channels x %d", channels, hw))
	}
	for i := 0; i < hw; i++ {
		m := float32(math.Inf(-1))
		for c := 0; c < channels; c++ {
			m = max(m, in[c*hw+i])
		}
		var sum float64
		for c := 0; c < channels; c++ {
			e := math.Exp(float64(in[c*hw+i] - m))
			out[c*hw+i] = float32(e)
			sum += e
		}
		for c := 0; c < channels; c++ {
			out[c*hw+i] = float32(float64(out[c*hw+i]) / sum)
		}
	}
}
