//go:build js && wasm

package webgpu

import (
	"fmt"
	"math"
	"sync"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/core/weights/weightstest"
)

// Modes of Select.
const (
	ModeAuto   = "auto"   // WebGPU on a real GPU adapter, else the CPU
	ModeWebGPU = "webgpu" // WebGPU on any adapter, software ones included
	ModeCPU    = "cpu"    // the CPU path
)

// Choice is what Select chose and why.
type Choice struct {
	Backend string `json:"backend"`           // "webgpu" or "cpu"
	Adapter string `json:"adapter,omitempty"` // the GPU adapter, when one was found
	Reason  string `json:"reason,omitempty"`  // why the CPU runs (empty when WebGPU does)
}

// SelectOptions configure Select.
type SelectOptions struct {
	Mode    string // ModeAuto ("" too), ModeWebGPU or ModeCPU
	Device  DeviceOptions
	Backend Options
}

var (
	sharedMu     sync.Mutex
	sharedDevice *Device // reused by later loads until it is lost
	sharedErr    error   // why no device could be had (not retried)
)

// Select builds the backend that runs p, following the fallback ladder:
// no navigator.gpu, no adapter, a fallback or software adapter (unless
// ModeWebGPU), a device that cannot be had, a failed self-check (a tiny
// network run on the GPU and on the CPU and compared) or a backend that
// cannot be built (a shader that fails to compile, a limit the model
// exceeds) each give the CPU executor, with the reason in the Choice.
// Only the CPU executor's own errors are returned.
func Select(p *core.Program, w *weights.Weights, opts core.Options, so SelectOptions) (core.Backend, Choice, error) {
	cpu := func(c Choice) (core.Backend, Choice, error) {
		c.Backend = "cpu"
		b, err := core.NewCPU(p, w, core.CPUOptions{Float32Weights: opts.Float32Weights, Threads: opts.Threads})
		return b, c, err
	}
	if so.Mode == ModeCPU {
		return cpu(Choice{Reason: "the CPU path was asked for (backend=cpu)"})
	}
	d, err := sharedDeviceFor(so)
	if err != nil {
		return cpu(Choice{Reason: err.Error()})
	}
	c := Choice{Adapter: d.Adapter.String()}
	if d.Adapter.Fallback && so.Mode != ModeWebGPU {
		c.Reason = fmt.Sprintf("the GPU adapter (%s) is a software or fallback adapter, slower than the CPU path (backend=webgpu forces it)", c.Adapter)
		return cpu(c)
	}
	if err := SelfCheck(d); err != nil {
		c.Reason = "the GPU self-check failed: " + err.Error()
		dropDevice(d)
		return cpu(c)
	}
	b, err := New(d, p, w, so.Backend)
	if err != nil {
		c.Reason = "the WebGPU backend could not be built: " + err.Error()
		return cpu(c)
	}
	c.Backend = "webgpu"
	return b, c, nil
}

// sharedDeviceFor opens the device once per instance (and again after a loss).
func sharedDeviceFor(so SelectOptions) (*Device, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedDevice != nil && sharedDevice.Lost() == nil && so.Device == (DeviceOptions{}) {
		return sharedDevice, nil
	}
	if sharedErr != nil && so.Device == (DeviceOptions{}) {
		return nil, sharedErr
	}
	ad, info, err := RequestAdapter()
	if err != nil {
		sharedErr = err
		return nil, err
	}
	if info.Fallback && so.Mode != ModeWebGPU {
		// Do not hold a device that will not be used.
		return &Device{Adapter: info}, nil
	}
	d, err := openDevice(ad, info, so.Device)
	if err != nil {
		return nil, err
	}
	if so.Device == (DeviceOptions{}) {
		sharedDevice = d
	}
	return d, nil
}

func dropDevice(d *Device) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedDevice == d {
		sharedDevice = nil
	}
}

// SelfCheck runs a tiny network (a bottleneck block with a fused residual,
// a pool, an inner product and a softmax: most shaders) on d and on the
// CPU, and fails when they differ by more than float32 summation order
// explains: a driver that miscompiles or a device that computes garbage is
// caught before a model is trusted to it.
func SelfCheck(d *Device) error {
	b := weightstest.New("self-check", 3, 9, 9, 7)
	b.Conv("data", "c1", 3, 16, 3, 2, 1, true, 0.5)
	b.Conv("c1", "c2", 16, 16, 3, 1, 1, true, 0.3)
	b.Conv("c2", "c3", 16, 16, 1, 1, 0, false, 0.3)
	b.Op(weights.Op{Type: weights.OpEltwise, Inputs: []string{"c1", "c3"}, Output: "sum", Operation: "sum", ReLU: true})
	b.Op(weights.Op{Type: weights.OpPool, Inputs: []string{"sum"}, Output: "pool", Pool: "ave", RoundMode: "ceil", Global: true,
		Kernel: [2]int{5, 5}, Stride: [2]int{1, 1}})
	b.InnerProduct("pool", "fc", 16, 10, false, 0.5)
	b.Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"fc"}, Output: "prob"})
	b.M.Preprocess.MeanValues = []float64{0, 0, 0}
	b.Labels(10)
	fsys, err := b.MapFS()
	if err != nil {
		return err
	}
	w, err := weights.Read(fsys, weights.ReadOptions{})
	if err != nil {
		return err
	}
	p, err := core.Compile(w.Manifest, core.CompileOptions{Taps: []string{"fc"}})
	if err != nil {
		return err
	}
	in := b.Random(2*p.InputSize(), 2)
	ref, err := core.NewCPU(p, w, core.CPUOptions{Float32Weights: true, Threads: 1})
	if err != nil {
		return err
	}
	defer ref.Close()
	want, err := ref.Run(in, 2)
	if err != nil {
		return err
	}
	g, err := New(d, p, w, Options{})
	if err != nil {
		return err
	}
	defer g.Close()
	got, err := g.Run(in, 2)
	if err != nil {
		return err
	}
	if err := closeEnough(got.Taps[0], want.Taps[0]); err != nil {
		return fmt.Errorf("logits: %w", err)
	}
	return closeEnough(got.Values, want.Values)
}

// closeEnough compares with the conformance harness's network tolerance
// (core/backendtest.TolNetwork): 1e-5 + 1e-4 of the largest magnitude.
func closeEnough(got, want []float32) error {
	var rng float64
	for _, v := range want {
		rng = max(rng, math.Abs(float64(v)))
	}
	bound := 1e-5 + 1e-4*rng
	for i := range want {
		if d := math.Abs(float64(got[i]) - float64(want[i])); !(d <= bound) {
			return fmt.Errorf("value %d is %v on the GPU and %v on the CPU", i, got[i], want[i])
		}
	}
	return nil
}
