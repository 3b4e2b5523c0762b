//go:build js && wasm

package webgpu

import (
	"fmt"
	"syscall/js"
	"unsafe"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/wasm/jsbridge"
)

// Options configure New.
type Options struct {
	// Tiling chooses conv tiles (zero value: DefaultTargetWorkgroups).
	Tiling Tiling
	// NoFuse keeps the program as given; by default it is compiled again
	// with core.CompileOptions.FuseResidual, so that each block's last
	// convolution adds the shortcut and applies the ReLU in its epilogue.
	NoFuse bool
	// Batches are planned (and their pipelines compiled) at load, besides
	// 1; other batch sizes are planned on first use. The page classifies 1
	// or 10 crops.
	Batches []int
}

// Backend runs a core.Program on a WebGPU device: the weights in GPU
// buffers (uploaded once, float16 kept as float16), the activations in GPU
// buffers laid out by the program's buffer plan (a batch of n holds n
// copies), every pipeline and bind group made at load, and per Run one
// input upload, one command encoder with one compute pass, one submit and
// one readback of the output and the taps.
type Backend struct {
	d      *Device
	prog   *core.Program
	arena  *Arena
	tiling Tiling
	info   core.BackendInfo

	pages    []js.Value // weight buffers
	capacity int        // images the activation buffers hold
	bufs     []js.Value
	partial  js.Value
	partialN int64 // floats the partial buffer holds
	maxBatch int
	plans    map[int]*gpuPlan

	staging  js.Value // Uint8Array for uploads
	stagingN int
	outs     []float32
	tapOuts  [][]float32
	closed   bool
}

type gpuPlan struct {
	*Plan
	uniforms js.Value
	pipes    []js.Value
	groups   []js.Value
	readback js.Value
	readN    int64
	copies   []copyOp
}

type copyOp struct {
	src            js.Value
	srcOff, dstOff int64
	size           int64
}

// New uploads the weights of p (from w) to d and prepares everything a Run
// needs. It reports HostWeights false: core may release w's shard bytes.
func New(d *Device, p *core.Program, w *weights.Weights, o Options) (_ *Backend, err error) {
	if err := d.Lost(); err != nil {
		return nil, err
	}
	prog := p
	if !o.NoFuse && !p.Options.FuseResidual {
		co := p.Options
		co.FuseResidual = true
		if prog, err = core.Compile(p.Manifest, co); err != nil {
			return nil, err
		}
	}
	b := &Backend{d: d, prog: prog, arena: NewArena(prog), tiling: o.Tiling, plans: map[int]*gpuPlan{}}
	l := d.Limits
	if err := b.arena.place(int64(l.MinStorageBufferOffsetAlignment), l.MaxBufferSize, l.MaxStorageBufferBindingSize); err != nil {
		return nil, err
	}
	needs := needsOf(prog, b.arena)
	if err := l.Check(needs); err != nil {
		return nil, err
	}
	b.maxBatch = l.MaxBatch(needs.ImageBytes)

	// Compile every pipeline the planned batches need, in parallel.
	var keys []PipelineKey
	for _, n := range append([]int{1}, o.Batches...) {
		if n < 1 || n > b.maxBatch {
			continue
		}
		pl, err := BuildPlan(prog, b.arena, n, b.tiling)
		if err != nil {
			return nil, err
		}
		keys = append(keys, pl.Keys()...)
	}
	if err := d.Pipelines(keys); err != nil {
		return nil, err
	}

	err = d.errorScope("uploading the weights", func() error { return b.upload(w) })
	if err != nil {
		b.Close()
		return nil, err
	}
	b.info = core.BackendInfo{Name: "webgpu", Device: d.Adapter.String(), WeightMode: "f16", HostWeights: false}
	for _, s := range b.arena.Pages {
		b.info.WeightBytes += s
	}
	b.info.ActivationBytes = int64(prog.ActivationFloats()) * 4
	if err := d.errorScope("preparing a batch of 1", func() error { _, err := b.plan(1); return err }); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// upload creates the weight buffers and fills them region by region
// through one reused Go scratch slice and one JavaScript staging array.
func (b *Backend) upload(w *weights.Weights) error {
	for i, size := range b.arena.Pages {
		b.pages = append(b.pages, b.d.buffer(fmt.Sprintf("weights %d", i), size, "STORAGE", "COPY_DST"))
	}
	most := 0
	for _, r := range b.arena.Regions {
		most = max(most, r.Words)
	}
	scratch := make([]uint32, most)
	for i := range b.arena.Regions {
		r := &b.arena.Regions[i]
		words := scratch[:r.Words]
		if err := r.Fill(words, w); err != nil {
			return err
		}
		b.write(b.pages[r.Page], r.Offset, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), len(words)*4))
	}
	return nil
}

