package reference

import (
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/residual-go/residual/tools/convert/caffe"
)

// outputShapes returns the shapes of l's tops for bottoms of the given
// shapes (batch first), checking everything that does not need values.
func outputShapes(l *caffe.Layer, in [][]int) ([][]int, error) {
	info := layerInfo{l.Name, l.Type}
	nBottoms, nTops := 1, 1
	switch l.Type {
	case "Eltwise", "Concat":
		nBottoms = -2 // two or more
	case "Scale":
		nBottoms = -1 // one or two
	case "Split":
		nTops = -1 // one or more
	}
	switch {
	case nBottoms > 0 && len(in) != nBottoms,
		nBottoms == -2 && len(in) < 2,
		nBottoms == -1 && (len(in) < 1 || len(in) > 2):
		return nil, layerErr(info, "has %d bottoms", len(in))
	case nTops > 0 && len(l.Tops) != nTops,
		nTops == -1 && len(l.Tops) < 1:
		return nil, layerErr(info, "has %d tops", len(l.Tops))
	}
	x := in[0]
	same := func() [][]int { return [][]int{slices.Clone(x)} }
	switch l.Type {
	case "Convolution":
		g, err := convParams(l, x)
		if err != nil {
			return nil, err
		}
		return [][]int{{x[0], g.numOut, g.oh, g.ow}}, nil
	case "Pooling":
		g, err := poolParams(l, x)
		if err != nil {
			return nil, err
		}
		return [][]int{{x[0], x[1], g.oh, g.ow}}, nil
	case "InnerProduct":
		p := ipParam(l)
		axis, err := canonAxis(info, p.Axis, len(x))
		if err != nil {
			return nil, err
		}
		if p.NumOutput <= 0 {
			return nil, layerErr(info, "num_output is %d", p.NumOutput)
		}
		return [][]int{append(slices.Clone(x[:axis]), p.NumOutput)}, nil
	case "BatchNorm":
		if len(x) < 2 {
			return nil, layerErr(info, "bottom has shape %v; want at least N and C", x)
		}
		return same(), nil
	case "Scale":
		if _, _, _, err := scaleSpan(l, in); err != nil {
			return nil, err
		}
		return same(), nil
	case "Eltwise":
		for i, s := range in[1:] {
			if !slices.Equal(s, x) {
				return nil, layerErr(info, "bottom %d has shape %v, bottom 0 has %v", i+1, s, x)
			}
		}
		return same(), nil
	case "ReLU", "Dropout":
		return same(), nil
	case "Softmax":
		if _, err := canonAxis(info, softmaxParam(l).Axis, len(x)); err != nil {
			return nil, err
		}
		return same(), nil
	case "Split":
		out := make([][]int, len(l.Tops))
		for i := range out {
			out[i] = slices.Clone(x)
		}
		return out, nil
	case "Concat":
		axis, err := canonAxis(info, concatParam(l).Axis, len(x))
		if err != nil {
			return nil, err
		}
		out := slices.Clone(x)
		for i, s := range in[1:] {
			if len(s) != len(x) {
				return nil, layerErr(info, "bottom %d has %d axes, bottom 0 has %d", i+1, len(s), len(x))
			}
			for a := range s {
				if a != axis && s[a] != x[a] {
					return nil, layerErr(info, "bottom %d has shape %v, bottom 0 has %v: only axis %d may differ", i+1, s, x, axis)
				}
			}
			out[axis] += s[axis]
		}
		return [][]int{out}, nil
	case "Flatten":
		p := flattenParam(l)
		a, err := canonAxis(info, p.Axis, len(x))
		if err != nil {
			return nil, err
		}
		e, err := canonAxis(info, p.EndAxis, len(x))
		if err != nil {
			return nil, err
		}
		if e < a {
			return nil, layerErr(info, "end_axis %d is before axis %d", p.EndAxis, p.Axis)
		}
		out := slices.Clone(x[:a])
		out = append(out, count(x[a:e+1]))
		return [][]int{append(out, x[e+1:]...)}, nil
	}
	return nil, &UnsupportedLayerError{Layer: l.Name, Type: l.Type}
}

