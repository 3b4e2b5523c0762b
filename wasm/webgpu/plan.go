package webgpu

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/weights"
)

// This file turns a compiled core.Program into the dispatches of one
// inference for a batch of n: which pipeline, which uniform parameters,
// which buffers at which binding, and how many workgroups. It is plain Go
// (no syscall/js), so that the planning is unit-tested natively.

// PipelineKey identifies one compute pipeline: a shader file, an entry
// point and its override constants (canonical "NAME=value" pairs joined by
// ";", sorted). Pipelines are cached by key on a Device.
type PipelineKey struct {
	Shader, Entry, Consts string
}

func (k PipelineKey) String() string {
	if k.Entry == "" {
		return k.Shader
	}
	if k.Consts == "" {
		return k.Shader + ":" + k.Entry
	}
	return k.Shader + ":" + k.Entry + "{" + k.Consts + "}"
}

// Constants returns the override constants as a map (for the pipeline descriptor).
func (k PipelineKey) Constants() map[string]float64 {
	m := map[string]float64{}
	if k.Consts == "" {
		return m
	}
	for _, kv := range strings.Split(k.Consts, ";") {
		name, val, _ := strings.Cut(kv, "=")
		var f float64
		fmt.Sscan(val, &f)
		m[name] = f
	}
	return m
}

func key(shader, entry string, consts ...string) PipelineKey {
	slices.Sort(consts)
	return PipelineKey{Shader: shader, Entry: entry, Consts: strings.Join(consts, ";")}
}

// Binding types of a pipeline layout entry.
const (
	bindUniform  = iota // var<uniform>
	bindReadOnly        // var<storage, read>
	bindStorage         // var<storage, read_write>
)

// layouts lists, per shader entry point, its bindings: binding number and type.
var layouts = map[string][][2]int{
	"conv.wgsl:main":           {{0, bindUniform}, {1, bindReadOnly}, {2, bindReadOnly}, {3, bindReadOnly}, {4, bindReadOnly}, {5, bindStorage}, {6, bindStorage}},
	"conv.wgsl:reduce":         {{0, bindUniform}, {1, bindReadOnly}, {2, bindReadOnly}, {3, bindReadOnly}, {4, bindReadOnly}, {5, bindStorage}, {6, bindStorage}},
	"pool.wgsl:main":           {{0, bindUniform}, {1, bindReadOnly}, {2, bindStorage}},
	"softmax.wgsl:main":        {{0, bindUniform}, {1, bindReadOnly}, {2, bindStorage}},
	"innerproduct.wgsl:main":   {{0, bindUniform}, {1, bindReadOnly}, {2, bindReadOnly}, {3, bindReadOnly}, {5, bindStorage}},
	"elementwise.wgsl:eltwise": {{0, bindUniform}, {1, bindReadOnly}, {2, bindReadOnly}, {3, bindStorage}},
	"elementwise.wgsl:affine":  {{0, bindUniform}, {1, bindReadOnly}, {2, bindReadOnly}, {3, bindStorage}},
	"elementwise.wgsl:copy":    {{0, bindUniform}, {1, bindReadOnly}, {3, bindStorage}},
	"relu.wgsl:relu":           {{0, bindUniform}, {1, bindStorage}, {2, bindReadOnly}},
	"relu.wgsl:relu_inplace":   {{0, bindUniform}, {1, bindStorage}},
}

// Layout returns the bindings of k's entry point.
func (k PipelineKey) Layout() [][2]int { return layouts[k.Shader+":"+k.Entry] }

// Slot kinds: what a binding holds.
const (
	slotParams  = iota // this dispatch's uniform parameters
	slotRegion         // a weight region (Index: region)
	slotValue          // an activation value's buffer (Index: value id)
	slotPartial        // the split-K scratch buffer
	slotDummy          // an unused binding (Index: binding number, so that no two alias)
)

// Slot is what one binding of a dispatch holds.
type Slot struct {
	Binding int
	Kind    int
	Index   int
}

// Dispatch is one compute dispatch.
type Dispatch struct {
	Step   int // index into Program.Steps
	Key    PipelineKey
	Params []uint32 // the uniform block, word by word (floats as their bits)
	Slots  []Slot   // one per binding of Key's layout, in layout order
	Groups [3]int   // workgroups in x, y, z
}

