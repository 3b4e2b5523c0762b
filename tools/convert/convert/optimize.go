package convert

import (
	"fmt"
	"strings"

	"github.com/residual-go/residual/core/weights"
)

// Optimize rewrites the graph in place (see the package comment): affines
// (BatchNorm, Scale) are folded into the conv, inner product or affine that
// produces their input, ReLUs are fused into the conv, inner product or
// eltwise before them, and every value gets its final name. Folding only
// changes per-channel float64 multipliers and addends; no weight is touched
// until [Graph.TensorF64] or [Write]. Optimize may be called once.
func (g *Graph) Optimize() {
	if g.optimized {
		return
	}
	g.optimized = true
	readers := map[string]int{}
	for _, n := range g.Nodes {
		for _, in := range n.Op.Inputs {
			readers[in]++
		}
	}
	producer := map[string]*Node{}
	dead := map[*Node]bool{}
	for _, n := range g.Nodes {
		if len(n.Op.Inputs) == 1 {
			p := producer[n.Op.Inputs[0]]
			if p != nil && readers[p.Op.Output] == 1 && g.absorb(p, n) {
				// n is now part of p: p produces n's output.
				dead[n] = true
				p.Op.Output = n.Op.Output
				p.Layers = append(p.Layers, n.Layers...)
				producer[p.Op.Output] = p
				continue
			}
		}
		producer[n.Op.Output] = n
	}
	kept := g.Nodes[:0]
	for _, n := range g.Nodes {
		if !dead[n] {
			kept = append(kept, n)
		}
	}
	g.Nodes = kept
	g.rename()
	g.assignTensors()
}

// absorb merges n into p, its only reader, when that is exact: an affine into
// a conv, inner product or affine without a fused ReLU, a ReLU into a conv,
// inner product or eltwise without one.
func (g *Graph) absorb(p, n *Node) bool {
	if p.Op.ReLU {
		return false
	}
	switch n.Op.Type {
	case weights.OpAffine:
		switch p.Op.Type {
		case weights.OpConv, weights.OpInnerProduct, weights.OpAffine:
		default:
			return false
		}
		// (x*m + c)*a + d = x*(m*a) + (c*a + d), per output channel, in float64.
		oc := p.outChannels()
		if p.Mul == nil {
			p.Mul = make([]float64, oc)
			for i := range p.Mul {
				p.Mul[i] = 1
			}
		}
		if p.Add == nil {
			p.Add = make([]float64, oc)
		}
		for i := 0; i < oc; i++ {
			p.Mul[i] *= n.Mul[i]
			p.Add[i] = p.Add[i]*n.Mul[i] + n.Add[i]
		}
		return true
	case weights.OpReLU:
		switch p.Op.Type {
		case weights.OpConv, weights.OpInnerProduct, weights.OpEltwise:
		default:
			return false
		}
		p.Op.ReLU = true
		p.Op.NegativeSlope = n.Op.NegativeSlope
		return true
	}
	return false
}

// rename gives every surviving value its Caffe blob name when only one
// version of that blob survived ("conv1#3" -> "conv1").
func (g *Graph) rename() {
	base := func(v string) string {
		if i := strings.LastIndexByte(v, '#'); i > 0 {
			return v[:i]
		}
		return v
	}
	inUse := map[string]bool{g.Input.Name: true}
	versions := map[string]int{}
	for _, n := range g.Nodes {
		inUse[n.Op.Output] = true
		versions[base(n.Op.Output)]++
	}
	to := map[string]string{}
	for _, n := range g.Nodes {
		v := n.Op.Output
		if b := base(v); b != v && versions[b] == 1 && !inUse[b] {
			to[v] = b
		}
	}
	sub := func(v string) string {
		if r, ok := to[v]; ok {
			return r
		}
		return v
	}
	for _, n := range g.Nodes {
		n.Op.Output = sub(n.Op.Output)
		for i := range n.Op.Inputs {
			n.Op.Inputs[i] = sub(n.Op.Inputs[i])
		}
	}
	g.Output = sub(g.Output)
}

// tensorRef says which node a tensor comes from and whether it is the weight or the bias.
type tensorRef struct {
	node *Node
	bias bool
}