// compute fills tops (already shaped by outputShapes) from bottoms.
func compute(l *caffe.Layer, bottoms, tops []*Tensor) error {
	switch l.Type {
	case "Convolution":
		return convolution(l, bottoms[0], tops[0])
	case "Pooling":
		return pooling(l, bottoms[0], tops[0])
	case "InnerProduct":
		return innerProduct(l, bottoms[0], tops[0])
	case "BatchNorm":
		return batchNorm(l, bottoms[0], tops[0])
	case "Scale":
		return scale(l, bottoms, tops[0])
	case "Eltwise":
		return eltwise(l, bottoms, tops[0])
	case "ReLU":
		relu(l, bottoms[0], tops[0])
	case "Softmax":
		softmax(l, bottoms[0], tops[0])
	case "Concat":
		concat(l, bottoms, tops[0])
	case "Dropout", "Flatten", "Split":
		// Dropout at test time copies (Caffe scales during training only);
		// Flatten and Split keep the values in order.
		for _, t := range tops {
			copy(t.Data, bottoms[0].Data)
		}
	default:
		return &UnsupportedLayerError{Layer: l.Name, Type: l.Type}
	}
	return nil
}

// canonAxis maps a possibly negative axis onto [0, ndim), as Caffe's
// Blob::CanonicalAxisIndex does.
func canonAxis(info layerInfo, axis, ndim int) (int, error) {
	a := axis
	if a < 0 {
		a += ndim
	}
	if a < 0 || a >= ndim {
		return 0, layerErr(info, "axis %d is out of range for a %d-axis blob", axis, ndim)
	}
	return a, nil
}

// ---------------------------------------------------------------- Convolution

type convGeom struct {
	numOut, group          int
	kh, kw, ph, pw, sh, sw int
	dh, dw                 int
	bias                   bool
	oh, ow                 int
}

// pair resolves a repeated spatial field: none -> def, one value -> both, two -> h, w.
func pair(info layerInfo, field string, v []int, def int) (int, int, error) {
	switch len(v) {
	case 0:
		return def, def, nil
	case 1:
		return v[0], v[0], nil
	case 2:
		return v[0], v[1], nil
	}
	return 0, 0, &UnsupportedLayerError{Layer: info.name, Type: info.typ, What: "a " + field + " with more than 2 values (N-D convolution)"}
}

func convParams(l *caffe.Layer, x []int) (convGeom, error) {
	info := layerInfo{l.Name, l.Type}
	p := l.Conv
	if p == nil {
		return convGeom{}, layerErr(info, "has no convolution_param (num_output and kernel_size are required)")
	}
	if p.Axis != 1 {
		return convGeom{}, &UnsupportedLayerError{Layer: l.Name, Type: l.Type, What: "axis other than 1"}
	}
	if len(x) != 4 {
		return convGeom{}, layerErr(info, "bottom has shape %v; want N, C, H, W", x)
	}
	g := convGeom{numOut: p.NumOutput, group: p.Group, bias: p.BiasTerm}
	var err error
	if p.HasKernelHW {
		g.kh, g.kw = p.KernelH, p.KernelW
	} else if g.kh, g.kw, err = pair(info, "kernel_size", p.KernelSize, 0); err != nil {
		return g, err
	}
	if p.HasPadHW {
		g.ph, g.pw = p.PadH, p.PadW
	} else if g.ph, g.pw, err = pair(info, "pad", p.Pad, 0); err != nil {
		return g, err
	}
	if p.HasStrideHW {
		g.sh, g.sw = p.StrideH, p.StrideW
	} else if g.sh, g.sw, err = pair(info, "stride", p.Stride, 1); err != nil {
		return g, err
	}
	if g.dh, g.dw, err = pair(info, "dilation", p.Dilation, 1); err != nil {
		return g, err
	}
	switch {
	case g.numOut <= 0:
		return g, layerErr(info, "num_output is %d", g.numOut)
	case g.kh <= 0 || g.kw <= 0:
		return g, layerErr(info, "kernel is %dx%d", g.kh, g.kw)
	case g.sh <= 0 || g.sw <= 0 || g.dh <= 0 || g.dw <= 0 || g.ph < 0 || g.pw < 0:
		return g, layerErr(info, "stride %dx%d, dilation %dx%d, pad %dx%d: stride and dilation must be positive, pad non-negative", g.sh, g.sw, g.dh, g.dw, g.ph, g.pw)
	case g.group <= 0 || x[1]%g.group != 0 || g.numOut%g.group != 0:
		return g, layerErr(info, "group %d must divide the %d input channels and num_output %d", g.group, x[1], g.numOut)
	}
	// Caffe (conv_layer.cpp, compute_output_shape):
	// out = (in + 2*pad - (dilation*(kernel-1)+1)) / stride + 1.
	extH, extW := g.dh*(g.kh-1)+1, g.dw*(g.kw-1)+1
	if x[2]+2*g.ph < extH || x[3]+2*g.pw < extW {
		return g, layerErr(info, "kernel extent %dx%d is larger than the padded input %dx%d", extH, extW, x[2]+2*g.ph, x[3]+2*g.pw)
	}
	g.oh = (x[2]+2*g.ph-extH)/g.sh + 1
	g.ow = (x[3]+2*g.pw-extW)/g.sw + 1
	return g, nil
}