// write copies data to buf at off (queue.writeBuffer copies at once, so
// the staging array is reused).
func (b *Backend) write(buf js.Value, off int64, data []byte) {
	if len(data) == 0 {
		return
	}
	if b.stagingN < len(data) {
		b.stagingN = max(len(data), 1<<16)
		b.staging = js.Global().Get("Uint8Array").New(b.stagingN)
	}
	js.CopyBytesToJS(b.staging, data)
	b.d.queue.Call("writeBuffer", buf, off, b.staging, 0, len(data))
}

// grow makes the activation buffers hold n images.
func (b *Backend) grow(n int) {
	for _, buf := range b.bufs {
		buf.Call("destroy")
	}
	b.bufs = b.bufs[:0]
	for i, size := range b.prog.Buffers {
		b.bufs = append(b.bufs, b.d.buffer(fmt.Sprintf("activations %d", i), int64(size)*4*int64(n), "STORAGE", "COPY_SRC", "COPY_DST"))
	}
	b.capacity = n
	for _, gp := range b.plans {
		gp.destroy()
	}
	b.plans = map[int]*gpuPlan{}
}

func (gp *gpuPlan) destroy() {
	gp.uniforms.Call("destroy")
	gp.readback.Call("destroy")
}

// plan returns the prepared plan for a batch of n (n <= b.capacity after grow).
func (b *Backend) plan(n int) (*gpuPlan, error) {
	if n > b.capacity {
		b.grow(n)
	}
	if gp, ok := b.plans[n]; ok {
		return gp, nil
	}
	pl, err := BuildPlan(b.prog, b.arena, n, b.tiling)
	if err != nil {
		return nil, err
	}
	if err := b.d.Pipelines(pl.Keys()); err != nil {
		return nil, err
	}
	if int64(pl.PartialFloats) > b.partialN {
		if need := int64(pl.PartialFloats) * 4; need > b.d.Limits.MaxStorageBufferBindingSize {
			return nil, &LimitError{Limit: "maxStorageBufferBindingSize", Need: need, Have: b.d.Limits.MaxStorageBufferBindingSize,
				What: fmt.Sprintf("the split-K scratch of a batch of %d", n)}
		}
		if b.partialN > 0 {
			b.partial.Call("destroy")
		}
		b.partial = b.d.buffer("split-K partial sums", int64(pl.PartialFloats)*4, "STORAGE")
		b.partialN = int64(pl.PartialFloats)
		b.info.ScratchBytes = b.partialN * 4
		for _, gp := range b.plans { // their bind groups hold the old buffer
			gp.destroy()
		}
		b.plans = map[int]*gpuPlan{}
	}
	gp := &gpuPlan{Plan: pl}
	gp.uniforms = b.d.buffer(fmt.Sprintf("parameters, batch %d", n), int64(len(pl.Dispatches))*paramsSlot, "UNIFORM", "COPY_DST")
	params := make([]uint32, len(pl.Dispatches)*paramsSlot/4)
	for i, d := range pl.Dispatches {
		copy(params[i*paramsSlot/4:], d.Params)
	}
	b.write(gp.uniforms, 0, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(params))), len(params)*4))
	for i, d := range pl.Dispatches {
		pe := b.d.pipeline(d.Key)
		entries := js.Global().Get("Array").New()
		for _, s := range d.Slots {
			res := b.d.obj()
			switch s.Kind {
			case slotParams:
				res.Set("buffer", gp.uniforms)
				res.Set("offset", i*paramsSlot)
				res.Set("size", alignUp(len(d.Params)*4, 16))
			case slotRegion:
				r := &b.arena.Regions[s.Index]
				res.Set("buffer", b.pages[r.Page])
				res.Set("offset", r.Offset)
				res.Set("size", max(r.Words*4, 4))
			case slotValue:
				res.Set("buffer", b.bufs[b.prog.Values[s.Index].Buffer])
			case slotPartial:
				res.Set("buffer", b.partial)
			case slotDummy:
				res.Set("buffer", b.d.dummy(s.Binding))
			}
			e := b.d.obj()
			e.Set("binding", s.Binding)
			e.Set("resource", res)
			entries.Call("push", e)
		}
		desc := b.d.obj()
		desc.Set("layout", pe.bgl)
		desc.Set("entries", entries)
		desc.Set("label", fmt.Sprintf("%s %s", b.prog.Steps[d.Step].Name, d.Key.Entry))
		gp.groups = append(gp.groups, b.d.device.Call("createBindGroup", desc))
		gp.pipes = append(gp.pipes, pe.pipeline)
	}
	// Readback: the output, then each tap, n images each.
	var off int64
	for _, v := range append([]int{b.prog.Output}, b.prog.Taps...) {
		val := &b.prog.Values[v]
		stride := int64(b.prog.Buffers[val.Buffer])
		src := b.bufs[val.Buffer]
		if stride == int64(val.Size) && val.Offset == 0 {
			gp.copies = append(gp.copies, copyOp{src: src, srcOff: 0, dstOff: off, size: int64(n*val.Size) * 4})
		} else {
			for i := range int64(n) {
				gp.copies = append(gp.copies, copyOp{src: src, srcOff: (i*stride + int64(val.Offset)) * 4, dstOff: off + i*int64(val.Size)*4, size: int64(val.Size) * 4})
			}
		}
		off += int64(n*val.Size) * 4
	}
	gp.readN = off
	gp.readback = b.d.buffer(fmt.Sprintf("readback, batch %d", n), off, "MAP_READ", "COPY_DST")
	b.plans[n] = gp
	return gp, nil
}

