//go:build js && wasm

package webgpu

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall/js"

	"github.com/residual-go/residual/wasm/jsbridge"
)

// Adapter describes the GPU adapter a Device runs on.
type Adapter struct {
	Vendor, Architecture, Device, Description string
	// Fallback: the adapter is a software or fallback implementation
	// (isFallbackAdapter, or a description naming SwiftShader, llvmpipe,
	// lavapipe or Microsoft's Basic Render Driver).
	Fallback bool
	Features []string
}

// String names the adapter for people.
func (a Adapter) String() string {
	var parts []string
	for _, s := range []string{a.Vendor, a.Architecture, a.Device, a.Description} {
		if s != "" && !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return "unnamed adapter"
	}
	return strings.Join(parts, " ")
}

// UnavailableError says why WebGPU cannot be used here at all.
type UnavailableError struct{ Reason string }

func (e *UnavailableError) Error() string { return "webgpu: " + e.Reason }

// DeviceLostError is returned by Run once the GPU device is lost (a driver
// reset, the browser reclaiming the GPU): the model must be reloaded, on
// the CPU or on a new device.
type DeviceLostError struct{ Message string }

func (e *DeviceLostError) Error() string { return "webgpu: the GPU device was lost: " + e.Message }

// ShaderError is a WGSL compilation or pipeline creation failure.
type ShaderError struct {
	Key     PipelineKey
	Message string
}

func (e *ShaderError) Error() string {
	return fmt.Sprintf("webgpu: shader %s: %s", e.Key, e.Message)
}

// DeviceOptions configure OpenDevice.
type DeviceOptions struct {
	// CapLimits lowers the limits requested from the adapter (non-zero
	// fields only): to stay within a memory budget, or to test that a
	// model too large for a device fails with a LimitError.
	CapLimits Limits
}

// Device is a WebGPU device with its pipeline cache. Backends built on one
// Device share its compiled pipelines. Safe for concurrent use.
type Device struct {
	Adapter Adapter
	Limits  Limits // granted

	adapter, device, queue js.Value

	mu        sync.Mutex
	modules   map[string]js.Value
	layouts   map[string]js.Value // per entry point: the pipeline layout
	pipelines map[PipelineKey]*pipelineEntry
	lost      *DeviceLostError
	dummies   map[int]js.Value
}

type pipelineEntry struct {
	done     chan struct{}
	pipeline js.Value
	bgl      js.Value
	err      error
}

// RequestAdapter asks navigator.gpu for a high-performance adapter.
func RequestAdapter() (js.Value, Adapter, error) {
	nav := js.Global().Get("navigator")
	if nav.Type() != js.TypeObject || nav.Get("gpu").Type() != js.TypeObject {
		return js.Undefined(), Adapter{}, &UnavailableError{Reason: "this browser has no WebGPU (navigator.gpu is missing)"}
	}
	opts := js.Global().Get("Object").New()
	opts.Set("powerPreference", "high-performance")
	ad, err := jsbridge.Await(nav.Get("gpu").Call("requestAdapter", opts))
	if err != nil {
		return js.Undefined(), Adapter{}, &UnavailableError{Reason: "requestAdapter failed: " + err.Error()}
	}
	if ad.IsNull() || ad.IsUndefined() {
		return js.Undefined(), Adapter{}, &UnavailableError{Reason: "no GPU adapter is available"}
	}
	var a Adapter
	info := ad.Get("info")
	str := func(v js.Value, name string) string {
		if v.Type() == js.TypeObject && v.Get(name).Type() == js.TypeString {
			return v.Get(name).String()
		}
		return ""
	}
	a.Vendor, a.Architecture, a.Device, a.Description = str(info, "vendor"), str(info, "architecture"), str(info, "device"), str(info, "description")
	a.Fallback = ad.Get("isFallbackAdapter").Truthy() || (info.Type() == js.TypeObject && info.Get("isFallbackAdapter").Truthy())
	if !a.Fallback {
		a.Fallback = IsSoftware(a.String())
	}
	feats := ad.Get("features")
	if feats.Type() == js.TypeObject {
		it := js.Global().Get("Array").Call("from", feats)
		for i := range it.Length() {
			a.Features = append(a.Features, it.Index(i).String())
		}
	}
	return ad, a, nil
}