// convolution: top[n][o][y][x] = bias[o] + sum over the input channels c of
// o's group and the kernel taps (i, j) of
// w[o][c][i][j] * bottom[n][c][y*stride - pad + i*dilation][x*stride - pad + j*dilation],
// taps that fall in the zero padding contributing nothing.
//
// As in Caffe, the sum is computed as a matrix product: im2col lays the
// bottom values each tap (c, i, j) sees out as a row of oh*ow values (zeros
// in the padding), and each output plane is the weighted sum of those rows.
func convolution(l *caffe.Layer, in, out *Tensor) error {
	g, err := convParams(l, in.Shape)
	if err != nil {
		return err
	}
	if err := checkBlobs(l, []*Tensor{in}); err != nil {
		return err
	}
	n, c, h, w := in.Shape[0], in.Shape[1], in.Shape[2], in.Shape[3]
	cg, og := c/g.group, g.numOut/g.group // channels per group in and out
	taps := cg * g.kh * g.kw              // rows of the column matrix
	plane := g.oh * g.ow
	weight := values(l.Blobs[0])
	// Columns are processed in tiles of about 256 KiB of the column matrix so
	// that a tile stays in cache while every output channel reads it.
	tile := min(plane, max(16, 32768/taps))
	col := make([]float64, taps*plane)
	for b := range n {
		for grp := range g.group {
			im2col(col, in.Data[(b*c+grp*cg)*h*w:][:cg*h*w], cg, h, w, g)
			parallelFor(og, func(lo, hi int) {
				for t0 := 0; t0 < plane; t0 += tile {
					t1 := min(plane, t0+tile)
					for o := grp*og + lo; o < grp*og+hi; o++ {
						dst := out.Data[(b*g.numOut+o)*plane:][t0:t1]
						if g.bias {
							for p := range dst {
								dst[p] = l.Blobs[1].At(o)
							}
						}
						// Four taps per pass over dst (fewer loads and stores
						// of dst); the products are added in tap order.
						ws := weight[o*taps:][:taps]
						k := 0
						for ; k+4 <= taps; k += 4 {
							w0, w1, w2, w3 := ws[k], ws[k+1], ws[k+2], ws[k+3]
							c0 := col[k*plane:][t0:t1]
							c1 := col[(k+1)*plane:][t0:t1][:len(c0)]
							c2 := col[(k+2)*plane:][t0:t1][:len(c0)]
							c3 := col[(k+3)*plane:][t0:t1][:len(c0)]
							d := dst[:len(c0)]
							for p := range c0 {
								d[p] = d[p] + w0*c0[p] + w1*c1[p] + w2*c2[p] + w3*c3[p]
							}
						}
						for ; k < taps; k++ {
							for p, v := range col[k*plane:][t0:t1] {
								dst[p] += ws[k] * v
							}
						}
					}
				}
			})
		}
	}
	return nil
}

// values returns a blob's values as float64.
func values(b *caffe.Blob) []float64 {
	v := make([]float64, b.Len())
	for i := range v {
		v[i] = b.At(i)
	}
	return v
}