// Plan is one inference of a batch of N images: the dispatches in order and
// the scratch they need besides the program's activation buffers.
type Plan struct {
	N             int
	Dispatches    []Dispatch
	PartialFloats int // split-K scratch, in floats (0: none)
}

// Keys returns the distinct pipelines the plan uses, in first-use order.
func (p *Plan) Keys() []PipelineKey {
	var ks []PipelineKey
	for _, d := range p.Dispatches {
		if !slices.Contains(ks, d.Key) {
			ks = append(ks, d.Key)
		}
	}
	return ks
}

// Counts reports how many dispatches each shader entry point gets, by
// "shader:entry", and the total.
func (p *Plan) Counts() (map[string]int, int) {
	m := map[string]int{}
	for _, d := range p.Dispatches {
		m[d.Key.Shader+":"+d.Key.Entry]++
	}
	return m, len(p.Dispatches)
}

// Tiling chooses conv tiles. TargetWorkgroups is how many workgroups a
// dispatch should have to fill a large GPU (an H200 has 132 SMs, each
// taking two 256-thread workgroups at once): below it the planner takes the
// small tile, then splits K. Force ("large", "small", "split") overrides the
// choice for every conv (tests exercise each variant on the same shapes).
type Tiling struct {
	TargetWorkgroups int
	Force            string
}

// DefaultTargetWorkgroups fills two workgroups per SM of a 132-SM GPU.
const DefaultTargetWorkgroups = 264

// minSplitK: K below this is not split (the reduce pass would cost more than it saves).
const minSplitK = 1024

// linearMaxX is the most workgroups per grid dimension WebGPU guarantees.
const linearMaxX = 65535

// linear is the grid for total threads in workgroups of 256, folded into
// two dimensions (the shaders recompute the index from num_workgroups).
func linear(total int) [3]int {
	wgs := max(ceilDiv(total, 256), 1)
	x := min(wgs, linearMaxX)
	return [3]int{x, ceilDiv(wgs, x), 1}
}

func f32bits(f float32) uint32 { return math.Float32bits(f) }

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// Layout of a program's activation values in GPU buffers: the program's
// buffers, each holding n images of Program.Buffers[b] floats one after another.
func valueStride(p *core.Program, v int) uint32 { return uint32(p.Buffers[p.Values[v].Buffer]) }
func valueOff(p *core.Program, v int) uint32    { return uint32(p.Values[v].Offset) }

// NewArena lays out the weights the program's steps use.
func NewArena(p *core.Program) *Arena {
	a := &Arena{ByKey: map[string]int{}}
	for i := range p.Steps {
		s := &p.Steps[i]
		switch s.Kind {
		case weights.OpConv:
			t := findTensor(p.Manifest, s.Weight)
			a.add("conv:"+s.Weight, convRegion(t, s.Conv))
			if s.Bias != "" {
				a.add("f32:"+s.Bias, f32Region(s.Conv.OutC, s.Bias))
			}
		case weights.OpInnerProduct:
			t := findTensor(p.Manifest, s.Weight)
			n := p.Values[s.Out].Size
			a.add("rows:"+s.Weight, rowsRegion(t, n, p.Values[s.In[0]].Size))
			if s.Bias != "" {
				a.add("f32:"+s.Bias, f32Region(n, s.Bias))
			}
		case weights.OpAffine:
			c := p.Values[s.In[0]].Shape[0]
			a.add("affine:"+s.Weight+":"+s.Bias, f32Region(c, s.Weight, s.Bias))
		}
	}
	return a
}

func findTensor(m *weights.Manifest, name string) *weights.Tensor {
	for i := range m.Tensors {
		if m.Tensors[i].Name == name {
			return &m.Tensors[i]
		}
	}
	return nil
}

// convTile is one conv.wgsl configuration: TX x TY threads, 4TY x 4TX tiles.
type convTile struct{ tx, ty int }

var (
	tileLarge = convTile{16, 16} // 64 x 64, 256 threads
	tileSmall = convTile{8, 8}   // 32 x 32, 64 threads
)