// Describe implements core.Backend.
func (b *Backend) Describe() core.BackendInfo { return b.info }

// Program is the program the backend runs (compiled again with
// FuseResidual unless Options.NoFuse).
func (b *Backend) Program() *core.Program { return b.prog }

// PlanFor returns the dispatch plan of a batch of n (for reports).
func (b *Backend) PlanFor(n int) (*Plan, error) { return BuildPlan(b.prog, b.arena, n, b.tiling) }

// Close destroys the backend's buffers.
func (b *Backend) Close() {
	if b.closed {
		return
	}
	b.closed = true
	for _, gp := range b.plans {
		gp.destroy()
	}
	for _, buf := range append(append([]js.Value{}, b.pages...), b.bufs...) {
		buf.Call("destroy")
	}
	if b.partialN > 0 {
		b.partial.Call("destroy")
	}
	b.plans, b.pages, b.bufs = nil, nil, nil
}

// Run implements core.Backend. A batch larger than the device's bindings
// allow runs in several submits.
func (b *Backend) Run(input []float32, n int) (core.Output, error) {
	if b.closed {
		return core.Output{}, fmt.Errorf("webgpu: Run after Close")
	}
	in := b.prog.InputSize()
	if n < 1 || len(input) != n*in {
		return core.Output{}, fmt.Errorf("webgpu: input has %d values, a batch of %d takes %d", len(input), n, n*in)
	}
	if err := b.d.Lost(); err != nil {
		return core.Output{}, err
	}
	out := b.prog.OutputSize()
	if len(b.outs) < n*out {
		b.outs = make([]float32, n*out)
		b.tapOuts = make([][]float32, len(b.prog.Taps))
		for t, v := range b.prog.Taps {
			b.tapOuts[t] = make([]float32, n*b.prog.Values[v].Size)
		}
	}
	for done := 0; done < n; {
		m := min(n-done, b.maxBatch)
		if err := b.runChunk(input[done*in:(done+m)*in], m, done); err != nil {
			if lost := b.d.Lost(); lost != nil {
				return core.Output{}, lost
			}
			return core.Output{}, err
		}
		done += m
	}
	res := core.Output{Values: b.outs[:n*out]}
	if len(b.prog.Taps) > 0 {
		res.Taps = make([][]float32, len(b.prog.Taps))
		for t, v := range b.prog.Taps {
			res.Taps[t] = b.tapOuts[t][:n*b.prog.Values[v].Size]
		}
	}
	return res, nil
}