// im2col fills col[(ci*kh+i)*kw+j][y*ow+x] with the bottom value tap (i, j)
// of output (y, x) sees in channel ci, or 0 where that falls in the padding.
func im2col(col, src []float64, channels, h, w int, g convGeom) {
	plane := g.oh * g.ow
	for ci := range channels {
		for i := range g.kh {
			for j := range g.kw {
				row := col[((ci*g.kh+i)*g.kw+j)*plane:][:plane]
				for y := range g.oh {
					iy := y*g.sh - g.ph + i*g.dh
					for x := range g.ow {
						ix := x*g.sw - g.pw + j*g.dw
						v := 0.0
						if iy >= 0 && iy < h && ix >= 0 && ix < w {
							v = src[(ci*h+iy)*w+ix]
						}
						row[y*g.ow+x] = v
					}
				}
			}
		}
	}
}

// parallelFor splits [0, n) into one contiguous chunk per CPU. Each index is
// handled by exactly one goroutine, so results do not depend on scheduling.
func parallelFor(n int, f func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { f(i*n/workers, (i+1)*n/workers) })
	}
	wg.Wait()
}

// ---------------------------------------------------------------- Pooling

type poolGeom struct {
	method                 int
	kh, kw, ph, pw, sh, sw int
	oh, ow                 int
}

func poolParams(l *caffe.Layer, x []int) (poolGeom, error) {
	info := layerInfo{l.Name, l.Type}
	p := l.Pooling
	if p == nil {
		p = caffe.DefaultPoolingParam()
	}
	if len(x) != 4 {
		return poolGeom{}, layerErr(info, "bottom has shape %v; want N, C, H, W", x)
	}
	g := poolGeom{method: p.Pool}
	if p.Pool != caffe.PoolMax && p.Pool != caffe.PoolAve {
		return g, &UnsupportedLayerError{Layer: l.Name, Type: l.Type, What: "pooling method other than MAX and AVE"}
	}
	h, w := x[2], x[3]
	if p.HasPadHW {
		g.ph, g.pw = p.PadH, p.PadW
	} else {
		g.ph, g.pw = p.Pad, p.Pad
	}
	if p.HasStrideHW {
		g.sh, g.sw = p.StrideH, p.StrideW
	} else {
		g.sh, g.sw = p.Stride, p.Stride
	}
	if p.GlobalPooling {
		// Caffe: the kernel is the whole plane; pad 0 and stride 1 are required.
		g.kh, g.kw = h, w
		if g.ph != 0 || g.pw != 0 || g.sh != 1 || g.sw != 1 {
			return g, layerErr(info, "global_pooling requires pad 0 and stride 1")
		}
	} else if p.HasKernelHW {
		g.kh, g.kw = p.KernelH, p.KernelW
	} else {
		g.kh, g.kw = p.KernelSize, p.KernelSize
	}
	switch {
	case g.kh <= 0 || g.kw <= 0:
		return g, layerErr(info, "kernel is %dx%d (kernel_size is required unless global_pooling)", g.kh, g.kw)
	case g.sh <= 0 || g.sw <= 0:
		return g, layerErr(info, "stride is %dx%d", g.sh, g.sw)
	case g.ph < 0 || g.pw < 0 || ((g.ph != 0 || g.pw != 0) && (g.ph >= g.kh || g.pw >= g.kw)):
		return g, layerErr(info, "pad %dx%d must be smaller than the kernel %dx%d", g.ph, g.pw, g.kh, g.kw)
	}
	// Caffe (pooling_layer.cpp, Reshape):
	// pooled = ceil((in + 2*pad - kernel) / stride) + 1 (floor with round_mode FLOOR),
	// the division in float32 (static_cast<float>), which is exact below 2^24 ...
	round := math.Ceil
	if p.RoundMode == caffe.RoundFloor {
		round = math.Floor
	}
	g.oh = int(round(float64(float32(h+2*g.ph-g.kh)/float32(g.sh)))) + 1
	g.ow = int(round(float64(float32(w+2*g.pw-g.kw)/float32(g.sw)))) + 1
	// ... and when there is padding, the last window must start inside the
	// image (or the left/top padding), not in the right/bottom padding.
	if g.ph != 0 || g.pw != 0 {
		if (g.oh-1)*g.sh >= h+g.ph {
			g.oh--
		}
		if (g.ow-1)*g.sw >= w+g.pw {
			g.ow--
		}
	}
	if g.oh <= 0 || g.ow <= 0 {
		return g, layerErr(info, "kernel %dx%d with pad %dx%d gives an empty output on a %dx%d input", g.kh, g.kw, g.ph, g.pw, h, w)
	}
	return g, nil
}

