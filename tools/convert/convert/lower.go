package convert

import (
	"fmt"
	"math"
	"strings"

	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/tools/convert/caffe"
)

// Shape is the C, H, W shape of one image's activation (batch 1).
type Shape = [3]int

// Node is one op of the lowered graph. Op holds everything that goes into
// the manifest except the tensor names, which [Graph] assigns when the graph
// is final. Conv and inner-product nodes keep their Caffe blobs; affine nodes
// (BatchNorm, Scale, or several merged) keep only Mul and Add.
type Node struct {
	Op     weights.Op
	Layers []string // the Caffe layers this node stands for, in order

	// W and B are the Caffe weight and bias blobs (B nil when bias_term is
	// false). The stored weight is W[oc,...]*Mul[oc] and the stored bias is
	// B[oc]*Mul[oc] + Add[oc], computed in float64; nil Mul means all ones,
	// nil Add all zeros. For an affine node W and B are nil and the stored
	// weight is Mul, the stored bias Add.
	W, B     *caffe.Blob
	Mul, Add []float64

	// transposeW: W is InnerProduct's K x N (transpose: true) and is stored N x K.
	transposeW bool
	// inShape is the shape of the first input (for the weight's shape).
	inShape Shape
}

// outChannels is the number of per-output-channel multipliers of the node.
func (n *Node) outChannels() int { return n.Op.OutShape[0] }

// Graph is a lowered network: a topologically ordered node list in SSA form.
type Graph struct {
	Name       string
	Input      weights.Input
	Output     string // the value nobody reads: the class probabilities
	Nodes      []*Node
	LayersIn   int // Caffe layers in the net (not counting skipped training-only layers)
	optimized  bool
	tensors    map[string]tensorRef // tensor name -> source, after Optimize
	tensorList []string             // tensor names in op order
}

// LayerError is a problem with one layer: its blobs, parameters or wiring.
type LayerError struct {
	Layer, Type string
	Msg         string
}

func (e *LayerError) Error() string {
	return fmt.Sprintf("layer %q (%s): %s", e.Layer, e.Type, e.Msg)
}

// UnsupportedError is a layer type (or a parameter value) residual cannot run.
type UnsupportedError struct {
	Layer, Type string
	What        string // "" for the layer type itself
}

func (e *UnsupportedError) Error() string {
	if e.What == "" {
		return fmt.Sprintf("layer %q has type %q, which residual does not support "+
			"(supported: Input, Convolution, BatchNorm, Scale, ReLU, Eltwise, Pooling, InnerProduct, "+
			"Softmax, Dropout, Concat, Flatten; give the deploy -prototxt if this is a training layer)",
			e.Layer, e.Type)
	}
	return fmt.Sprintf("layer %q (%s): %s is not supported", e.Layer, e.Type, e.What)
}

// NetError is a problem with the net as a whole (inputs, outputs).
type NetError struct{ Msg string }

func (e *NetError) Error() string { return "net: " + e.Msg }

// lowerer holds the state of one Lower call.
type lowerer struct {
	g        *Graph
	cur      map[string]string // Caffe blob name -> current SSA value
	shapes   map[string]Shape  // SSA value -> shape
	names    map[string]bool   // SSA value names in use
	layers   map[string]bool   // layer names seen
	producer map[string]string // Caffe blob name -> first layer producing it (for messages)
	train    map[string]string // the same for the skipped TRAIN-phase layers
}

// Lower checks net and turns it into a graph (not yet optimized).
// Layers included only in the TRAIN phase are skipped.
func Lower(net *caffe.Net) (*Graph, error) {
	if net == nil {
		return nil, &NetError{"no net"}
	}
	lw := &lowerer{
		g:        &Graph{Name: net.Name},
		cur:      map[string]string{},
		shapes:   map[string]Shape{},
		names:    map[string]bool{},
		layers:   map[string]bool{},
		producer: map[string]string{},
		train:    map[string]string{},
	}
	for _, l := range net.Layers {
		m := lw.producer
		if l.Phase == caffe.PhaseTrain {
			m = lw.train
		}
		for _, t := range l.Tops {
			if _, ok := m[t]; !ok {
				m[t] = l.Name
			}
		}
	}
	for _, in := range net.Inputs {
		if err := lw.addInput(in.Name, in.Shape, "net input"); err != nil {
			return nil, err
		}
	}
	for _, l := range net.Layers {
		if l.Phase == caffe.PhaseTrain {
			continue
		}
		lw.g.LayersIn++
		if err := lw.layer(l); err != nil {
			return nil, err
		}
	}
	if lw.g.Input.Name == "" {
		return nil, &NetError{"no input: the net needs an Input layer or input:/input_dim lines (give the deploy -prototxt)"}
	}
	if err := lw.findOutput(); err != nil {
		return nil, err
	}
	return lw.g, nil
}

