package core

import (
	"fmt"
	"math"

	"github.com/residual-go/residual/core/kernels"
	"github.com/residual-go/residual/core/preprocess"
	"github.com/residual-go/residual/core/weights"
)

// Class activation maps (Zhou et al., CVPR 2016, "Learning Deep Features for
// Discriminative Localization"). A network that ends in global average
// pooling followed by one inner product computes logit_c = b_c +
// mean_xy sum_k W[c,k] F_k(x,y), where F is the last convolutional output
// (ResNet's pool5 input: 2048 x 7 x 7 for a 224 crop). The map
//
//	CAM_c(x, y) = sum_k W[c,k] F_k(x, y)
//
// is therefore exact and costs no second forward pass: F is kept as a tap of
// the compiled program, W are the inner product's weights (the bias is not
// part of the map).

// camSource is where a manifest's class activation maps come from.
type camSource struct {
	feature string // the blob F (the global pooling's input)
	shape   [3]int // F's channels, height, width
	weight  string // W: the inner product's weight tensor, classes x channels
	classes int
}

// findCAM looks for an average pooling over the whole input whose output (directly or
// through a flatten) is read only by an inner product, whose output is the
// network's output or goes through nothing but a softmax to it: then class c
// of the output is row c of the inner product, and its map is well defined.
func findCAM(m *weights.Manifest) (camSource, bool) {
	readers := map[string][]int{} // blob -> ops reading it (blob names are reused in place: compare op order)
	for i, op := range m.Ops {
		for _, in := range op.Inputs {
			readers[in] = append(readers[in], i)
		}
	}
	next := func(i int) (int, bool) { // the single reader of op i's output, after i
		var r []int
		for _, j := range readers[m.Ops[i].Output] {
			if j > i {
				r = append(r, j)
			}
		}
		if len(r) != 1 {
			return 0, false
		}
		return r[0], true
	}
	shapes := map[string][3]int{m.Input.Name: {m.Input.Channels, m.Input.Height, m.Input.Width}}
	var found camSource
	ok := false
	for i, op := range m.Ops {
		in := shapes[op.Inputs[0]]
		shapes[op.Output] = op.OutShape
		// Global average pooling: ResNet's pool5 says kernel_size 7 rather
		// than global_pooling, so any average pooling whose one window is
		// the whole unpadded input.
		if op.Type != weights.OpPool || op.Pool != "ave" || op.Kernel != [2]int{in[1], in[2]} || op.Pad != [2]int{} ||
			op.OutShape[1] != 1 || op.OutShape[2] != 1 {
			continue
		}
		j, one := next(i)
		if one && m.Ops[j].Type == weights.OpFlatten {
			j, one = next(j)
		}
		if !one || m.Ops[j].Type != weights.OpInnerProduct || m.Ops[j].ReLU {
			continue
		}
		ip := &m.Ops[j]
		out := ip.Output
		if out != m.Output {
			k, one := next(j)
			if !one || m.Ops[k].Type != weights.OpSoftmax || m.Ops[k].Output != m.Output || k != len(m.Ops)-1 {
				continue
			}
		}
		found = camSource{feature: op.Inputs[0], shape: in, weight: ip.Weight, classes: ip.OutShape[0]}
		ok = true
	}
	return found, ok
}

// ClassMap is the class activation map of one class for one classified
// image.
type ClassMap struct {
	Class int `json:"index"`
	// GridW x GridH is the size of the last convolutional features (7 x 7
	// for a 224 crop of a ResNet).
	GridW int `json:"grid_w"`
	GridH int `json:"grid_h"`
	// Crops holds the raw map of every crop (GridH rows of GridW values,
	// row-major), in the crops' order (see preprocess.Crops), each in its
	// crop's own orientation (a mirrored crop's map is mirrored too).
	Crops [][]float32 `json:"-"`
	// Layout is where the crops lie in the resized image.
	Layout preprocess.Layout `json:"-"`
	// Placed is the map on the resized image (Layout.W x Layout.H,
	// row-major): each crop's map upsampled bilinearly to its window (a
	// mirrored crop's flipped back), averaged where windows overlap, NaN
	// where no crop lies (outside the center crop with 1 crop).
	Placed []float32 `json:"-"`
}

// Center returns the raw map of the center crop (GridH x GridW, row-major):
// crop 0 of 1, crop 4 of 10.
func (c *ClassMap) Center() []float32 {
	if len(c.Crops) == 10 {
		return c.Crops[4]
	}
	return c.Crops[0]
}

