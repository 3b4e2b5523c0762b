package core

import (
	"fmt"
	"runtime"

	"github.com/residual-go/residual/core/kernels"
	"github.com/residual-go/residual/core/weights"
)

// Backend runs a compiled Program: a batch of preprocessed inputs in, the
// program's output (the class probabilities, for a whole network) out. The
// CPU executor of this package is one implementation; the WebGPU backend
// (wasm/webgpu) is another, selected with Options.Backend. A Backend is used
// by one goroutine at a time (Model serializes calls).
type Backend interface {
	// Run computes the program on n inputs (n x Program.InputSize floats,
	// image after image) and returns n x OutputSize floats, and for each of
	// the program's taps n x its size. The slices belong to the backend and
	// are valid until the next Run.
	Run(input []float32, n int) (Output, error)
	// Describe reports what the backend is and the memory it holds.
	Describe() BackendInfo
	// Close releases the backend's resources (goroutines, GPU buffers).
	Close()
}

// Output is what Backend.Run returns.
type Output struct {
	Values []float32   // n x the program's output size
	Taps   [][]float32 // per tap of the program: n x the tap's size
}

// BackendInfo describes a Backend.
type BackendInfo struct {
	Name            string // "simd" or "scalar" for the CPU, e.g. "webgpu" for another
	Device          string // what runs it, when there is more to say (a GPU adapter's name)
	WeightMode      string // "f16" or "f32"
	WeightBytes     int64  // bytes of weights the backend keeps resident
	ActivationBytes int64  // bytes of activation buffers (after liveness packing)
	ScratchBytes    int64  // other working memory (im2col, widened weights)
	// HostWeights says the backend reads the float16 shard bytes of
	// *weights.Weights while it runs. Open releases them (Weights.Release)
	// once a backend that does not is built: the GPU holds its own copy, the
	// CPU in float32 mode its widened one, and 51-120 MB need not stay in
	// the Go heap twice.
	HostWeights bool
}

// CPUOptions configure NewCPU.
type CPUOptions struct {
	// Float32Weights widens every float16 tensor once, now; otherwise each op
	// widens its weights into one shared scratch buffer when it runs.
	Float32Weights bool
	// Threads for the kernels (0: runtime.NumCPU(); always 1 under wasm).
	Threads int
}

// CPU is the Backend that interprets a Program with package kernels,
// float32 activations and accumulation. Everything is resolved once in
// NewCPU (every step's input and output slices in one arena, the kernel
// parameters, the weights), so that Run allocates nothing once it has seen
// its largest batch. A batch runs image after image through the same arena.
type CPU struct {
	prog   *Program
	steps  []step
	runner *kernels.Runner
	arena  []float32   // activation buffers
	input  []float32   // the input value's buffer
	output []float32   // the output value's buffer
	taps   [][]float32 // the taps' buffers
	wide   []float32   // f16 mode: the op's weights and bias, widened
	info   BackendInfo

	outs    []float32   // batch outputs, grown to the largest batch seen
	tapOuts [][]float32 // batch taps
}

// step is one program step with everything resolved.
type step struct {
	*Step
	ins       [][]float32
	out       []float32
	w, b      []float32 // f32 weights (either mode: tensors stored as f32 are used in place)
	w16, b16  []uint16  // f16 weights widened per run (f16 mode)
	scratch   []float32 // conv scratch (shared by all steps)
	channels  int       // of the first input
	hw        int
	copyWidth []int // concat: values per input
}