// convChoice decides the tile and the K split of a conv for a batch of n.
func convChoice(c convShape, n int, t Tiling) (convTile, int) {
	target := t.TargetWorkgroups
	if target <= 0 {
		target = DefaultTargetWorkgroups
	}
	count := func(tl convTile) int {
		return c.groups * ceilDiv(c.m, 4*tl.ty) * ceilDiv(n*c.ohw, 4*tl.tx)
	}
	splits := func(wgs int) int {
		want := ceilDiv(target, wgs)
		return max(1, min(want, c.k/(4*convBK))) // at least 4 BK steps per split
	}
	switch t.Force {
	case "large":
		return tileLarge, 1
	case "small":
		return tileSmall, 1
	case "split":
		return tileSmall, max(2, min(4, c.k/convBK))
	}
	if count(tileLarge) >= target {
		return tileLarge, 1
	}
	small := count(tileSmall)
	if small >= target || c.k < minSplitK {
		return tileSmall, 1
	}
	return tileSmall, splits(small)
}

type convShape struct{ groups, m, k, ohw int }

// BuildPlan plans one inference of prog for a batch of n with the weights
// laid out by a.
func BuildPlan(prog *core.Program, a *Arena, n int, t Tiling) (*Plan, error) {
	pl := &Plan{N: n}
	for i := range prog.Steps {
		s := &prog.Steps[i]
		in := s.In[0]
		out := s.Out
		inShape := prog.Values[in].Shape
		switch s.Kind {
		case weights.OpConv:
			pl.conv(prog, a, i, n, t)
		case weights.OpPool:
			pp := s.Pool
			sh, sw := max(pp.SH, 1), max(pp.SW, 1)
			pl.add(Dispatch{Step: i, Key: key("pool.wgsl", "main"),
				Params: []uint32{uint32(n), uint32(pp.C), uint32(pp.InH), uint32(pp.InW),
					valueStride(prog, in), valueOff(prog, in), uint32(pp.OutH), uint32(pp.OutW),
					valueStride(prog, out), valueOff(prog, out), uint32(pp.KH), uint32(pp.KW),
					uint32(sh), uint32(sw), uint32(pp.PH), uint32(pp.PW), b2u(pp.Max)},
				Slots:  []Slot{{0, slotParams, 0}, {1, slotValue, in}, {2, slotValue, out}},
				Groups: linear(n * prog.Values[out].Size)})
		case weights.OpEltwise:
			coeff := func(j int) float32 {
				if s.Coeffs == nil || s.Elt != 0 {
					return 1
				}
				return s.Coeffs[j]
			}
			size := prog.Values[out].Size
			for j := 1; j < len(s.In); j++ {
				accum := j > 1
				last := j == len(s.In)-1
				a0 := s.In[0]
				aSlot := Slot{1, slotValue, a0}
				if accum {
					aSlot = Slot{1, slotDummy, 1}
				}
				flags := b2u(last && s.Act.ReLU) | b2u(accum)<<1
				pl.add(Dispatch{Step: i, Key: key("elementwise.wgsl", "eltwise"),
					Params: []uint32{uint32(n), uint32(size), valueStride(prog, a0), valueOff(prog, a0),
						valueStride(prog, s.In[j]), valueOff(prog, s.In[j]), valueStride(prog, out), valueOff(prog, out),
						uint32(s.Elt), flags, f32bits(coeff(0)), f32bits(coeff(j)), f32bits(s.Act.Slope), 0, 0, 0},
					Slots:  []Slot{{0, slotParams, 0}, aSlot, {2, slotValue, s.In[j]}, {3, slotValue, out}},
					Groups: linear(n * size)})
			}
		case weights.OpReLU:
			size := prog.Values[out].Size
			params := []uint32{uint32(n), uint32(size), valueStride(prog, in), valueOff(prog, in),
				valueStride(prog, out), valueOff(prog, out), f32bits(s.Act.Slope)}
			if s.InPlace {
				pl.add(Dispatch{Step: i, Key: key("relu.wgsl", "relu_inplace"), Params: params,
					Slots: []Slot{{0, slotParams, 0}, {1, slotValue, out}}, Groups: linear(n * size)})
			} else {
				pl.add(Dispatch{Step: i, Key: key("relu.wgsl", "relu"), Params: params,
					Slots: []Slot{{0, slotParams, 0}, {1, slotValue, out}, {2, slotValue, in}}, Groups: linear(n * size)})
			}
		case weights.OpAffine:
			size := prog.Values[out].Size
			r := a.ByKey["affine:"+s.Weight+":"+s.Bias]
			pl.add(Dispatch{Step: i, Key: key("elementwise.wgsl", "affine"),
				Params: []uint32{uint32(n), uint32(size), valueStride(prog, in), valueOff(prog, in), 0, 0,
					valueStride(prog, out), valueOff(prog, out), 0, b2u(s.Act.ReLU), 0, 0, f32bits(s.Act.Slope),
					uint32(inShape[1] * inShape[2]), uint32(inShape[0]), 0},
				Slots:  []Slot{{0, slotParams, 0}, {1, slotValue, in}, {2, slotRegion, r}, {3, slotValue, out}},
				Groups: linear(n * size)})
		case weights.OpInnerProduct:
			r := a.ByKey["rows:"+s.Weight]
			reg := &a.Regions[r]
			bias := Slot{2, slotDummy, 2}
			if s.Bias != "" {
				bias = Slot{2, slotRegion, a.ByKey["f32:"+s.Bias]}
			}
			var consts []string
			if reg.Kind == regionRows32 {
				consts = append(consts, "WEIGHT_F32=1")
			}
			outs := prog.Values[out].Size
			if outs > linearMaxX || n > linearMaxX {
				return nil, fmt.Errorf("webgpu: inner product %s has %d outputs; at most %d fit one dispatch", s.Name, outs, linearMaxX)
			}
			pl.add(Dispatch{Step: i, Key: key("innerproduct.wgsl", "main", consts...),
				Params: []uint32{uint32(n), uint32(reg.K), uint32(reg.RowWords), valueStride(prog, in), valueOff(prog, in),
					valueStride(prog, out), valueOff(prog, out), b2u(s.Bias != "") | b2u(s.Act.ReLU)<<2, f32bits(s.Act.Slope)},
				Slots:  []Slot{{0, slotParams, 0}, {1, slotRegion, r}, bias, {3, slotValue, in}, {5, slotValue, out}},
				Groups: [3]int{outs, n, 1}})
		case weights.OpSoftmax:
			hw := inShape[1] * inShape[2]
			if hw > linearMaxX {
				return nil, fmt.Errorf("webgpu: softmax %s over %d positions; at most %d fit one dispatch", s.Name, hw, linearMaxX)
			}
			pl.add(Dispatch{Step: i, Key: key("softmax.wgsl", "main"),
				Params: []uint32{uint32(n), uint32(inShape[0]), uint32(hw), valueStride(prog, in), valueOff(prog, in),
					valueStride(prog, out), valueOff(prog, out)},
				Slots:  []Slot{{0, slotParams, 0}, {1, slotValue, in}, {2, slotValue, out}},
				Groups: [3]int{hw, n, 1}})
		case weights.OpConcat:
			dst := 0
			for _, v := range s.In {
				size := prog.Values[v].Size
				pl.add(Dispatch{Step: i, Key: key("elementwise.wgsl", "copy"),
					Params: []uint32{uint32(n), uint32(size), valueStride(prog, v), valueOff(prog, v), 0, 0,
						valueStride(prog, out), valueOff(prog, out), 0, 0, 0, 0, 0, 0, 0, uint32(dst)},
					Slots:  []Slot{{0, slotParams, 0}, {1, slotValue, v}, {3, slotValue, out}},
					Groups: linear(n * size)})
				dst += size
			}
		case weights.OpFlatten:
			// The output shares the input's storage: nothing to run.
		default:
			return nil, fmt.Errorf("webgpu: op %s of type %q has no shader", s.Name, s.Kind)
		}
	}
	for _, d := range pl.Dispatches {
		for _, g := range d.Groups {
			if g > linearMaxX {
				return nil, &LimitError{Limit: "maxComputeWorkgroupsPerDimension", Need: int64(g), Have: linearMaxX,
					What: fmt.Sprintf("step %s (%s) for a batch of %d", prog.Steps[d.Step].Name, d.Key, n)}
			}
		}
	}
	return pl, nil
}