// Grid returns Center as GridH rows of GridW values.
func (c *ClassMap) Grid() [][]float32 {
	g := make([][]float32, c.GridH)
	for y := range g {
		g[y] = c.Center()[y*c.GridW : (y+1)*c.GridW]
	}
	return g
}

// camWeights gives row c of W, widened exactly, whatever holds it.
type camWeights struct {
	f16 []uint16
	f32 []float32
	k   int
}

func (w *camWeights) row(c int, dst []float64) {
	if w.f32 != nil {
		for k, v := range w.f32[c*w.k : (c+1)*w.k] {
			dst[k] = float64(v)
		}
		return
	}
	wide := make([]float32, w.k)
	kernels.WidenF16(wide, w.f16[c*w.k:(c+1)*w.k])
	for k, v := range wide {
		dst[k] = float64(v)
	}
}

// keepCAMWeights returns W of src, copied when the shard bytes are about to
// be released (copy true).
func keepCAMWeights(w *weights.Weights, src camSource, copyBytes bool) (*camWeights, error) {
	cw := &camWeights{k: src.shape[0]}
	if f := w.F32(src.weight); f != nil {
		cw.f32 = f
	} else if h := w.F16(src.weight); h != nil {
		cw.f16 = h
	} else {
		return nil, fmt.Errorf("core: the weights of %q were released before the class activation maps kept them", src.weight)
	}
	if copyBytes {
		cw.f32 = append([]float32(nil), cw.f32...)
		cw.f16 = append([]uint16(nil), cw.f16...)
	}
	return cw, nil
}

// classMaps computes the maps of classes from the features of n crops
// (n x C x H x W, crop after crop) laid out as l.
func classMaps(src camSource, w *camWeights, features []float32, n int, l preprocess.Layout, classes []int) []ClassMap {
	c, h, wd := src.shape[0], src.shape[1], src.shape[2]
	plane := h * wd
	row := make([]float64, c)
	acc := make([]float64, plane)
	maps := make([]ClassMap, len(classes))
	for m, class := range classes {
		w.row(class, row)
		cm := ClassMap{Class: class, GridW: wd, GridH: h, Layout: l}
		for i := range n {
			f := features[i*c*plane : (i+1)*c*plane]
			clear(acc)
			for k, wk := range row {
				for p, v := range f[k*plane : (k+1)*plane] {
					acc[p] += wk * float64(v)
				}
			}
			grid := make([]float32, plane)
			for p, v := range acc {
				grid[p] = float32(v)
			}
			cm.Crops = append(cm.Crops, grid)
		}
		cm.Placed = place(cm.Crops, wd, h, l)
		maps[m] = cm
	}
	return maps
}

// place upsamples each crop's gw x gh grid bilinearly onto its window of
// the resized image (grid cell centers at (i+0.5)*window/grid, clamped at
// the edges), flips mirrored crops back, and averages overlapping windows.
func place(grids [][]float32, gw, gh int, l preprocess.Layout) []float32 {
	sum := make([]float32, l.W*l.H)
	count := make([]uint8, l.W*l.H)
	for i, g := range grids {
		win := l.Crops[i]
		ww, wh := win.Rect.Dx(), win.Rect.Dy()
		for y := range wh {
			fy := clampf((float64(y)+0.5)*float64(gh)/float64(wh)-0.5, 0, float64(gh-1))
			y0 := int(fy)
			y1, ty := min(y0+1, gh-1), fy-float64(y0)
			for x := range ww {
				fx := clampf((float64(x)+0.5)*float64(gw)/float64(ww)-0.5, 0, float64(gw-1))
				x0 := int(fx)
				x1, tx := min(x0+1, gw-1), fx-float64(x0)
				v := (1-ty)*((1-tx)*float64(g[y0*gw+x0])+tx*float64(g[y0*gw+x1])) +
					ty*((1-tx)*float64(g[y1*gw+x0])+tx*float64(g[y1*gw+x1]))
				px := x // crop column x is window column x, or ww-1-x for a mirror
				if win.Mirror {
					px = ww - 1 - x
				}
				at := (win.Rect.Min.Y+y)*l.W + win.Rect.Min.X + px
				sum[at] += float32(v)
				count[at]++
			}
		}
	}
	nan := float32(math.NaN())
	for i := range sum {
		if count[i] == 0 {
			sum[i] = nan
		} else {
			sum[i] /= float32(count[i])
		}
	}
	return sum
}

func clampf(v, lo, hi float64) float64 { return max(lo, min(hi, v)) }