// NewCPU prepares p, a program compiled from w.Manifest, for the CPU. In
// float32 mode the returned backend holds its own float32 copy of every
// float16 tensor it uses, and reports HostWeights false.
func NewCPU(p *Program, w *weights.Weights, o CPUOptions) (*CPU, error) {
	threads := o.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	if runtime.GOARCH == "wasm" {
		threads = 1
	}
	c := &CPU{prog: p, info: BackendInfo{Name: kernels.Impl(), WeightMode: "f16", HostWeights: !o.Float32Weights}}
	if o.Float32Weights {
		c.info.WeightMode = "f32"
	}

	// Activation buffers: one arena, each buffer a full-capacity-limited window.
	c.arena = make([]float32, p.ActivationFloats())
	bufs := make([][]float32, len(p.Buffers))
	off := 0
	for i, n := range p.Buffers {
		bufs[i] = c.arena[off : off+n : off+n]
		off += n
	}
	view := func(v int) []float32 {
		val := &p.Values[v]
		return bufs[val.Buffer][val.Offset : val.Offset+val.Size]
	}
	c.input = view(p.Input)
	c.output = view(p.Output)
	for _, v := range p.Taps {
		c.taps = append(c.taps, view(v))
	}
	c.tapOuts = make([][]float32, len(p.Taps))
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

	f16 := f16Sizes(p.Manifest)
	convScratch, wideSize := 0, 0
	c.steps = make([]step, len(p.Steps))
	for i := range p.Steps {
		ps := &p.Steps[i]
		s := &c.steps[i]
		s.Step = ps
		for _, v := range ps.In {
			s.ins = append(s.ins, view(v))
		}
		s.out = view(ps.Out)
		in := p.Values[ps.In[0]].Shape
		s.channels, s.hw = in[0], in[1]*in[2]
		s.w, s.w16 = tensor32(ps.Weight)
		s.b, s.b16 = tensor32(ps.Bias)
		cs, ws := stepScratch(ps, f16, o)
		convScratch, wideSize = max(convScratch, cs), max(wideSize, ws)
		switch ps.Kind {
		case weights.OpConcat:
			for _, v := range ps.In {
				s.copyWidth = append(s.copyWidth, p.Values[v].Size)
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
		c.info.WeightBytes = w.ShardBytes() // every shard stays resident
	}
	c.runner = kernels.NewRunner(threads)
	return c, nil
}

// CPUMemory is the working memory NewCPU allocates besides the weights.
type CPUMemory struct {
	ActivationBytes int64 // activation buffers after liveness packing
	ScratchBytes    int64 // im2col scratch plus, in float16 mode, the widened weights of the largest op
}

// EstimateCPU computes, from a compiled program alone (before any shard is
// read), exactly the working memory NewCPU will allocate for it with o, so
// that a memory-limited front end can refuse a model before fetching it.
// The weights add p.WeightBytes() (float16 mode) or twice the float16
// tensors' bytes plus the float32 tensors' (float32 mode). A batch of n
// adds n x (OutputSize + the taps' sizes) floats of results.
func EstimateCPU(p *Program, o CPUOptions) CPUMemory {
	f16 := f16Sizes(p.Manifest)
	convScratch, wide := 0, 0
	for i := range p.Steps {
		cs, ws := stepScratch(&p.Steps[i], f16, o)
		convScratch, wide = max(convScratch, cs), max(wide, ws)
	}
	return CPUMemory{ActivationBytes: int64(p.ActivationFloats()) * 4, ScratchBytes: int64(convScratch+wide) * 4}
}

// f16Sizes maps the name of every float16 tensor to its number of values.
func f16Sizes(m *weights.Manifest) map[string]int {
	f16 := map[string]int{}
	for i := range m.Tensors {
		if t := &m.Tensors[i]; t.DType == weights.DTypeF16 {
			f16[t.Name] = int(t.Elements())
		}
	}
	return f16
}

// stepScratch is the scratch step s takes on the CPU (NewCPU allocates the
// largest of each kind once): the convolution kernel's scratch, and the
// float16 values widened into the shared buffer before it runs. In float16
// mode a convolution's float16 filters go to the kernel as they are
// (Conv2DF16 widens them while staging them), so only its bias is widened;
// other ops widen their weights and bias.
func stepScratch(s *Step, f16 map[string]int, o CPUOptions) (conv, wide int) {
	if o.Float32Weights {
		if s.Kind == weights.OpConv {
			conv = kernels.ConvScratchSize(s.Conv)
		}
		return conv, 0
	}
	if s.Kind == weights.OpConv {
		if f16[s.Weight] > 0 {
			return kernels.ConvScratchSizeF16(s.Conv), f16[s.Bias]
		}
		return kernels.ConvScratchSize(s.Conv), f16[s.Bias]
	}
	return 0, f16[s.Weight] + f16[s.Bias]
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

// Run implements Backend: the images of the batch one after another. It
// allocates only when n is larger than every batch before (see Grow).
func (c *CPU) Run(input []float32, n int) (Output, error) {
	in := len(c.input)
	if n < 1 || len(input) != n*in {
		return Output{}, fmt.Errorf("core: input has %d values, a batch of %d takes %d", len(input), n, n*in)
	}
	c.Grow(n)
	out := len(c.output)
	for i := range n {
		copy(c.input, input[i*in:(i+1)*in])
		for j := range c.steps {
			c.exec(&c.steps[j])
		}
		copy(c.outs[i*out:], c.output)
		for t, buf := range c.taps {
			copy(c.tapOuts[t][i*len(buf):], buf)
		}
	}
	res := Output{Values: c.outs[:n*out]}
	if len(c.taps) > 0 {
		res.Taps = make([][]float32, len(c.taps))
		for t, buf := range c.taps {
			res.Taps[t] = c.tapOuts[t][:n*len(buf)]
		}
	}
	return res, nil
}

// Grow allocates now the results of a batch of n (the output and the taps
// of every image), which Run otherwise allocates on the first batch that
// large: a memory-limited caller places them with the rest of its resident
// memory, not in the middle of a request.
func (c *CPU) Grow(n int) {
	if out := len(c.output); len(c.outs) < n*out {
		c.outs = make([]float32, n*out)
		for t := range c.taps {
			c.tapOuts[t] = make([]float32, n*len(c.taps[t]))
		}
	}
}

func (c *CPU) exec(s *step) {
	w, b := s.w, s.b
	// f16 mode: widen this op's bias, and the weights of any op but a
	// convolution (whose kernel widens float16 filters as it stages them),
	// into the shared scratch.
	wide := c.wide
	if s.w16 != nil && s.Kind != weights.OpConv {
		w, wide = wide[:len(s.w16)], wide[len(s.w16):]
		kernels.WidenF16(w, s.w16)
	}
	if s.b16 != nil {
		b = wide[:len(s.b16)]
		kernels.WidenF16(b, s.b16)
	}
	switch s.Kind {
	case weights.OpConv:
		// A fused residual (Step.Residual) is added in the GEMM's epilogue:
		// bit for bit the unfused conv then eltwise sum (addition commutes),
		// the sign of a zero aside.
		switch {
		case s.Residual && s.w16 != nil:
			kernels.Conv2DAddF16(c.runner, s.Conv, s.ins[0], s.w16, b, s.ins[1], s.out, s.scratch, s.Act)
		case s.Residual:
			kernels.Conv2DAdd(c.runner, s.Conv, s.ins[0], w, b, s.ins[1], s.out, s.scratch, s.Act)
		case s.w16 != nil:
			kernels.Conv2DF16(c.runner, s.Conv, s.ins[0], s.w16, b, s.out, s.scratch, s.Act)
		default:
			kernels.Conv2D(c.runner, s.Conv, s.ins[0], w, b, s.out, s.scratch, s.Act)
		}
	case weights.OpPool:
		kernels.Pool2D(c.runner, s.Pool, s.ins[0], s.out)
	case weights.OpEltwise:
		kernels.Eltwise(s.Elt, s.Coeffs, s.ins, s.out, s.Act)
	case weights.OpReLU:
		kernels.Activate(s.ins[0], s.out, s.Act)
	case weights.OpAffine:
		kernels.Affine(s.channels, s.hw, s.ins[0], w, b, s.out, s.Act)
	case weights.OpInnerProduct:
		kernels.InnerProduct(c.runner, s.ins[0], w, b, s.out, s.Act)
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
		panic("core: unplanned op type " + s.Kind) // Validate rejects unknown types
	}
}