// OpenDevice requests an adapter and a device with the limits the backend
// wants (the adapter's largest buffers and bindings, capped by o.CapLimits).
func OpenDevice(o DeviceOptions) (*Device, error) {
	ad, info, err := RequestAdapter()
	if err != nil {
		return nil, err
	}
	return openDevice(ad, info, o)
}

func openDevice(ad js.Value, info Adapter, o DeviceOptions) (*Device, error) {
	al := ad.Get("limits")
	num := func(name string) int64 { return int64(al.Get(name).Float()) }
	want := Limits{
		MaxBufferSize:                     num("maxBufferSize"),
		MaxStorageBufferBindingSize:       num("maxStorageBufferBindingSize"),
		MaxStorageBuffersPerShaderStage:   int(num("maxStorageBuffersPerShaderStage")),
		MaxComputeWorkgroupStorageSize:    int(num("maxComputeWorkgroupStorageSize")),
		MaxComputeInvocationsPerWorkgroup: int(num("maxComputeInvocationsPerWorkgroup")),
		MaxComputeWorkgroupsPerDimension:  int(num("maxComputeWorkgroupsPerDimension")),
		MinStorageBufferOffsetAlignment:   int(num("minStorageBufferOffsetAlignment")),
		MinUniformBufferOffsetAlignment:   int(num("minUniformBufferOffsetAlignment")),
	}
	c := o.CapLimits
	if c.MaxBufferSize > 0 {
		want.MaxBufferSize = min(want.MaxBufferSize, c.MaxBufferSize)
	}
	if c.MaxStorageBufferBindingSize > 0 {
		want.MaxStorageBufferBindingSize = min(want.MaxStorageBufferBindingSize, c.MaxStorageBufferBindingSize)
	}
	if c.MaxStorageBuffersPerShaderStage > 0 {
		want.MaxStorageBuffersPerShaderStage = min(want.MaxStorageBuffersPerShaderStage, c.MaxStorageBuffersPerShaderStage)
	}
	if c.MaxComputeWorkgroupStorageSize > 0 {
		want.MaxComputeWorkgroupStorageSize = min(want.MaxComputeWorkgroupStorageSize, c.MaxComputeWorkgroupStorageSize)
	}
	// Request what the backend can use, never less than the defaults (a
	// device always has those); other limits stay at the defaults.
	req := js.Global().Get("Object").New()
	req.Set("maxBufferSize", max(want.MaxBufferSize, DefaultLimits.MaxBufferSize))
	req.Set("maxStorageBufferBindingSize", max(want.MaxStorageBufferBindingSize, DefaultLimits.MaxStorageBufferBindingSize))
	req.Set("maxStorageBuffersPerShaderStage", max(want.MaxStorageBuffersPerShaderStage, DefaultLimits.MaxStorageBuffersPerShaderStage))
	req.Set("maxComputeWorkgroupStorageSize", max(want.MaxComputeWorkgroupStorageSize, DefaultLimits.MaxComputeWorkgroupStorageSize))
	desc := js.Global().Get("Object").New()
	desc.Set("requiredLimits", req)
	desc.Set("label", "residual")
	dev, err := jsbridge.Await(ad.Call("requestDevice", desc))
	if err != nil {
		return nil, &UnavailableError{Reason: "requestDevice failed: " + err.Error()}
	}
	d := &Device{Adapter: info, adapter: ad, device: dev, queue: dev.Get("queue"),
		modules: map[string]js.Value{}, layouts: map[string]js.Value{}, pipelines: map[PipelineKey]*pipelineEntry{},
		dummies: map[int]js.Value{}}
	dl := dev.Get("limits")
	dnum := func(name string) int64 { return int64(dl.Get(name).Float()) }
	d.Limits = Limits{
		MaxBufferSize:                     dnum("maxBufferSize"),
		MaxStorageBufferBindingSize:       dnum("maxStorageBufferBindingSize"),
		MaxStorageBuffersPerShaderStage:   int(dnum("maxStorageBuffersPerShaderStage")),
		MaxComputeWorkgroupStorageSize:    int(dnum("maxComputeWorkgroupStorageSize")),
		MaxComputeInvocationsPerWorkgroup: int(dnum("maxComputeInvocationsPerWorkgroup")),
		MaxComputeWorkgroupsPerDimension:  int(dnum("maxComputeWorkgroupsPerDimension")),
		MinStorageBufferOffsetAlignment:   int(dnum("minStorageBufferOffsetAlignment")),
		MinUniformBufferOffsetAlignment:   int(dnum("minUniformBufferOffsetAlignment")),
	}
	// A cap below WebGPU's default is not granted as such (limits are
	// minima): the backend holds itself to the cap.
	if c.MaxBufferSize > 0 {
		d.Limits.MaxBufferSize = min(d.Limits.MaxBufferSize, c.MaxBufferSize)
	}
	if c.MaxStorageBufferBindingSize > 0 {
		d.Limits.MaxStorageBufferBindingSize = min(d.Limits.MaxStorageBufferBindingSize, c.MaxStorageBufferBindingSize)
	}
	if c.MaxStorageBuffersPerShaderStage > 0 {
		d.Limits.MaxStorageBuffersPerShaderStage = min(d.Limits.MaxStorageBuffersPerShaderStage, c.MaxStorageBuffersPerShaderStage)
	}
	if c.MaxComputeWorkgroupStorageSize > 0 {
		d.Limits.MaxComputeWorkgroupStorageSize = min(d.Limits.MaxComputeWorkgroupStorageSize, c.MaxComputeWorkgroupStorageSize)
	}
	var onLost js.Func
	onLost = js.FuncOf(func(_ js.Value, args []js.Value) any {
		msg := "unknown reason"
		if len(args) > 0 && args[0].Type() == js.TypeObject {
			msg = args[0].Get("message").String()
			if r := args[0].Get("reason"); r.Type() == js.TypeString {
				msg += " (" + r.String() + ")"
			}
		}
		d.mu.Lock()
		d.lost = &DeviceLostError{Message: msg}
		d.mu.Unlock()
		onLost.Release()
		return nil
	})
	dev.Get("lost").Call("then", onLost)
	return d, nil
}