// newValue returns a fresh SSA value name for Caffe blob base.
func (lw *lowerer) newValue(base string, s Shape) string {
	name := base
	for k := 1; lw.names[name]; k++ {
		name = fmt.Sprintf("%s#%d", base, k)
	}
	lw.names[name] = true
	lw.shapes[name] = s
	return name
}

func (lw *lowerer) addInput(name string, dims []int, what string) error {
	if lw.g.Input.Name != "" {
		return &NetError{fmt.Sprintf("second input %q (%s): residual runs nets with exactly one input, %q is already one",
			name, what, lw.g.Input.Name)}
	}
	var s Shape
	switch len(dims) {
	case 4:
		s = Shape{dims[1], dims[2], dims[3]}
	case 3:
		s = Shape{dims[0], dims[1], dims[2]}
	default:
		return &NetError{fmt.Sprintf("input %q (%s) has shape %v: want N x C x H x W", name, what, dims)}
	}
	for _, d := range s {
		if d <= 0 || d > weights.MaxDim {
			return &NetError{fmt.Sprintf("input %q (%s) has shape %v: every dimension must be 1 to %d", name, what, dims, weights.MaxDim)}
		}
	}
	if !fits(s) {
		return &NetError{fmt.Sprintf("input %q (%s) has shape %v: more than %d values", name, what, dims, weights.MaxElements)}
	}
	if _, dup := lw.cur[name]; dup {
		return &NetError{fmt.Sprintf("input %q declared twice", name)}
	}
	lw.cur[name] = lw.newValue(name, s)
	lw.g.Input = weights.Input{Name: name, Channels: s[0], Height: s[1], Width: s[2]}
	return nil
}

func (lw *lowerer) errorf(l *caffe.Layer, format string, args ...any) error {
	return &LayerError{Layer: l.Name, Type: l.Type, Msg: fmt.Sprintf(format, args...)}
}

// layer lowers one Caffe layer.
func (lw *lowerer) layer(l *caffe.Layer) error {
	if l.Name == "" {
		return &LayerError{Layer: "", Type: l.Type, Msg: "layer without a name"}
	}
	if lw.layers[l.Name] {
		return lw.errorf(l, "duplicate layer name %q", l.Name)
	}
	lw.layers[l.Name] = true
	for i, t := range l.Tops {
		for _, u := range l.Tops[:i] {
			if t == u {
				return lw.errorf(l, "top %q listed twice", t)
			}
		}
	}
	// Inputs: resolve bottoms to SSA values.
	var ins []string
	var inShapes []Shape
	for _, b := range l.Bottoms {
		v, ok := lw.cur[b]
		if !ok {
			if p, later := lw.producer[b]; later && p != l.Name {
				return lw.errorf(l, "reads blob %q before any layer produces it (layer %q produces it later): "+
					"Caffe runs layers in file order, so the layers are out of order or form a cycle", b, p)
			}
			if p, ok := lw.train[b]; ok {
				return lw.errorf(l, "reads blob %q, which only the training-phase layer %q produces: give the deploy -prototxt", b, p)
			}
			return lw.errorf(l, "reads blob %q, which no layer produces and which is not an input", b)
		}
		ins = append(ins, v)
		inShapes = append(inShapes, lw.shapes[v])
	}
	// A top that already exists must be one of this layer's bottoms (in place).
	for _, t := range l.Tops {
		if _, exists := lw.cur[t]; exists && !contains(l.Bottoms, t) {
			return lw.errorf(l, "top %q is already produced by another layer (Caffe allows reusing a name only in place, top == bottom)", t)
		}
	}
	switch l.Type {
	case "Input":
		return lw.input(l)
	case "Dropout":
		if err := lw.arity(l, 1, 1, 0); err != nil {
			return err
		}
		lw.cur[l.Tops[0]] = ins[0] // identity at inference time: removed
		return nil
	}
	n, out, err := lw.node(l, ins, inShapes)
	if err != nil {
		return err
	}
	for i := range out {
		if out[i] <= 0 {
			return lw.errorf(l, "output shape %v has a non-positive dimension (input %v)", out, inShapes[0])
		}
	}
	if !fits(out) {
		return lw.errorf(l, "output shape %v has more than %d values", out, weights.MaxElements)
	}
	n.Layers = []string{l.Name}
	n.Op.Name = l.Name
	n.Op.Inputs = ins
	n.Op.OutShape = out
	n.inShape = inShapes[0]
	n.Op.Output = lw.newValue(l.Tops[0], out)
	lw.cur[l.Tops[0]] = n.Op.Output
	lw.g.Nodes = append(lw.g.Nodes, n)
	return nil
}

