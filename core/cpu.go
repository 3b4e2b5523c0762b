package core

import (
	"fmt"
	"runtime"

	"github.com/residual-go/residual/core/kernels"
	"github.com/residual-go/residual/core/weights"
)

// Backend runs the whole network: one preprocessed input tensor in, the
// output blob (the class probabilities) out. The CPU executor of this package
// is one implementation; a WebGPU backend (wasm/) is another, selected with
// Options.Backend. A Backend is used by one goroutine at a time (Model
// serializes calls).
type Backend interface {
	// Run computes the network on input (Channels x Height x Width float32,
	// preprocessed) and returns the output blob. The returned slice belongs
	// to the backend and is valid until the next Run.
	Run(input []float32) ([]float32, error)
	// Describe reports what the backend is and the memory it holds.
	Describe() BackendInfo
	// Close releases the backend's resources (goroutines, GPU buffers).
	Close()
}

// BackendInfo describes a Backend.
type BackendInfo struct {
	Name            string // "simd" or "scalar" for the CPU, e.g. "webgpu" for another
	WeightMode      string // "f16" or "f32"
	WeightBytes     int64  // bytes of weights the backend keeps resident
	ActivationBytes int64  // bytes of activation buffers (after liveness packing)
	ScratchBytes    int64  // other working memory (im2col, widened weights)
}

// CPUOptions configure NewCPU.
type CPUOptions struct {
	// Float32Weights widens every float16 tensor once, now; otherwise each op
	// widens its weights into one shared scratch buffer when it runs.
	Float32Weights bool
	// Threads for the kernels (0: runtime.NumCPU(); always 1 under wasm).
	Threads int

	noReuse bool // tests: give every value its own buffer
}

// CPU is the Backend that runs the network with package kernels, float32
// activations and accumulation. Its plan is built once: activation buffers
// packed by liveness, every op's input and output slices resolved, so that
// Run allocates nothing.
type CPU struct {
	plan   *plan
	steps  []step
	runner *kernels.Runner
	arena  []float32 // activation buffers
	input  []float32 // the input value's buffer
	output []float32 // the output value's buffer
	wide   []float32 // f16 mode: the op's weights and bias, widened
	info   BackendInfo
}

// step is one op with everything resolved.
type step struct {
	typ       string
	ins       [][]float32
	out       []float32
	conv      kernels.ConvParams
	pool      kernels.PoolParams
	eltOp     int
	coeffs    []float32
	act       kernels.Act
	channels  int
	hw        int
	w, b      []float32 // f32 weights (either mode: tensors stored as f32 are used in place)
	w16, b16  []uint16  // f16 weights widened per run (f16 mode)
	scratch   []float32 // conv scratch (shared by all steps)
	copyWidth []int     // concat: values per input
}