// assignTensors names the tensors of every node: "<op name>/weight" and
// "<op name>/bias".
func (g *Graph) assignTensors() {
	g.tensors = map[string]tensorRef{}
	g.tensorList = nil
	add := func(n *Node, bias bool) string {
		suffix := "/weight"
		if bias {
			suffix = "/bias"
		}
		name := n.Op.Name + suffix
		for k := 1; ; k++ {
			if _, dup := g.tensors[name]; !dup && name != MeanTensor {
				break
			}
			name = fmt.Sprintf("%s#%d%s", n.Op.Name, k, suffix)
		}
		g.tensors[name] = tensorRef{n, bias}
		g.tensorList = append(g.tensorList, name)
		return name
	}
	for _, n := range g.Nodes {
		switch n.Op.Type {
		case weights.OpConv, weights.OpInnerProduct:
			n.Op.Weight = add(n, false)
			if n.B != nil || n.Add != nil {
				n.Op.Bias = add(n, true)
			}
		case weights.OpAffine:
			n.Op.Weight = add(n, false)
			n.Op.Bias = add(n, true)
		}
	}
}

// MeanTensor is the name of the stored mean image.
const MeanTensor = "mean"

// Tensors lists the names of the graph's weight tensors in op order
// (after [Graph.Optimize]).
func (g *Graph) Tensors() []string { return append([]string(nil), g.tensorList...) }

// TensorShape is the stored shape of a tensor: conv [OC, IC/group, KH, KW],
// inner product [N, K], affine weight and every bias [C].
func (g *Graph) TensorShape(name string) ([]int, error) {
	r, ok := g.tensors[name]
	if !ok {
		return nil, fmt.Errorf("convert: no tensor %q (did you call Optimize?)", name)
	}
	return r.shape(), nil
}

func (r tensorRef) shape() []int {
	n := r.node
	oc := n.outChannels()
	if r.bias || n.Op.Type == weights.OpAffine {
		return []int{oc}
	}
	if n.Op.Type == weights.OpInnerProduct {
		in := n.inShape
		return []int{oc, in[0] * in[1] * in[2]}
	}
	return []int{oc, n.inShape[0] / n.Op.Group, n.Op.Kernel[0], n.Op.Kernel[1]}
}

func (r tensorRef) size() int {
	s := 1
	for _, d := range r.shape() {
		s *= d
	}
	return s
}

// TensorF64 computes a tensor's folded float64 values (the values before
// rounding), allocating them. Write uses the allocation-free fill.
func (g *Graph) TensorF64(name string) ([]float64, error) {
	r, ok := g.tensors[name]
	if !ok {
		return nil, fmt.Errorf("convert: no tensor %q (did you call Optimize?)", name)
	}
	dst := make([]float64, r.size())
	r.fill(dst)
	return dst, nil
}

// fill writes the folded values of r into dst (len(dst) == r.size()).
func (r tensorRef) fill(dst []float64) {
	n := r.node
	oc := n.outChannels()
	mul := func(c int) float64 {
		if n.Mul == nil {
			return 1
		}
		return n.Mul[c]
	}
	add := func(c int) float64 {
		if n.Add == nil {
			return 0
		}
		return n.Add[c]
	}
	switch {
	case n.Op.Type == weights.OpAffine && !r.bias:
		copy(dst, n.Mul)
	case n.Op.Type == weights.OpAffine:
		copy(dst, n.Add)
	case r.bias:
		for c := 0; c < oc; c++ {
			b := 0.0
			if n.B != nil {
				b = n.B.At(c)
			}
			dst[c] = b*mul(c) + add(c)
		}
	case n.transposeW:
		// InnerProduct with transpose: true stores K x N; residual stores N x K.
		k := len(dst) / oc
		for c := 0; c < oc; c++ {
			m := mul(c)
			row := dst[c*k : (c+1)*k]
			for j := range row {
				row[j] = n.W.At(j*oc+c) * m
			}
		}
	default:
		per := len(dst) / oc
		for c := 0; c < oc; c++ {
			m := mul(c)
			row := dst[c*per : (c+1)*per]
			if n.W.Data64 != nil {
				for j, v := range n.W.Data64[c*per : (c+1)*per] {
					row[j] = v * m
				}
				continue
			}
			for j, v := range n.W.Data[c*per : (c+1)*per] {
				row[j] = float64(v) * m
			}
		}
	}
}
