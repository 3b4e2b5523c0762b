package core

import (
	"fmt"
	"slices"

	"github.com/residual-go/residual/core/kernels"
	"github.com/residual-go/residual/core/weights"
)

// A Program is a validated manifest compiled once for any backend: the op
// list (or a contiguous range of it) as steps whose kernel parameters are
// resolved, every blob version as a value placed in an activation buffer by
// liveness, and what it needs to hold in memory. The CPU executor interprets
// it; the WebGPU backend (wasm/webgpu) turns each step into a dispatch; a
// Cloudflare stage Worker runs the program of its slice of the network.
//
// Sizes are per image: a backend running a batch of n keeps n copies of
// every buffer (image after image) or runs the images one by one.
type Program struct {
	Manifest *weights.Manifest
	Options  CompileOptions // what it was compiled with (First and End resolved)

	Steps  []Step
	Values []Value
	Input  int   // value id of the program's input (the network input, or the blob entering the range)
	Output int   // value id of the program's output (the network output, or the blob leaving the range)
	Taps   []int // value ids of CompileOptions.Taps, in that order; live to the end
	// Buffers are the activation buffers' sizes in float32s (per image).
	Buffers []int
}

// CompileOptions configure Compile.
type CompileOptions struct {
	// First and End select the manifest ops [First, End) (End 0: to the last
	// op). Both must be cuts (see Cuts): exactly one value crosses there,
	// which becomes the program's input or output.
	First, End int
	// FuseResidual folds each eltwise sum of two inputs with unit
	// coefficients into the convolution that computes one of them, when
	// nothing else reads that convolution's output and it has no activation
	// of its own: the conv step adds its second input (Step.Residual) and
	// applies the eltwise's activation. This removes one pass over memory per
	// residual block; ResNet's block outputs all qualify.
	FuseResidual bool
	// Taps names blobs whose last version in the range stays live after the
	// program's output is written, so that a backend can return it with the
	// output (a class activation map needs the last convolutional features).
	Taps []string
	// NoReuse gives every storage its own buffer (tests compare the packed
	// plan with it).
	NoReuse bool
}

// Value is one version of a blob: what an op writes, until it is read for
// the last time.
type Value struct {
	Blob   string
	Shape  [3]int // C, H, W
	Size   int    // C*H*W
	Buffer int    // index into Program.Buffers
	Offset int    // float32 offset of the value in its buffer (0 today)
	Def    int    // the step that writes it; -1 for the program input
	Last   int    // the last step that reads it; len(Steps) for the output and taps
}

// Step is one op (or a convolution with the eltwise sum fused into it) with
// everything a backend needs resolved from the manifest.
type Step struct {
	Op    int    // index of the manifest op
	Fused int    // index of the manifest eltwise op fused into this conv, or -1
	Name  string // the manifest op's name
	Kind  string // a weights.Op* constant
	In    []int  // value ids read (a fused conv: its input, then the residual)
	Out   int    // value id written

	Weight, Bias string      // tensor names ("" when none)
	Act          kernels.Act // fused activation, applied last
	Conv         kernels.ConvParams
	Pool         kernels.PoolParams
	Elt          int       // eltwise: kernels.EltSum, EltProd or EltMax
	Coeffs       []float32 // eltwise sum coefficients (nil: all 1)
	// Residual: a conv step adds In[1] to its output (after the bias,
	// before Act).
	Residual bool
	// InPlace: Out lives in In[0]'s buffer (a standalone ReLU whose input is
	// read by nobody afterwards, or a flatten, which computes nothing).
	InPlace bool
}

// Cut is a place in a manifest's op list where exactly one value crosses:
// everything before Op has been computed and only Blob (of Shape) is read
// from Op on. The network can be split there (Compile's First and End).
type Cut struct {
	Op    int
	Blob  string
	Shape [3]int
}

// Cuts lists the cuts of a validated manifest between its first and last
// op, in order. Between ResNet's residual blocks only the block output
// crosses; inside a block, the shortcut and the branch both do.
func Cuts(m *weights.Manifest) []Cut {
	g := newVersions(m)
	var cuts []Cut
	for i := 1; i < len(m.Ops); i++ {
		if v, ok := g.crossing(i); ok {
			cuts = append(cuts, Cut{Op: i, Blob: g.blob[v], Shape: g.shape[v]})
		}
	}
	return cuts
}

// versions numbers every blob version of a manifest: version 0 is the
// network input, version i+1 is op i's output.
type versions struct {
	blob  []string
	shape [][3]int
	ins   [][]int // op -> versions read
	last  []int   // version -> last op reading it (-1: none); len(ops) for the network output
}