// pooling follows Caffe's Forward_cpu: for output (y, x) the window starts at
// (y*stride - pad, x*stride - pad). MAX: the maximum over the window clipped
// to the image. AVE: the window is first clipped to the padded image
// (end = min(start+kernel, in+pad)); its area there is the divisor; then it
// is clipped to the image and the values inside are summed.
func pooling(l *caffe.Layer, in, out *Tensor) error {
	g, err := poolParams(l, in.Shape)
	if err != nil {
		return err
	}
	n, c, h, w := in.Shape[0], in.Shape[1], in.Shape[2], in.Shape[3]
	for p := range n * c {
		src := in.Data[p*h*w:][:h*w]
		dst := out.Data[p*g.oh*g.ow:][:g.oh*g.ow]
		for y := range g.oh {
			for x := range g.ow {
				hs, ws := y*g.sh-g.ph, x*g.sw-g.pw
				var v float64
				if g.method == caffe.PoolMax {
					he, we := min(hs+g.kh, h), min(ws+g.kw, w)
					hs, ws = max(hs, 0), max(ws, 0)
					v = -math.MaxFloat32 // Caffe starts from -FLT_MAX
					for i := hs; i < he; i++ {
						for j := ws; j < we; j++ {
							v = max(v, src[i*w+j])
						}
					}
				} else {
					he, we := min(hs+g.kh, h+g.ph), min(ws+g.kw, w+g.pw)
					size := (he - hs) * (we - ws)
					hs, ws = max(hs, 0), max(ws, 0)
					he, we = min(he, h), min(we, w)
					for i := hs; i < he; i++ {
						for j := ws; j < we; j++ {
							v += src[i*w+j]
						}
					}
					v /= float64(size)
				}
				dst[y*g.ow+x] = v
			}
		}
	}
	return nil
}

// ---------------------------------------------------------------- InnerProduct

func ipParam(l *caffe.Layer) *caffe.InnerProductParam {
	if l.InnerProd != nil {
		return l.InnerProd
	}
	return caffe.DefaultInnerProductParam()
}

// innerProduct: with M = product of the axes before axis and K of the axes
// from it, top[m][n] = bias[n] + sum_k bottom[m][k] * W[n][k], W stored
// [N][K], or [K][N] with transpose.
func innerProduct(l *caffe.Layer, in, out *Tensor) error {
	p := ipParam(l)
	axis, _ := canonAxis(layerInfo{l.Name, l.Type}, p.Axis, len(in.Shape))
	m, k, nOut := count(in.Shape[:axis]), count(in.Shape[axis:]), p.NumOutput
	if err := checkBlobs(l, []*Tensor{in}); err != nil {
		return err
	}
	W := l.Blobs[0]
	for r := range m {
		x := in.Data[r*k:][:k]
		for j := range nOut {
			var s float64
			for i, xv := range x {
				if p.Transpose {
					s += xv * W.At(i*nOut+j)
				} else {
					s += xv * W.At(j*k+i)
				}
			}
			if p.BiasTerm {
				s += l.Blobs[1].At(j)
			}
			out.Data[r*nOut+j] = s
		}
	}
	return nil
}

// ---------------------------------------------------------------- BatchNorm