func (pl *Plan) add(d Dispatch) { pl.Dispatches = append(pl.Dispatches, d) }

// conv plans step i, a convolution: one dispatch, or two with a K split.
func (pl *Plan) conv(prog *core.Program, a *Arena, i, n int, t Tiling) {
	s := &prog.Steps[i]
	c := s.Conv
	in, out := s.In[0], s.Out
	r := a.ByKey["conv:"+s.Weight]
	reg := &a.Regions[r]
	sh := convShape{groups: reg.Groups, m: reg.M, k: reg.K, ohw: c.OutH * c.OutW}
	tile, splits := convChoice(sh, n, t)
	kSplit := alignUp(ceilDiv(reg.K, splits), convBK)
	splits = ceilDiv(reg.K, kSplit)
	is1x1 := c.KH == 1 && c.KW == 1 && max(c.SH, 1) == 1 && max(c.SW, 1) == 1 && c.PH == 0 && c.PW == 0 &&
		c.InH == c.OutH && c.InW == c.OutW
	consts := []string{fmt.Sprintf("TX=%d", tile.tx), fmt.Sprintf("TY=%d", tile.ty)}
	if is1x1 {
		consts = append(consts, "IS_1X1=1")
	}
	if splits > 1 {
		consts = append(consts, "SPLIT=1")
	}
	if reg.Kind == regionConv32 {
		consts = append(consts, "WEIGHT_F32=1")
	}
	var flags uint32
	bias := Slot{2, slotDummy, 2}
	if s.Bias != "" {
		flags |= 1
		bias = Slot{2, slotRegion, a.ByKey["f32:"+s.Bias]}
	}
	res := Slot{4, slotDummy, 4}
	var resStride, resOff uint32
	if s.Residual {
		flags |= 2
		res = Slot{4, slotValue, s.In[1]}
		resStride, resOff = valueStride(prog, s.In[1]), valueOff(prog, s.In[1])
	}
	if s.Act.ReLU {
		flags |= 4
	}
	params := []uint32{uint32(n), uint32(reg.Groups), uint32(c.InC / reg.Groups), uint32(c.InH), uint32(c.InW),
		valueStride(prog, in), valueOff(prog, in), uint32(reg.M), uint32(c.OutH), uint32(c.OutW),
		valueStride(prog, out), valueOff(prog, out), resStride, resOff,
		uint32(c.KH), uint32(c.KW), uint32(max(c.SH, 1)), uint32(max(c.SW, 1)), uint32(c.PH), uint32(c.PW),
		uint32(max(c.DH, 1)), uint32(max(c.DW, 1)), uint32(reg.K), uint32(reg.KPad), uint32(reg.MPad),
		uint32(ceilDiv(reg.M, 4*tile.ty)), uint32(kSplit), uint32(splits), flags, f32bits(s.Act.Slope)}
	outSlot, partial := Slot{5, slotValue, out}, Slot{6, slotDummy, 6}
	if splits > 1 {
		outSlot, partial = Slot{5, slotDummy, 5}, Slot{6, slotPartial, 0}
		pl.PartialFloats = max(pl.PartialFloats, splits*c.OutC*n*sh.ohw)
	}
	inSlot := Slot{3, slotValue, in}
	pl.add(Dispatch{Step: i, Key: key("conv.wgsl", "main", consts...), Params: params,
		Slots:  []Slot{{0, slotParams, 0}, {1, slotRegion, r}, bias, inSlot, res, outSlot, partial},
		Groups: [3]int{ceilDiv(n*sh.ohw, 4*tile.tx), reg.Groups * ceilDiv(reg.M, 4*tile.ty), splits}})
	if splits > 1 {
		pl.add(Dispatch{Step: i, Key: key("conv.wgsl", "reduce"), Params: params,
			Slots:  []Slot{{0, slotParams, 0}, {1, slotDummy, 1}, bias, {3, slotDummy, 3}, res, {5, slotValue, out}, {6, slotPartial, 0}},
			Groups: linear(c.OutC * n * sh.ohw)})
	}
}