// NewCPU plans the network of w for the CPU. In float32 mode the returned
// backend holds its own float32 copy of every float16 tensor, and the caller
// may Release w afterwards.
func NewCPU(w *weights.Weights, o CPUOptions) (*CPU, error) {
	m := w.Manifest
	p := newPlan(m, !o.noReuse)
	threads := o.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	if runtime.GOARCH == "wasm" {
		threads = 1
	}
	c := &CPU{plan: p, info: BackendInfo{Name: kernels.Impl(), WeightMode: "f16"}}
	if o.Float32Weights {
		c.info.WeightMode = "f32"
	}

	// Activation buffers: one arena, each buffer a full-capacity-limited window.
	c.arena = make([]float32, p.activationFloats())
	bufs := make([][]float32, len(p.bufs))
	off := 0
	for i, n := range p.bufs {
		bufs[i] = c.arena[off : off+n : off+n]
		off += n
	}
	view := func(v int) []float32 {
		val := p.values[v]
		return bufs[p.storage[val.storage].buf][:val.size]
	}
	c.input = view(p.input)
	c.output = view(p.output)
	c.info.ActivationBytes = int64(len(c.arena)) * 4

	// Weights: f32 mode widens each f16 tensor once; f16 mode keeps views.
	widened := map[string][]float32{}
	stored32 := map[string]int64{} // f32 tensors the ops use in place
	missing := ""
	tensor32 := func(name string) ([]float32, []uint16) {
		if name == "" {
			return nil, nil
		}
		if f := w.F32(name); f != nil {
			stored32[name] = int64(len(f)) * 4
			return f, nil
		}
		h := w.F16(name)
		if h == nil {
			missing = name // the weights were released
			return nil, nil
		}
		if !o.Float32Weights {
			return nil, h
		}
		if f, ok := widened[name]; ok {
			return f, nil
		}
		f := make([]float32, len(h))
		kernels.WidenF16(f, h)
		widened[name] = f
		return f, nil
	}

	convScratch, wideSize := 0, 0
	c.steps = make([]step, len(m.Ops))
	for i := range m.Ops {
		op := &m.Ops[i]
		s := &c.steps[i]
		s.typ = op.Type
		for _, v := range p.opIns[i] {
			s.ins = append(s.ins, view(v))
		}
		s.out = view(p.opOut[i])
		s.act = kernels.Act{ReLU: op.ReLU || op.Type == weights.OpReLU, Slope: float32(op.NegativeSlope)}
		in := p.values[p.opIns[i][0]].shape
		out := op.OutShape
		s.channels, s.hw = in[0], in[1]*in[2]
		s.w, s.w16 = tensor32(op.Weight)
		s.b, s.b16 = tensor32(op.Bias)
		wideSize = max(wideSize, len(s.w16)+len(s.b16))
		switch op.Type {
		case weights.OpConv:
			s.conv = convParams(op, in)
			convScratch = max(convScratch, kernels.ConvScratchSize(s.conv))
		case weights.OpPool:
			s.pool = kernels.PoolParams{
				Max: op.Pool == "max",
				C:   in[0], InH: in[1], InW: in[2],
				OutH: out[1], OutW: out[2],
				KH: op.Kernel[0], KW: op.Kernel[1],
				SH: op.Stride[0], SW: op.Stride[1],
				PH: op.Pad[0], PW: op.Pad[1],
			}
		case weights.OpEltwise:
			s.eltOp = map[string]int{"sum": kernels.EltSum, "prod": kernels.EltProd, "max": kernels.EltMax}[op.Operation]
			for _, k := range op.Coeffs {
				s.coeffs = append(s.coeffs, float32(k))
			}
		case weights.OpConcat:
			for _, v := range p.opIns[i] {
				s.copyWidth = append(s.copyWidth, p.values[v].size)
			}
		}
	}
	if missing != "" {
		return nil, fmt.Errorf("core: NewCPU: tensor %q has no data (weights released?)", missing)
	}
	scratch := make([]float32, convScratch)
	for i := range c.steps {
		c.steps[i].scratch = scratch
	}
	c.wide = make([]float32, wideSize)
	c.info.ScratchBytes = int64(convScratch+wideSize) * 4
	if o.Float32Weights {
		for _, f := range widened {
			c.info.WeightBytes += int64(len(f)) * 4
		}
		for _, n := range stored32 {
			c.info.WeightBytes += n
		}
	} else {
		c.info.WeightBytes = w.ShardBytes()
	}
	c.runner = kernels.NewRunner(threads)
	return c, nil
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

// CPUMemory is the working memory NewCPU allocates besides the weights.
type CPUMemory struct {
	ActivationBytes int64 // activation buffers after liveness packing
	ScratchBytes    int64 // im2col scratch plus, in float16 mode, the widened weights of the largest op
}

// EstimateCPU computes, from a validated manifest alone (before any shard is
// read), exactly the working memory NewCPU will allocate for it with o, so
// that a memory-limited front end can refuse a model before fetching it.
// The weights add the shard sizes (float16 mode) or twice the float16
// tensors' bytes plus the float32 tensors' (float32 mode).
func EstimateCPU(m *weights.Manifest, o CPUOptions) CPUMemory {
	p := newPlan(m, !o.noReuse)
	f16 := map[string]int{}
	for i := range m.Tensors {
		if t := &m.Tensors[i]; t.DType == weights.DTypeF16 {
			f16[t.Name] = int(t.Elements())
		}
	}
	convScratch, wide := 0, 0
	for i := range m.Ops {
		op := &m.Ops[i]
		if op.Type == weights.OpConv {
			convScratch = max(convScratch, kernels.ConvScratchSize(convParams(op, p.values[p.opIns[i][0]].shape)))
		}
		if !o.Float32Weights {
			wide = max(wide, f16[op.Weight]+f16[op.Bias])
		}
	}
	return CPUMemory{ActivationBytes: int64(p.activationFloats()) * 4, ScratchBytes: int64(convScratch+wide) * 4}
}

// Describe implements Backend.
func (c *CPU) Describe() BackendInfo { return c.info }

// Close stops the kernels' goroutines.
func (c *CPU) Close() {
	if c.runner != nil {
		c.runner.Close()
		c.runner = nil
	}
}

// Run implements Backend. It allocates nothing.
func (c *CPU) Run(input []float32) ([]float32, error) {
	if len(input) != len(c.input) {
		return nil, fmt.Errorf("core: input has %d values, the network takes %d", len(input), len(c.input))
	}
	copy(c.input, input)
	for i := range c.steps {
		c.exec(&c.steps[i])
	}
	return c.output, nil
}

func (c *CPU) exec(s *step) {
	w, b := s.w, s.b
	if s.w16 != nil || s.b16 != nil {
		// f16 mode: widen this op's weights into the shared scratch.
		if s.w16 != nil {
			w = c.wide[:len(s.w16)]
			kernels.WidenF16(w, s.w16)
		}
		if s.b16 != nil {
			b = c.wide[len(s.w16) : len(s.w16)+len(s.b16)]
			kernels.WidenF16(b, s.b16)
		}
	}
	switch s.typ {
	case weights.OpConv:
		kernels.Conv2D(c.runner, s.conv, s.ins[0], w, b, s.out, s.scratch, s.act)
	case weights.OpPool:
		kernels.Pool2D(c.runner, s.pool, s.ins[0], s.out)
	case weights.OpEltwise:
		kernels.Eltwise(s.eltOp, s.coeffs, s.ins, s.out, s.act)
	case weights.OpReLU:
		kernels.Activate(s.ins[0], s.out, s.act)
	case weights.OpAffine:
		kernels.Affine(s.channels, s.hw, s.ins[0], w, b, s.out, s.act)
	case weights.OpInnerProduct:
		kernels.InnerProduct(c.runner, s.ins[0], w, b, s.out, s.act)
	case weights.OpSoftmax:
		kernels.Softmax(s.channels, s.hw, s.ins[0], s.out)
	case weights.OpConcat:
		off := 0
		for j, in := range s.ins {
			off += copy(s.out[off:off+s.copyWidth[j]], in)
		}
	case weights.OpFlatten:
		// Same storage as the input: nothing to do.
	default:
		panic("core: unplanned op type " + s.typ) // Validate rejects unknown types
	}
}