// batchNorm: y = (x - mean[c]) / sqrt(var[c] + eps) per channel c (axis 1).
// With global statistics mean = blob0/s and var = blob1/s where s is the
// single value of blob2 (s == 0 makes both 0: Caffe's
// scale_factor = s == 0 ? 0 : 1/s). Otherwise the mean and the (biased)
// variance over the batch and spatial positions are used.
func batchNorm(l *caffe.Layer, in, out *Tensor) error {
	p := l.BatchNorm
	if p == nil {
		p = caffe.DefaultBatchNormParam()
	}
	global := p.UseGlobalStats == nil || *p.UseGlobalStats // Caffe: default true in the TEST phase
	n, c := in.Shape[0], in.Shape[1]
	spatial := count(in.Shape[2:])
	mean, variance := make([]float64, c), make([]float64, c)
	if global {
		if err := checkBlobs(l, []*Tensor{in}); err != nil {
			return err
		}
		factor := 0.0
		if s := l.Blobs[2].At(0); s != 0 {
			factor = 1 / s
		}
		for ch := range c {
			mean[ch] = l.Blobs[0].At(ch) * factor
			variance[ch] = l.Blobs[1].At(ch) * factor
		}
	} else {
		for ch := range c {
			for b := range n {
				for _, v := range in.Data[(b*c+ch)*spatial:][:spatial] {
					mean[ch] += v
				}
			}
			mean[ch] /= float64(n * spatial)
			for b := range n {
				for _, v := range in.Data[(b*c+ch)*spatial:][:spatial] {
					variance[ch] += (v - mean[ch]) * (v - mean[ch])
				}
			}
			variance[ch] /= float64(n * spatial)
		}
	}
	for b := range n {
		for ch := range c {
			std := math.Sqrt(variance[ch] + p.Eps)
			off := (b*c + ch) * spatial
			for i := range spatial {
				out.Data[off+i] = (in.Data[off+i] - mean[ch]) / std
			}
		}
	}
	return nil
}

// ---------------------------------------------------------------- Scale

// scaleSpan returns the outer, scale and inner counts of a Scale layer:
// gamma covers the axes [axis, axis+num_axes) of bottom 0 (num_axes -1: to
// the end), or, with two bottoms, the shape of bottom 1 starting at axis.
func scaleSpan(l *caffe.Layer, in [][]int) (outer, dim, inner int, err error) {
	info := layerInfo{l.Name, l.Type}
	p := l.Scale
	if p == nil {
		p = caffe.DefaultScaleParam()
	}
	x := in[0]
	axis, err := canonAxis(info, p.Axis, len(x))
	if err != nil {
		return 0, 0, 0, err
	}
	end := len(x)
	if len(in) == 2 {
		end = axis + len(in[1])
		if end > len(x) || !slices.Equal(x[axis:end], in[1]) {
			return 0, 0, 0, layerErr(info, "scale bottom shape %v does not match bottom %v from axis %d", in[1], x, axis)
		}
	} else if p.NumAxes >= 0 {
		end = axis + p.NumAxes
		if end > len(x) {
			return 0, 0, 0, layerErr(info, "num_axes %d from axis %d exceeds the bottom's %d axes", p.NumAxes, axis, len(x))
		}
	} else if p.NumAxes != -1 {
		return 0, 0, 0, layerErr(info, "num_axes %d; want -1 or more", p.NumAxes)
	}
	return count(x[:axis]), count(x[axis:end]), count(x[end:]), nil
}

// scale: top = bottom * gamma[d] (+ beta[d]) for each index d of the scaled
// span. gamma is blob 0 (or bottom 1), beta the next blob when bias_term.
func scale(l *caffe.Layer, bottoms []*Tensor, out *Tensor) error {
	shapes := make([][]int, len(bottoms))
	for i, b := range bottoms {
		shapes[i] = b.Shape
	}
	outer, dim, inner, err := scaleSpan(l, shapes)
	if err != nil {
		return err
	}
	p := l.Scale
	if p == nil {
		p = caffe.DefaultScaleParam()
	}
	if err := checkBlobs(l, bottoms); err != nil {
		return err
	}
	gamma := func(d int) float64 {
		if len(bottoms) == 2 {
			return bottoms[1].Data[d]
		}
		return l.Blobs[0].At(d)
	}
	for o := range outer {
		for d := range dim {
			g, beta := gamma(d), 0.0
			if p.BiasTerm {
				beta = l.Blobs[len(l.Blobs)-1].At(d)
			}
			off := (o*dim + d) * inner
			for i := range inner {
				out.Data[off+i] = bottoms[0].Data[off+i]*g + beta
			}
		}
	}
	return nil
}