// fits reports whether an activation of shape s is within the runtime's
// limit (and its size computable without overflow).
func fits(s Shape) bool {
	n := int64(1)
	for _, d := range s {
		if d <= 0 || d > weights.MaxElements {
			return false
		}
		n *= int64(d)
		if n > weights.MaxElements {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// arity checks the counts of bottoms, tops and blobs. bottoms < 0 means "at least 2".
func (lw *lowerer) arity(l *caffe.Layer, bottoms, tops, blobs int) error {
	switch {
	case bottoms < 0 && len(l.Bottoms) < 2:
		return lw.errorf(l, "has %d bottoms, want at least 2", len(l.Bottoms))
	case bottoms >= 0 && len(l.Bottoms) != bottoms:
		return lw.errorf(l, "has %d bottoms, want %d", len(l.Bottoms), bottoms)
	case len(l.Tops) != tops:
		return lw.errorf(l, "has %d tops, want %d", len(l.Tops), tops)
	case len(l.Blobs) < blobs:
		return lw.errorf(l, "has %d blobs, want %d: its trained weights are missing "+
			"(do the layer names of the prototxt match the caffemodel's?)", len(l.Blobs), blobs)
	case len(l.Blobs) > blobs:
		return lw.errorf(l, "has %d blobs, want %d: extra blobs (does bias_term match the caffemodel?)", len(l.Blobs), blobs)
	}
	for i, b := range l.Blobs {
		if b == nil {
			return lw.errorf(l, "blob %d is empty", i)
		}
		if b.Len() != b.Count() {
			return lw.errorf(l, "blob %d has shape %v but %d values", i, b.Shape, b.Len())
		}
		if j, v, bad := nonFinite(b); bad {
			return lw.errorf(l, "blob %d value %d is %v", i, j, v)
		}
	}
	return nil
}

// checkBlob checks blob i of l against the shape its parameters imply.
// Leading 1s are ignored (legacy files store 1 x 1 x 1 x N biases).
func (lw *lowerer) checkBlob(l *caffe.Layer, i int, what string, want ...int) error {
	got := l.Blobs[i].Shape
	if !sameShape(got, want) {
		return lw.errorf(l, "blob %d (%s) has shape %v, want %v from the layer's parameters and input", i, what, got, want)
	}
	return nil
}

func sameShape(a, b []int) bool {
	trim := func(s []int) []int {
		for len(s) > 0 && s[0] == 1 {
			s = s[1:]
		}
		return s
	}
	a, b = trim(a), trim(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (lw *lowerer) input(l *caffe.Layer) error {
	if err := lw.arity(l, 0, len(l.Tops), 0); err != nil {
		return err
	}
	if len(l.Tops) != 1 {
		return lw.errorf(l, "has %d tops: residual runs nets with exactly one input", len(l.Tops))
	}
	if l.Input == nil || len(l.Input.Shapes) == 0 {
		return lw.errorf(l, "has no input_param { shape { dim: ... } }")
	}
	if err := lw.addInput(l.Tops[0], l.Input.Shapes[0], "Input layer "+l.Name); err != nil {
		return err
	}
	return nil
}

// hw resolves Caffe's repeated-or-_h/_w spatial parameters: hasHW selects
// h, w; otherwise rep has 0 (def), 1 (both) or 2 (h, w) values.
func hw(rep []int, hasHW bool, h, w, def int) ([2]int, bool) {
	if hasHW {
		return [2]int{h, w}, true
	}
	switch len(rep) {
	case 0:
		return [2]int{def, def}, true
	case 1:
		return [2]int{rep[0], rep[0]}, true
	case 2:
		return [2]int{rep[0], rep[1]}, true
	}
	return [2]int{}, false
}

// node builds the node of a layer with weights or an op and returns its output shape.
func (lw *lowerer) node(l *caffe.Layer, ins []string, in []Shape) (*Node, Shape, error) {
	switch l.Type {
	case "Convolution":
		return lw.conv(l, in)
	case "InnerProduct":
		return lw.innerProduct(l, in)
	case "BatchNorm":
		return lw.batchNorm(l, in)
	case "Scale":
		return lw.scale(l, in)
	case "ReLU":
		if err := lw.arity(l, 1, 1, 0); err != nil {
			return nil, Shape{}, err
		}
		slope := 0.0
		if l.ReLU != nil {
			slope = l.ReLU.NegativeSlope
		}
		return &Node{Op: weights.Op{Type: weights.OpReLU, ReLU: true, NegativeSlope: slope}}, in[0], nil
	case "Pooling":
		return lw.pooling(l, in)
	case "Eltwise":
		return lw.eltwise(l, in)
	case "Softmax":
		if err := lw.arity(l, 1, 1, 0); err != nil {
			return nil, Shape{}, err
		}
		if l.Softmax != nil && l.Softmax.Axis != 1 {
			return nil, Shape{}, &UnsupportedError{l.Name, l.Type, fmt.Sprintf("axis %d (only the channel axis 1)", l.Softmax.Axis)}
		}
		return &Node{Op: weights.Op{Type: weights.OpSoftmax}}, in[0], nil
	case "Concat":
		if err := lw.arity(l, -1, 1, 0); err != nil {
			return nil, Shape{}, err
		}
		if l.Concat != nil && l.Concat.Axis != 1 {
			return nil, Shape{}, &UnsupportedError{l.Name, l.Type, fmt.Sprintf("axis %d (only the channel axis 1)", l.Concat.Axis)}
		}
		out := in[0]
		for i, s := range in[1:] {
			if s[1] != out[1] || s[2] != out[2] {
				return nil, Shape{}, lw.errorf(l, "bottom %d has shape %v, bottom 0 has %v: H and W must match", i+1, s, in[0])
			}
			out[0] += s[0]
		}
		return &Node{Op: weights.Op{Type: weights.OpConcat}}, out, nil
	case "Flatten":
		if err := lw.arity(l, 1, 1, 0); err != nil {
			return nil, Shape{}, err
		}
		if f := l.Flatten; f != nil && (f.Axis != 1 || (f.EndAxis != -1 && f.EndAxis != 3)) {
			return nil, Shape{}, &UnsupportedError{l.Name, l.Type, fmt.Sprintf("axis %d..%d (only 1..-1)", f.Axis, f.EndAxis)}
		}
		return &Node{Op: weights.Op{Type: weights.OpFlatten}}, Shape{in[0][0] * in[0][1] * in[0][2], 1, 1}, nil
	}
	return nil, Shape{}, &UnsupportedError{Layer: l.Name, Type: l.Type}
}

func (lw *lowerer) conv(l *caffe.Layer, in []Shape) (*Node, Shape, error) {
	p := l.Conv
	if p == nil {
		return nil, Shape{}, lw.errorf(l, "has no convolution_param")
	}
	nblobs := 1
	if p.BiasTerm {
		nblobs = 2
	}
	if err := lw.arity(l, 1, 1, nblobs); err != nil {
		return nil, Shape{}, err
	}
	if p.Axis != 1 && p.Axis != 0 {
		return nil, Shape{}, &UnsupportedError{l.Name, l.Type, fmt.Sprintf("axis %d", p.Axis)}
	}
	k, ok1 := hw(p.KernelSize, p.HasKernelHW, p.KernelH, p.KernelW, 0)
	pad, ok2 := hw(p.Pad, p.HasPadHW, p.PadH, p.PadW, 0)
	st, ok3 := hw(p.Stride, p.HasStrideHW, p.StrideH, p.StrideW, 1)
	dil, ok4 := hw(p.Dilation, false, 0, 0, 1)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, Shape{}, &UnsupportedError{l.Name, l.Type, "a kernel_size/pad/stride/dilation with more than 2 values (only 2-D convolution)"}
	}
	if k[0] <= 0 || k[1] <= 0 || st[0] <= 0 || st[1] <= 0 || dil[0] <= 0 || dil[1] <= 0 || pad[0] < 0 || pad[1] < 0 {
		return nil, Shape{}, lw.errorf(l, "kernel %v, stride %v, dilation %v, pad %v: kernel, stride and dilation must be positive", k, st, dil, pad)
	}
	group := p.Group
	if group == 0 {
		group = 1
	}
	cin, oc := in[0][0], p.NumOutput
	if oc <= 0 {
		return nil, Shape{}, lw.errorf(l, "num_output is %d", oc)
	}
	if cin%group != 0 || oc%group != 0 {
		return nil, Shape{}, lw.errorf(l, "group %d does not divide input channels %d and num_output %d", group, cin, oc)
	}
	if err := lw.checkBlob(l, 0, "weight", oc, cin/group, k[0], k[1]); err != nil {
		return nil, Shape{}, err
	}
	n := &Node{Op: weights.Op{Type: weights.OpConv, Kernel: k, Stride: st, Pad: pad, Dilation: dil, Group: group}, W: l.Blobs[0]}
	if p.BiasTerm {
		if err := lw.checkBlob(l, 1, "bias", oc); err != nil {
			return nil, Shape{}, err
		}
		n.B = l.Blobs[1]
	}
	size, err := convOutputShape([2]int{in[0][1], in[0][2]}, k, st, pad, dil)
	if err != nil {
		return nil, Shape{}, lw.errorf(l, "%v (input %v)", err, in[0])
	}
	return n, Shape{oc, size[0], size[1]}, nil
}

func (lw *lowerer) innerProduct(l *caffe.Layer, in []Shape) (*Node, Shape, error) {
	p := l.InnerProd
	if p == nil {
		return nil, Shape{}, lw.errorf(l, "has no inner_product_param")
	}
	nblobs := 1
	if p.BiasTerm {
		nblobs = 2
	}
	if err := lw.arity(l, 1, 1, nblobs); err != nil {
		return nil, Shape{}, err
	}
	if p.Axis != 1 {
		return nil, Shape{}, &UnsupportedError{l.Name, l.Type, fmt.Sprintf("axis %d (only 1)", p.Axis)}
	}
	nOut, k := p.NumOutput, in[0][0]*in[0][1]*in[0][2]
	if nOut <= 0 {
		return nil, Shape{}, lw.errorf(l, "num_output is %d", nOut)
	}
	want := []int{nOut, k}
	if p.Transpose {
		want = []int{k, nOut}
	}
	if err := lw.checkBlob(l, 0, "weight", want...); err != nil {
		return nil, Shape{}, err
	}
	n := &Node{Op: weights.Op{Type: weights.OpInnerProduct}, W: l.Blobs[0], transposeW: p.Transpose}
	if p.BiasTerm {
		if err := lw.checkBlob(l, 1, "bias", nOut); err != nil {
			return nil, Shape{}, err
		}
		n.B = l.Blobs[1]
	}
	return n, Shape{nOut, 1, 1}, nil
}

// batchNorm: Caffe's BatchNorm with use_global_stats computes
// y = (x - mean/s) / sqrt(var/s + eps), s the third blob (0 means 0: mean and
// var are multiplied by 0 instead). That is the affine a = 1/sqrt(var/s+eps),
// b = -mean/s * a, computed here in float64.
func (lw *lowerer) batchNorm(l *caffe.Layer, in []Shape) (*Node, Shape, error) {
	if err := lw.arity(l, 1, 1, 3); err != nil {
		return nil, Shape{}, err
	}
	eps := 1e-5
	if p := l.BatchNorm; p != nil {
		if p.UseGlobalStats != nil && !*p.UseGlobalStats {
			return nil, Shape{}, &UnsupportedError{l.Name, l.Type, "use_global_stats: false (batch statistics; a deploy net needs the stored statistics)"}
		}
		eps = p.Eps
	}
	c := in[0][0]
	if err := lw.checkBlob(l, 0, "mean", c); err != nil {
		return nil, Shape{}, err
	}
	if err := lw.checkBlob(l, 1, "variance", c); err != nil {
		return nil, Shape{}, err
	}
	if err := lw.checkBlob(l, 2, "scale factor", 1); err != nil {
		return nil, Shape{}, err
	}
	s := l.Blobs[2].At(0)
	inv := 0.0
	if s != 0 {
		inv = 1 / s
	}
	mul, add := make([]float64, c), make([]float64, c)
	for i := 0; i < c; i++ {
		v := l.Blobs[1].At(i)*inv + eps
		if v <= 0 {
			return nil, Shape{}, lw.errorf(l, "channel %d: variance/scale factor + eps is %g; it must be positive", i, v)
		}
		mul[i] = 1 / math.Sqrt(v)
		add[i] = -l.Blobs[0].At(i) * inv * mul[i]
	}
	return &Node{Op: weights.Op{Type: weights.OpAffine}, Mul: mul, Add: add}, in[0], nil
}

// scale: Caffe's Scale with one bottom, axis 1, num_axes 1: y = x*gamma[c] (+ beta[c]).
func (lw *lowerer) scale(l *caffe.Layer, in []Shape) (*Node, Shape, error) {
	p := l.Scale
	if p == nil {
		p = &caffe.ScaleParam{Axis: 1, NumAxes: 1}
	}
	if len(l.Bottoms) != 1 {
		return nil, Shape{}, &UnsupportedError{l.Name, l.Type, "a scale taken from a second bottom"}
	}
	if p.Axis != 1 || p.NumAxes != 1 {
		return nil, Shape{}, &UnsupportedError{l.Name, l.Type, fmt.Sprintf("axis %d, num_axes %d (only per-channel: axis 1, num_axes 1)", p.Axis, p.NumAxes)}
	}
	nblobs := 1
	if p.BiasTerm {
		nblobs = 2
	}
	if err := lw.arity(l, 1, 1, nblobs); err != nil {
		return nil, Shape{}, err
	}
	c := in[0][0]
	if err := lw.checkBlob(l, 0, "scale", c); err != nil {
		return nil, Shape{}, err
	}
	mul, add := make([]float64, c), make([]float64, c)
	if p.BiasTerm {
		if err := lw.checkBlob(l, 1, "bias", c); err != nil {
			return nil, Shape{}, err
		}
	}
	for i := 0; i < c; i++ {
		mul[i] = l.Blobs[0].At(i)
		if p.BiasTerm {
			add[i] = l.Blobs[1].At(i)
		}
	}
	return &Node{Op: weights.Op{Type: weights.OpAffine}, Mul: mul, Add: add}, in[0], nil
}

func (lw *lowerer) pooling(l *caffe.Layer, in []Shape) (*Node, Shape, error) {
	if err := lw.arity(l, 1, 1, 0); err != nil {
		return nil, Shape{}, err
	}
	p := l.Pooling
	if p == nil {
		return nil, Shape{}, lw.errorf(l, "has no pooling_param")
	}
	var op weights.Op
	op.Type = weights.OpPool
	switch p.Pool {
	case caffe.PoolMax:
		op.Pool = "max"
	case caffe.PoolAve:
		op.Pool = "ave"
	default:
		return nil, Shape{}, &UnsupportedError{l.Name, l.Type, fmt.Sprintf("pool method %d (only MAX and AVE)", p.Pool)}
	}
	switch p.RoundMode {
	case caffe.RoundCeil:
		op.RoundMode = "ceil"
	case caffe.RoundFloor:
		op.RoundMode = "floor"
	default:
		return nil, Shape{}, &UnsupportedError{l.Name, l.Type, fmt.Sprintf("round_mode %d", p.RoundMode)}
	}
	h, w := in[0][1], in[0][2]
	pad, _ := hw([]int{p.Pad}, p.HasPadHW, p.PadH, p.PadW, 0)
	stride := p.Stride
	if stride == 0 {
		stride = 1
	}
	st, _ := hw([]int{stride}, p.HasStrideHW, p.StrideH, p.StrideW, 1)
	var k [2]int
	if p.GlobalPooling {
		// Caffe: global pooling takes the whole input; pad 0 and stride 1 are required.
		if pad != [2]int{} || st != [2]int{1, 1} {
			return nil, Shape{}, lw.errorf(l, "global pooling with pad %v and stride %v: Caffe requires pad 0 and stride 1", pad, st)
		}
		k = [2]int{h, w}
		op.Global = true
	} else {
		k, _ = hw([]int{p.KernelSize}, p.HasKernelHW, p.KernelH, p.KernelW, 0)
	}
	if k[0] <= 0 || k[1] <= 0 || st[0] <= 0 || st[1] <= 0 || pad[0] < 0 || pad[1] < 0 {
		return nil, Shape{}, lw.errorf(l, "kernel %v, stride %v, pad %v: kernel and stride must be positive", k, st, pad)
	}
	op.Kernel, op.Stride, op.Pad = k, st, pad
	size, err := poolOutputShape([2]int{h, w}, k, st, pad, p.RoundMode == caffe.RoundCeil)
	if err != nil {
		return nil, Shape{}, lw.errorf(l, "%v (input %v)", err, in[0])
	}
	return &Node{Op: op}, Shape{in[0][0], size[0], size[1]}, nil
}

func (lw *lowerer) eltwise(l *caffe.Layer, in []Shape) (*Node, Shape, error) {
	if err := lw.arity(l, -1, 1, 0); err != nil {
		return nil, Shape{}, err
	}
	p := l.Eltwise
	if p == nil {
		p = &caffe.EltwiseParam{Operation: caffe.EltwiseSum}
	}
	for i, s := range in[1:] {
		if s != in[0] {
			return nil, Shape{}, lw.errorf(l, "bottom %d has shape %v, bottom 0 has %v: they must be equal", i+1, s, in[0])
		}
	}
	op := weights.Op{Type: weights.OpEltwise}
	switch p.Operation {
	case caffe.EltwiseSum:
		op.Operation = "sum"
	case caffe.EltwiseProd:
		op.Operation = "prod"
	case caffe.EltwiseMax:
		op.Operation = "max"
	default:
		return nil, Shape{}, &UnsupportedError{l.Name, l.Type, fmt.Sprintf("operation %d", p.Operation)}
	}
	if len(p.Coeff) > 0 {
		if p.Operation != caffe.EltwiseSum {
			return nil, Shape{}, lw.errorf(l, "coeff is only allowed with operation SUM (Caffe refuses it too)")
		}
		if len(p.Coeff) != len(l.Bottoms) {
			return nil, Shape{}, lw.errorf(l, "%d coeffs for %d bottoms: give one per bottom", len(p.Coeff), len(l.Bottoms))
		}
		for _, c := range p.Coeff {
			if c != 1 {
				op.Coeffs = append([]float64(nil), p.Coeff...)
				break
			}
		}
	}
	return &Node{Op: op}, in[0], nil
}

// findOutput sets g.Output to the one value no node reads.
func (lw *lowerer) findOutput() error {
	read := map[string]bool{}
	for _, n := range lw.g.Nodes {
		for _, in := range n.Op.Inputs {
			read[in] = true
		}
	}
	var outs []string
	for _, n := range lw.g.Nodes {
		if !read[n.Op.Output] {
			outs = append(outs, n.Op.Output)
		}
	}
	switch len(outs) {
	case 0:
		return &NetError{"the net has no layers that compute anything"}
	case 1:
		lw.g.Output = outs[0]
		return nil
	}
	return &NetError{fmt.Sprintf("the net has %d outputs (%s): residual needs exactly one (the class probabilities); "+
		"give the deploy -prototxt if this is a training net", len(outs), strings.Join(outs, ", "))}
}

// nonFinite finds the first NaN or infinity in b.
func nonFinite(b *caffe.Blob) (int, float64, bool) {
	if b.Data64 != nil {
		for j, v := range b.Data64 {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return j, v, true
			}
		}
		return 0, 0, false
	}
	for j, v := range b.Data {
		// float32 exponent all ones: NaN or infinity.
		if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
			return j, float64(v), true
		}
	}
	return 0, 0, false
}