func newVersions(m *weights.Manifest) *versions {
	n := len(m.Ops)
	g := &versions{blob: make([]string, n+1), shape: make([][3]int, n+1), ins: make([][]int, n), last: make([]int, n+1)}
	g.blob[0], g.shape[0] = m.Input.Name, [3]int{m.Input.Channels, m.Input.Height, m.Input.Width}
	latest := map[string]int{m.Input.Name: 0}
	for i := range g.last {
		g.last[i] = -1
	}
	for i, op := range m.Ops {
		for _, name := range op.Inputs {
			v := latest[name] // Validate guarantees it exists
			g.ins[i] = append(g.ins[i], v)
			g.last[v] = i
		}
		g.blob[i+1], g.shape[i+1] = op.Output, op.OutShape
		latest[op.Output] = i + 1
	}
	g.last[latest[m.Output]] = n
	return g
}

// crossing returns the one version defined before op i and read at op i or
// later, if there is exactly one.
func (g *versions) crossing(i int) (int, bool) {
	found, n := -1, 0
	for v := 0; v <= i; v++ { // versions 0..i are defined before op i
		if g.last[v] >= i {
			found, n = v, n+1
		}
	}
	return found, n == 1
}

// Compile compiles the ops of a validated manifest (m came from
// weights.Read or ParseManifest) with o. Its errors are caller mistakes: a
// range that is not made of cuts, a tap that names no blob of the range.
func Compile(m *weights.Manifest, o CompileOptions) (*Program, error) {
	if o.End == 0 {
		o.End = len(m.Ops)
	}
	if o.First < 0 || o.First >= o.End || o.End > len(m.Ops) {
		return nil, fmt.Errorf("core: Compile: op range [%d, %d) is not within the %d ops", o.First, o.End, len(m.Ops))
	}
	g := newVersions(m)
	in, out := 0, g.last[0]
	if o.First > 0 {
		v, ok := g.crossing(o.First)
		if !ok {
			return nil, fmt.Errorf("core: Compile: op %d (%s) is not a cut: more than one value crosses there", o.First, m.Ops[o.First].Name)
		}
		in = v
	}
	if o.End < len(m.Ops) {
		v, ok := g.crossing(o.End)
		if !ok {
			return nil, fmt.Errorf("core: Compile: op %d (%s) is not a cut: more than one value crosses there", o.End, m.Ops[o.End].Name)
		}
		out = v // the input itself when the range computes nothing that is read later
	} else {
		for v := range g.last {
			if g.last[v] == len(m.Ops) {
				out = v
			}
		}
	}

	p := &Program{Manifest: m, Options: o}
	// ids maps manifest versions to program values.
	ids := map[int]int{}
	addValue := func(ver, def int) int {
		p.Values = append(p.Values, Value{Blob: g.blob[ver], Shape: g.shape[ver], Def: def, Last: def,
			Size: g.shape[ver][0] * g.shape[ver][1] * g.shape[ver][2]})
		ids[ver] = len(p.Values) - 1
		return ids[ver]
	}
	p.Input = addValue(in, -1)
	for i := o.First; i < o.End; i++ {
		op := &m.Ops[i]
		s := Step{Op: i, Fused: -1, Name: op.Name, Kind: op.Type, Weight: op.Weight, Bias: op.Bias,
			Act: kernels.Act{ReLU: op.ReLU || op.Type == weights.OpReLU, Slope: float32(op.NegativeSlope)}}
		for _, ver := range g.ins[i] {
			s.In = append(s.In, ids[ver]) // ranges start at cuts: every version read is in ids
		}
		inShape := p.Values[s.In[0]].Shape
		switch op.Type {
		case weights.OpConv:
			s.Conv = convParams(op, inShape)
		case weights.OpPool:
			s.Pool = kernels.PoolParams{
				Max: op.Pool == "max",
				C:   inShape[0], InH: inShape[1], InW: inShape[2],
				OutH: op.OutShape[1], OutW: op.OutShape[2],
				KH: op.Kernel[0], KW: op.Kernel[1],
				SH: op.Stride[0], SW: op.Stride[1],
				PH: op.Pad[0], PW: op.Pad[1],
			}
		case weights.OpEltwise:
			s.Elt = map[string]int{"sum": kernels.EltSum, "prod": kernels.EltProd, "max": kernels.EltMax}[op.Operation]
			for _, k := range op.Coeffs {
				s.Coeffs = append(s.Coeffs, float32(k))
			}
		}
		p.Steps = append(p.Steps, s)
		p.Steps[len(p.Steps)-1].Out = addValue(i+1, len(p.Steps)-1)
	}
	p.Output = ids[out]
	for _, name := range o.Taps {
		v := -1
		for id := range p.Values {
			if p.Values[id].Blob == name {
				v = id // the last version
			}
		}
		if v < 0 {
			return nil, fmt.Errorf("core: Compile: tap %q is not a blob of ops [%d, %d)", name, o.First, o.End)
		}
		p.Taps = append(p.Taps, v)
	}
	if o.FuseResidual {
		p.fuseResidual()
	}
	p.plan(!o.NoReuse)
	return p, nil
}