// ---------------------------------------------------------------- Eltwise

// eltwise: SUM = sum_i coeff[i]*bottom_i (coeff all 1 when not given),
// PROD = product of the bottoms, MAX = elementwise maximum.
func eltwise(l *caffe.Layer, bottoms []*Tensor, out *Tensor) error {
	p := l.Eltwise
	if p == nil {
		p = caffe.DefaultEltwiseParam()
	}
	info := layerInfo{l.Name, l.Type}
	coeff := make([]float64, len(bottoms))
	for i := range coeff {
		coeff[i] = 1
	}
	if len(p.Coeff) > 0 {
		if p.Operation != caffe.EltwiseSum {
			return layerErr(info, "coeff is only allowed with operation SUM")
		}
		if len(p.Coeff) != len(bottoms) {
			return layerErr(info, "%d coeffs for %d bottoms", len(p.Coeff), len(bottoms))
		}
		copy(coeff, p.Coeff)
	}
	for i := range out.Data {
		var v float64
		switch p.Operation {
		case caffe.EltwiseSum:
			for b, t := range bottoms {
				v += coeff[b] * t.Data[i]
			}
		case caffe.EltwiseProd:
			v = 1
			for _, t := range bottoms {
				v *= t.Data[i]
			}
		case caffe.EltwiseMax:
			v = bottoms[0].Data[i]
			for _, t := range bottoms[1:] {
				v = max(v, t.Data[i])
			}
		default:
			return layerErr(info, "unknown operation %d", p.Operation)
		}
		out.Data[i] = v
	}
	return nil
}

// ---------------------------------------------------------------- ReLU, Softmax, Concat

// relu: y = max(x, 0) + negative_slope * min(x, 0).
func relu(l *caffe.Layer, in, out *Tensor) {
	slope := 0.0
	if l.ReLU != nil {
		slope = l.ReLU.NegativeSlope
	}
	for i, v := range in.Data {
		out.Data[i] = max(v, 0) + slope*min(v, 0)
	}
}

func softmaxParam(l *caffe.Layer) *caffe.SoftmaxParam {
	if l.Softmax != nil {
		return l.Softmax
	}
	return caffe.DefaultSoftmaxParam()
}

// softmax over axis: y = exp(x - max) / sum exp(x - max), independently for
// every index of the other axes.
func softmax(l *caffe.Layer, in, out *Tensor) {
	axis, _ := canonAxis(layerInfo{l.Name, l.Type}, softmaxParam(l).Axis, len(in.Shape))
	outer, dim, inner := count(in.Shape[:axis]), in.Shape[axis], count(in.Shape[axis+1:])
	for o := range outer {
		for i := range inner {
			at := func(d int) int { return (o*dim+d)*inner + i }
			m := math.Inf(-1)
			for d := range dim {
				m = max(m, in.Data[at(d)])
			}
			var sum float64
			for d := range dim {
				e := math.Exp(in.Data[at(d)] - m)
				out.Data[at(d)] = e
				sum += e
			}
			for d := range dim {
				out.Data[at(d)] /= sum
			}
		}
	}
}

func concatParam(l *caffe.Layer) *caffe.ConcatParam {
	if l.Concat != nil {
		return l.Concat
	}
	return caffe.DefaultConcatParam()
}

func flattenParam(l *caffe.Layer) *caffe.FlattenParam {
	if l.Flatten != nil {
		return l.Flatten
	}
	return caffe.DefaultFlattenParam()
}

// concat: the bottoms one after another along axis.
func concat(l *caffe.Layer, bottoms []*Tensor, out *Tensor) {
	axis, _ := canonAxis(layerInfo{l.Name, l.Type}, concatParam(l).Axis, len(out.Shape))
	outer, inner := count(out.Shape[:axis]), count(out.Shape[axis+1:])
	pos := 0
	for o := range outer {
		for _, b := range bottoms {
			n := b.Shape[axis] * inner
			pos += copy(out.Data[pos:], b.Data[o*n:][:n])
		}
	}
}