// Lost returns the loss, once the device is lost.
func (d *Device) Lost() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lost != nil {
		return d.lost
	}
	return nil
}

// Destroy destroys the device (its buffers go with it). A later Run of a
// backend on it returns a DeviceLostError.
func (d *Device) Destroy() { d.device.Call("destroy") }

// IsSoftware says whether an adapter's name is a known CPU implementation.
func IsSoftware(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"swiftshader", "llvmpipe", "lavapipe", "softpipe", "basic render driver", "warp"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

func (d *Device) obj() js.Value { return js.Global().Get("Object").New() }

// module compiles a shader file once, reporting WGSL errors with their lines.
func (d *Device) module(name string) (js.Value, error) {
	d.mu.Lock()
	m, ok := d.modules[name]
	d.mu.Unlock()
	if ok {
		return m, nil
	}
	src, err := shaderSource(name)
	if err != nil {
		return js.Undefined(), err
	}
	desc := d.obj()
	desc.Set("code", src)
	desc.Set("label", name)
	d.device.Call("pushErrorScope", "validation")
	m = d.device.Call("createShaderModule", desc)
	scopeErr, _ := jsbridge.Await(d.device.Call("popErrorScope"))
	var msgs []string
	if info, err := jsbridge.Await(m.Call("getCompilationInfo")); err == nil {
		list := info.Get("messages")
		for i := range list.Length() {
			msg := list.Index(i)
			if msg.Get("type").String() == "error" {
				msgs = append(msgs, fmt.Sprintf("%s:%d:%d: %s", name, msg.Get("lineNum").Int(), msg.Get("linePos").Int(), msg.Get("message").String()))
			}
		}
	}
	if len(msgs) == 0 && scopeErr.Type() == js.TypeObject {
		msgs = append(msgs, scopeErr.Get("message").String())
	}
	if len(msgs) > 0 {
		return js.Undefined(), &ShaderError{Key: PipelineKey{Shader: name}, Message: strings.Join(msgs, "; ")}
	}
	d.mu.Lock()
	d.modules[name] = m
	d.mu.Unlock()
	return m, nil
}

// bindGroupLayout builds the explicit layout of an entry point.
func (d *Device) bindGroupLayout(k PipelineKey) js.Value {
	entries := js.Global().Get("Array").New()
	for _, b := range k.Layout() {
		e := d.obj()
		e.Set("binding", b[0])
		e.Set("visibility", js.Global().Get("GPUShaderStage").Get("COMPUTE"))
		buf := d.obj()
		switch b[1] {
		case bindUniform:
			buf.Set("type", "uniform")
		case bindReadOnly:
			buf.Set("type", "read-only-storage")
		default:
			buf.Set("type", "storage")
		}
		e.Set("buffer", buf)
		entries.Call("push", e)
	}
	desc := d.obj()
	desc.Set("entries", entries)
	return d.device.Call("createBindGroupLayout", desc)
}

// Pipelines creates the pipelines of keys that are not cached yet, all at
// once (createComputePipelineAsync), and waits for them. The first failure
// is returned as a *ShaderError naming the shader.
func (d *Device) Pipelines(keys []PipelineKey) error {
	var waits []*pipelineEntry
	for _, k := range keys {
		d.mu.Lock()
		e, ok := d.pipelines[k]
		if !ok {
			e = &pipelineEntry{done: make(chan struct{})}
			d.pipelines[k] = e
		}
		d.mu.Unlock()
		waits = append(waits, e)
		if ok {
			continue
		}
		mod, err := d.module(k.Shader)
		if err != nil {
			e.err = err
			close(e.done)
			continue
		}
		bgl := d.bindGroupLayout(k)
		pdesc := d.obj()
		pdesc.Set("bindGroupLayouts", []any{bgl})
		layout := d.device.Call("createPipelineLayout", pdesc)
		comp := d.obj()
		comp.Set("module", mod)
		comp.Set("entryPoint", k.Entry)
		consts := d.obj()
		for name, v := range k.Constants() {
			consts.Set(name, v)
		}
		comp.Set("constants", consts)
		desc := d.obj()
		desc.Set("layout", layout)
		desc.Set("compute", comp)
		desc.Set("label", k.String())
		promise := d.device.Call("createComputePipelineAsync", desc)
		go func(k PipelineKey, e *pipelineEntry) {
			p, err := jsbridge.Await(promise)
			if err != nil {
				e.err = &ShaderError{Key: k, Message: err.Error()}
			} else {
				e.pipeline, e.bgl = p, bgl
			}
			close(e.done)
		}(k, e)
	}
	var errs []error
	for _, e := range waits {
		<-e.done
		if e.err != nil {
			errs = append(errs, e.err)
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

func (d *Device) pipeline(k PipelineKey) *pipelineEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pipelines[k]
}

// dummy is a small storage buffer for an unused binding (one per binding
// number, so that no two bindings of a dispatch alias).
func (d *Device) dummy(binding int) js.Value {
	d.mu.Lock()
	defer d.mu.Unlock()
	if b, ok := d.dummies[binding]; ok {
		return b
	}
	b := d.buffer(fmt.Sprintf("unused binding %d", binding), 256, "STORAGE")
	d.dummies[binding] = b
	return b
}

// buffer creates a GPUBuffer; usage names GPUBufferUsage flags.
func (d *Device) buffer(label string, size int64, usage ...string) js.Value {
	u := 0
	flags := js.Global().Get("GPUBufferUsage")
	for _, name := range usage {
		u |= flags.Get(name).Int()
	}
	desc := d.obj()
	desc.Set("label", label)
	desc.Set("size", alignUp64(max(size, 4), 4))
	desc.Set("usage", u)
	return d.device.Call("createBuffer", desc)
}

// errorScope runs fn inside validation and out-of-memory error scopes and
// returns what they caught, prefixed with what.
func (d *Device) errorScope(what string, fn func() error) error {
	d.device.Call("pushErrorScope", "out-of-memory")
	d.device.Call("pushErrorScope", "validation")
	err := fn()
	v, e1 := jsbridge.Await(d.device.Call("popErrorScope"))
	o, e2 := jsbridge.Await(d.device.Call("popErrorScope"))
	if err != nil {
		return err
	}
	if e := errors.Join(e1, e2); e != nil {
		return fmt.Errorf("webgpu: %s: %w", what, e)
	}
	if v.Type() == js.TypeObject {
		return fmt.Errorf("webgpu: %s: validation error: %s", what, v.Get("message").String())
	}
	if o.Type() == js.TypeObject {
		return fmt.Errorf("webgpu: %s: out of GPU memory: %s", what, o.Get("message").String())
	}
	return nil
}