// convParams is the kernel description of conv op reading an input of shape in.
func convParams(op *weights.Op, in [3]int) kernels.ConvParams {
	d := op.Dilations()
	return kernels.ConvParams{
		InC: in[0], InH: in[1], InW: in[2],
		OutC: op.OutShape[0], OutH: op.OutShape[1], OutW: op.OutShape[2],
		KH: op.Kernel[0], KW: op.Kernel[1],
		SH: op.Stride[0], SW: op.Stride[1],
		PH: op.Pad[0], PW: op.Pad[1],
		DH: d[0], DW: d[1],
		Group: op.Groups(),
	}
}

// readers counts, per value, the steps that read it (a step reading a value
// twice counts once), plus one for the output and each tap.
func (p *Program) readers() []int {
	n := make([]int, len(p.Values))
	for i := range p.Steps {
		for j, v := range p.Steps[i].In {
			if !slices.Contains(p.Steps[i].In[:j], v) {
				n[v]++
			}
		}
	}
	n[p.Output]++
	for _, v := range p.Taps {
		n[v]++
	}
	return n
}

// fuseResidual rewrites conv + eltwise sum pairs (see CompileOptions).
func (p *Program) fuseResidual() {
	readers := p.readers()
	drop := make([]bool, len(p.Steps))
	for e := range p.Steps {
		es := &p.Steps[e]
		if es.Kind != weights.OpEltwise || es.Elt != kernels.EltSum || len(es.In) != 2 || es.In[0] == es.In[1] {
			continue
		}
		if len(es.Coeffs) != 0 && (es.Coeffs[0] != 1 || es.Coeffs[1] != 1) {
			continue
		}
		// The operand computed last is the conv to fuse into: the other one
		// exists by then.
		a, b := es.In[0], es.In[1]
		if p.Values[a].Def < p.Values[b].Def {
			a, b = b, a
		}
		c := p.Values[a].Def
		if c < 0 || drop[c] {
			continue
		}
		cs := &p.Steps[c]
		if cs.Kind != weights.OpConv || cs.Residual || cs.Act.ReLU || readers[a] != 1 {
			continue
		}
		cs.In = append(cs.In, b)
		cs.Residual = true
		cs.Fused = es.Op
		cs.Act = es.Act
		cs.Out = es.Out
		p.Values[es.Out].Def = c
		drop[e] = true
	}
	kept := p.Steps[:0]
	newIndex := make([]int, len(p.Steps))
	for i, s := range p.Steps {
		newIndex[i] = len(kept)
		if !drop[i] {
			kept = append(kept, s)
		}
	}
	p.Steps = kept
	for i := range p.Values {
		if d := p.Values[i].Def; d >= 0 {
			p.Values[i].Def = newIndex[d]
		}
	}
	// Values of dropped steps (the conv outputs folded away) keep a Def but
	// no reader and no step writing them: plan gives them no storage.
}