func floatBytes(f []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), len(f)*4)
}

// runChunk runs m images (the first is image first of the batch). The
// error scopes are popped before the readback is awaited, so that they do
// not add a round trip to the GPU.
func (b *Backend) runChunk(input []float32, m, first int) error {
	gp, err := b.plan(m)
	if err != nil {
		return err
	}
	dev := b.d.device
	dev.Call("pushErrorScope", "out-of-memory")
	dev.Call("pushErrorScope", "validation")
	// One upload of the input.
	iv := &b.prog.Values[b.prog.Input]
	stride := b.prog.Buffers[iv.Buffer]
	buf := b.bufs[iv.Buffer]
	if stride == iv.Size && iv.Offset == 0 {
		b.write(buf, 0, floatBytes(input))
	} else {
		for i := range m {
			b.write(buf, int64(i*stride+iv.Offset)*4, floatBytes(input[i*iv.Size:(i+1)*iv.Size]))
		}
	}
	// One encoder, one compute pass, one submit.
	enc := dev.Call("createCommandEncoder")
	pass := enc.Call("beginComputePass")
	for i, d := range gp.Dispatches {
		pass.Call("setPipeline", gp.pipes[i])
		pass.Call("setBindGroup", 0, gp.groups[i])
		pass.Call("dispatchWorkgroups", d.Groups[0], d.Groups[1], d.Groups[2])
	}
	pass.Call("end")
	for _, c := range gp.copies {
		enc.Call("copyBufferToBuffer", c.src, c.srcOff, gp.readback, c.dstOff, c.size)
	}
	b.d.queue.Call("submit", []any{enc.Call("finish")})
	// One readback.
	mapped := gp.readback.Call("mapAsync", js.Global().Get("GPUMapMode").Get("READ"))
	validation := dev.Call("popErrorScope")
	oom := dev.Call("popErrorScope")
	_, mapErr := jsbridge.Await(mapped)
	for _, scope := range []js.Value{validation, oom} {
		if e, err := jsbridge.Await(scope); err != nil {
			return fmt.Errorf("webgpu: running a batch of %d: %w", m, err)
		} else if e.Type() == js.TypeObject {
			if mapErr == nil {
				gp.readback.Call("unmap")
			}
			return fmt.Errorf("webgpu: running a batch of %d: %s", m, e.Get("message").String())
		}
	}
	if mapErr != nil {
		return fmt.Errorf("webgpu: reading the results back: %w", mapErr)
	}
	view := js.Global().Get("Uint8Array").New(gp.readback.Call("getMappedRange"))
	out := b.prog.OutputSize()
	var off int
	js.CopyBytesToGo(floatBytes(b.outs[first*out:(first+m)*out]), view.Call("subarray", off, off+m*out*4))
	off += m * out * 4
	for t, v := range b.prog.Taps {
		size := b.prog.Values[v].Size
		js.CopyBytesToGo(floatBytes(b.tapOuts[t][first*size:(first+m)*size]), view.Call("subarray", off, off+m*size*4))
		off += m * size * 4
	}
	gp.readback.Call("unmap")
	return nil
}
