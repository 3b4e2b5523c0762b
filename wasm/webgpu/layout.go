package webgpu

import (
	"fmt"
	"math"

	"github.com/residual-go/residual/core/kernels"
	"github.com/residual-go/residual/core/weights"
)

// The GPU weight layouts. Every tensor a step uses becomes one Region of the
// weight arena, prepared once in Go from the float16 (or float32) shard
// bytes and uploaded once; the shaders index regions from 0 (each is bound
// at its own offset).

// Region kinds.
const (
	regionConv   = iota // conv weights, [group][k pair][m_pad] float16 pairs (conv.wgsl)
	regionConv32        // conv weights stored as float32 in the manifest, [group][k][m_pad]
	regionRows          // inner-product weights, rows of float16 pairs (innerproduct.wgsl)
	regionRows32        // inner-product weights as float32 rows
	regionF32           // float32 values: a bias, or an affine scale then shift
)

// convBK is conv.wgsl's BK: K is padded to a multiple of it. convMPad is
// the largest tile height: output channels are padded to a multiple of it.
const (
	convBK   = 16
	convMPad = 64
)

// Region is one tensor's (or tensor pair's) place in the weight arena.
type Region struct {
	Kind    int
	Tensors []string // the manifest tensors it holds
	Words   int      // its size in 32-bit words
	Page    int      // the GPU buffer holding it (index into Arena.Pages)
	Offset  int64    // byte offset in that buffer, a multiple of the binding alignment

	// conv: the GEMM's shape; rows: the row length in words.
	Groups, M, K, KPad, MPad int
	RowWords                 int
}

// Arena places every region of a program's weights into pages (GPU
// buffers) of at most maxBuffer bytes, each region aligned to align bytes.
type Arena struct {
	Regions []Region
	ByKey   map[string]int // "conv:W", "rows:W", "f32:B", "affine:S:B" -> region
	Pages   []int64        // page sizes in bytes
}

func (a *Arena) add(key string, r Region) int {
	if i, ok := a.ByKey[key]; ok {
		return i
	}
	a.Regions = append(a.Regions, r)
	a.ByKey[key] = len(a.Regions) - 1
	return len(a.Regions) - 1
}

// place assigns pages and offsets; it fails when one region alone exceeds
// what one binding or one buffer may hold.
func (a *Arena) place(align, maxBuffer, maxBinding int64) error {
	a.Pages = nil
	for i := range a.Regions {
		r := &a.Regions[i]
		size := int64(r.Words) * 4
		if size > maxBinding || size > maxBuffer {
			return &LimitError{Limit: "maxStorageBufferBindingSize", Need: size, Have: min(maxBinding, maxBuffer),
				What: fmt.Sprintf("the weights %v (%d bytes)", r.Tensors, size)}
		}
		if n := len(a.Pages); n == 0 || alignUp64(a.Pages[n-1], align)+size > maxBuffer {
			a.Pages = append(a.Pages, 0)
		}
		p := len(a.Pages) - 1
		r.Page = p
		r.Offset = alignUp64(a.Pages[p], align)
		a.Pages[p] = r.Offset + max(size, 4)
	}
	return nil
}

func alignUp64(n, a int64) int64 { return (n + a - 1) / a * a }
func alignUp(n, a int) int       { return (n + a - 1) / a * a }
func ceilDiv(n, d int) int       { return (n + d - 1) / d }

// convRegion describes the layout of conv weights of shape
// [OutC][InC/G][KH][KW].
func convRegion(t *weights.Tensor, c kernels.ConvParams) Region {
	g := max(c.Group, 1)
	m := c.OutC / g
	k := c.InC / g * c.KH * c.KW
	r := Region{Tensors: []string{t.Name}, Groups: g, M: m, K: k, KPad: alignUp(k, convBK), MPad: alignUp(m, convMPad)}
	if t.DType == weights.DTypeF32 {
		r.Kind = regionConv32
		r.Words = g * r.KPad * r.MPad
	} else {
		r.Kind = regionConv
		r.Words = g * r.KPad / 2 * r.MPad
	}
	return r
}

// rowsRegion describes inner-product weights of n rows of k values.
func rowsRegion(t *weights.Tensor, n, k int) Region {
	r := Region{Tensors: []string{t.Name}, M: n, K: k}
	if t.DType == weights.DTypeF32 {
		r.Kind, r.RowWords = regionRows32, k
	} else {
		r.Kind, r.RowWords = regionRows, ceilDiv(k, 2)
	}
	r.Words = n * r.RowWords
	return r
}

// f32Region holds float32 values of the named tensors, one after another
// (an affine's shift may be absent: zeros of count).
func f32Region(count int, names ...string) Region {
	return Region{Kind: regionF32, Tensors: names, Words: count * len(names)}
}

// tensorSource gives a tensor's values as stored: float16 bits or float32.
type tensorSource interface {
	F16(name string) []uint16
	F32(name string) []float32
}

// Fill writes region r's words into dst (len r.Words) from w.
func (r *Region) Fill(dst []uint32, w tensorSource) error {
	clear(dst)
	get16 := func(name string) ([]uint16, error) {
		if h := w.F16(name); h != nil {
			return h, nil
		}
		return nil, fmt.Errorf("webgpu: tensor %q has no float16 data (weights released?)", name)
	}
	get32 := func(name string) ([]float32, error) {
		if f := w.F32(name); f != nil {
			return f, nil
		}
		if h := w.F16(name); h != nil {
			f := make([]float32, len(h))
			kernels.WidenF16(f, h)
			return f, nil
		}
		return nil, fmt.Errorf("webgpu: tensor %q has no data (weights released?)", name)
	}
	switch r.Kind {
	case regionConv:
		h, err := get16(r.Tensors[0])
		if err != nil {
			return err
		}
		kp := r.KPad / 2
		for g := range r.Groups {
			for m := range r.M {
				row := h[(g*r.M+m)*r.K : (g*r.M+m+1)*r.K]
				for k := 0; k < r.K; k += 2 {
					v := uint32(row[k])
					if k+1 < r.K {
						v |= uint32(row[k+1]) << 16
					}
					dst[(g*kp+k/2)*r.MPad+m] = v
				}
			}
		}
	case regionConv32:
		f, err := get32(r.Tensors[0])
		if err != nil {
			return err
		}
		for g := range r.Groups {
			for m := range r.M {
				for k := range r.K {
					dst[(g*r.KPad+k)*r.MPad+m] = math.Float32bits(f[(g*r.M+m)*r.K+k])
				}
			}
		}
	case regionRows:
		h, err := get16(r.Tensors[0])
		if err != nil {
			return err
		}
		for o := range r.M {
			row := h[o*r.K : (o+1)*r.K]
			for k := 0; k < r.K; k += 2 {
				v := uint32(row[k])
				if k+1 < r.K {
					v |= uint32(row[k+1]) << 16
				}
				dst[o*r.RowWords+k/2] = v
			}
		}
	case regionRows32:
		f, err := get32(r.Tensors[0])
		if err != nil {
			return err
		}
		for i, v := range f[:r.M*r.K] {
			dst[i] = math.Float32bits(v)
		}
	case regionF32:
		count := r.Words / len(r.Tensors)
		for i, name := range r.Tensors {
			if name == "" {
				continue // an absent shift: zeros
			}
			f, err := get32(name)
			if err != nil {
				return err
			}
			for j, v := range f[:count] {
				dst[i*count+j] = math.Float32bits(v)
			}
		}
	}
	return nil
}