// plan computes every value's last reader and packs storages into buffers.
//
// Values are grouped into storages: a flatten output shares its input's
// storage (same data, new shape), and a standalone ReLU whose input storage
// is read by nobody after it runs in place. Each storage is live from the
// step that first writes it to the last step that reads any of its values
// (the output and taps stay live to the end). Storages are then packed into
// buffers greedily in step order: before step i runs, each storage it
// starts takes the smallest free buffer that is large enough (or grows the
// largest free one, or opens a new one); after step i, the storages whose
// last reader was step i give their buffers back. A step's output is
// assigned before its inputs are released, so no step writes a buffer it
// reads from, except in place (InPlace).
func (p *Program) plan(reuse bool) {
	n := len(p.Steps)
	for i := range p.Values {
		p.Values[i].Last = p.Values[i].Def
	}
	for i, s := range p.Steps {
		for _, v := range s.In {
			p.Values[v].Last = i
		}
	}
	p.Values[p.Output].Last = n
	for _, v := range p.Taps {
		p.Values[v].Last = n
	}

	type storage struct{ size, start, end, buf int }
	var stores []storage
	storeOf := make([]int, len(p.Values))
	for i := range storeOf {
		storeOf[i] = -1
	}
	newStorage := func(v int) {
		val := &p.Values[v]
		stores = append(stores, storage{size: val.Size, start: val.Def, end: val.Last, buf: -1})
		storeOf[v] = len(stores) - 1
	}
	join := func(v, s int) {
		storeOf[v] = s
		stores[s].size = max(stores[s].size, p.Values[v].Size)
		stores[s].end = max(stores[s].end, p.Values[v].Last)
	}
	newStorage(p.Input)
	for i := range p.Steps {
		s := &p.Steps[i]
		in := storeOf[s.In[0]]
		switch {
		case s.Kind == weights.OpFlatten:
			join(s.Out, in)
			s.InPlace = true
		case s.Kind == weights.OpReLU && reuse && stores[in].end == i:
			// Every value of the input's storage written so far has its last
			// reader here; values written later that join it derive from Out.
			join(s.Out, in)
			s.InPlace = true
		default:
			newStorage(s.Out)
		}
	}

	// starts[i+1] lists storages first written by step i (index 0: the input).
	starts := make([][]int, n+1)
	ends := make([][]int, n+1)
	for s, st := range stores {
		starts[st.start+1] = append(starts[st.start+1], s)
		if st.end < n {
			ends[st.end+1] = append(ends[st.end+1], s)
		}
	}
	p.Buffers = nil
	var free []int
	for step := range starts {
		for _, s := range starts[step] {
			if !reuse {
				stores[s].buf = len(p.Buffers)
				p.Buffers = append(p.Buffers, stores[s].size)
				continue
			}
			stores[s].buf, free = p.pick(free, stores[s].size)
		}
		if reuse {
			for _, s := range ends[step] {
				free = append(free, stores[s].buf)
			}
		}
	}
	for v := range p.Values {
		if s := storeOf[v]; s >= 0 {
			p.Values[v].Buffer = stores[s].buf
		} else {
			p.Values[v].Buffer = -1 // folded away by fusion: never stored
		}
	}
}

// pick returns a buffer for a storage of size values: the smallest free
// buffer that fits, else the largest free buffer grown to size, else a new
// one. It returns the free list without the chosen buffer.
func (p *Program) pick(free []int, size int) (int, []int) {
	best, largest := -1, -1
	for j, b := range free {
		if p.Buffers[b] >= size && (best < 0 || p.Buffers[b] < p.Buffers[free[best]]) {
			best = j
		}
		if largest < 0 || p.Buffers[b] > p.Buffers[free[largest]] {
			largest = j
		}
	}
	if best < 0 {
		best = largest
	}
	if best < 0 {
		p.Buffers = append(p.Buffers, size)
		return len(p.Buffers) - 1, free
	}
	b := free[best]
	p.Buffers[b] = max(p.Buffers[b], size)
	return b, append(free[:best], free[best+1:]...)
}

// ActivationFloats is the size of all activation buffers together, in
// float32s per image.
func (p *Program) ActivationFloats() int {
	n := 0
	for _, b := range p.Buffers {
		n += b
	}
	return n
}

// valueFloats is what a plan without reuse would need: every stored value apart.
func (p *Program) valueFloats() int {
	n := 0
	for _, v := range p.Values {
		if v.Buffer >= 0 {
			n += v.Size
		}
	}
	return n
}

// InputSize and OutputSize are the floats per image of the program's input
// and output.
func (p *Program) InputSize() int  { return p.Values[p.Input].Size }
func (p *Program) OutputSize() int { return p.Values[p.Output].Size }

// Tensors lists the weight and bias tensors the steps use, each once, in
// step order.
func (p *Program) Tensors() []*weights.Tensor {
	seen := map[string]bool{}
	var ts []*weights.Tensor
	for _, s := range p.Steps {
		for _, name := range []string{s.Weight, s.Bias} {
			if name == "" || seen[name] {
				continue
			}
			seen[name] = true
			ts = append(ts, findTensor(p.Manifest, name))
		}
	}
	return ts
}

// WeightBytes is the stored size of the tensors the steps use.
func (p *Program) WeightBytes() int64 {
	var n int64
	for _, t := range p.Tensors() {
		n += t.Length
	}
	return n
}

// Params is the number of weight and bias values the steps use.
func (p *Program) Params() int64 {
	var n int64
	for _, t := range p.Tensors() {
		n += t.Elements()
	}
	return n
}

func findTensor(m *weights.Manifest, name string) *weights.Tensor {
	for i := range m.Tensors {
		if m.Tensors[i].Name == name {
			return &m.Tensors[i]
		}
	}
	return nil
}
