//go:build js && wasm

package webgpu

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/backendtest"
	"github.com/residual-go/residual/core/weights"
)

// caseByName returns a conformance case.
func caseByName(t *testing.T, name string) backendtest.Case {
	t.Helper()
	for _, c := range backendtest.Cases() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no case %q", name)
	return backendtest.Case{}
}

// checkAgainstCPU runs b and the reference CPU on the same batch of 2 and
// compares under the case's tolerance.
func checkAgainstCPU(t *testing.T, c backendtest.Case, p *core.Program, read func() *weights.Weights, b core.Backend) {
	t.Helper()
	ref, err := core.NewCPU(p, read(), core.CPUOptions{Float32Weights: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	in := make([]float32, 2*p.InputSize())
	for i := range in {
		in[i] = float32(i%13)/6 - 1
	}
	want, err := ref.Run(in, 2)
	if err != nil {
		t.Fatal(err)
	}
	want.Values = append([]float32(nil), want.Values...)
	got, err := b.Run(in, 2)
	if err != nil {
		t.Fatal(err)
	}
	backendtest.Compare(t, c.Name, got.Values, want.Values, c.Tol)
}

// resetShared makes Select open a fresh device (and forget the old one).
func resetShared(t *testing.T) {
	sharedMu.Lock()
	sharedDevice, sharedErr = nil, nil
	sharedMu.Unlock()
	t.Cleanup(func() {
		sharedMu.Lock()
		sharedDevice, sharedErr = nil, nil
		sharedMu.Unlock()
	})
}

func TestSelectModes(t *testing.T) {
	d := device(t)
	c := caseByName(t, "conv/residual-fused")
	p, read := c.Load(t)

	b, ch, err := Select(p, read(), core.Options{}, SelectOptions{Mode: ModeCPU})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Backend != "cpu" || !strings.Contains(ch.Reason, "backend=cpu") || b.Describe().Name == "webgpu" {
		t.Errorf("mode cpu: %+v, backend %q", ch, b.Describe().Name)
	}
	b.Close()

	b, ch, err = Select(p, read(), core.Options{}, SelectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Adapter.Fallback {
		// SwiftShader here: the automatic choice is the CPU, and it says why.
		if ch.Backend != "cpu" || !strings.Contains(ch.Reason, "software or fallback") || ch.Adapter == "" {
			t.Errorf("auto on %s: %+v", d.Adapter, ch)
		}
	} else if ch.Backend != "webgpu" {
		t.Errorf("auto on %s: %+v", d.Adapter, ch)
	}
	checkAgainstCPU(t, c, p, read, b)
	b.Close()

	b, ch, err = Select(p, read(), core.Options{}, SelectOptions{Mode: ModeWebGPU})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Backend != "webgpu" || ch.Reason != "" || b.Describe().Name != "webgpu" || b.Describe().HostWeights {
		t.Errorf("mode webgpu: %+v, %+v", ch, b.Describe())
	}
	checkAgainstCPU(t, c, p, read, b)
	b.Close()
}

// TestBrokenShaderFallsBack: a WGSL error is reported naming the shader
// and its line, and Select falls back to a working CPU backend.
func TestBrokenShaderFallsBack(t *testing.T) {
	device(t)
	resetShared(t)
	orig := shaderSource
	t.Cleanup(func() { shaderSource = orig })
	shaderSource = func(name string) (string, error) {
		src, err := orig(name)
		if name == "conv.wgsl" {
			src = strings.Replace(src, "let khw = p.kh * p.kw;", "let khw = p.kh * undefined_thing;", 1)
		}
		return src, err
	}
	d, err := OpenDevice(DeviceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Destroy()
	c := caseByName(t, "conv/odd-3x3-nopad")
	p, read := c.Load(t)
	_, err = New(d, p, read(), Options{})
	var se *ShaderError
	if !errors.As(err, &se) || se.Key.Shader != "conv.wgsl" || !strings.Contains(err.Error(), "undefined_thing") ||
		!strings.Contains(err.Error(), "conv.wgsl:") {
		t.Fatalf("New with a broken conv.wgsl: %v", err)
	}
	t.Logf("the error: %v", err)

	b, ch, err := Select(p, read(), core.Options{}, SelectOptions{Mode: ModeWebGPU})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if ch.Backend != "cpu" || !strings.Contains(ch.Reason, "self-check failed") || !strings.Contains(ch.Reason, "conv.wgsl") {
		t.Errorf("Select with a broken conv.wgsl: %+v", ch)
	}
	checkAgainstCPU(t, c, p, read, b)
}

// TestLimitFallsBack: a model with a buffer larger than the device's
// binding limit gets a LimitError naming the limit, and Select falls back.
func TestLimitFallsBack(t *testing.T) {
	device(t)
	resetShared(t)
	c := caseByName(t, "conv/1x1-s1-56") // 256 x 56 x 56 floats: 3.2 MB
	p, read := c.Load(t)
	capped := DeviceOptions{CapLimits: Limits{MaxStorageBufferBindingSize: 1 << 20}}
	d, err := OpenDevice(capped)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Destroy()
	if d.Limits.MaxStorageBufferBindingSize != 1<<20 {
		t.Fatalf("asked for a 1 MiB binding limit, got %d", d.Limits.MaxStorageBufferBindingSize)
	}
	_, err = New(d, p, read(), Options{})
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != "maxStorageBufferBindingSize" || le.Need != 256*56*56*4 {
		t.Fatalf("New on a 1 MiB binding limit: %v", err)
	}
	t.Logf("the error: %v", err)

	b, ch, err := Select(p, read(), core.Options{}, SelectOptions{Mode: ModeWebGPU, Device: capped})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if ch.Backend != "cpu" || !strings.Contains(ch.Reason, "maxStorageBufferBindingSize") {
		t.Errorf("Select on a 1 MiB binding limit: %+v", ch)
	}
	checkAgainstCPU(t, c, p, read, b)
}

// TestDeviceLost: once the device is gone, Run says so with a
// DeviceLostError (the page then reloads the model on the CPU).
func TestDeviceLost(t *testing.T) {
	device(t)
	d, err := OpenDevice(DeviceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := caseByName(t, "conv/odd-3x3-nopad")
	p, read := c.Load(t)
	b, err := New(d, p, read(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	checkAgainstCPU(t, c, p, read, b)
	d.Destroy()
	var lost *DeviceLostError
	for range 50 {
		_, err = b.Run(make([]float32, p.InputSize()), 1)
		if errors.As(err, &lost) {
			break
		}
		time.Sleep(20 * time.Millisecond) // let the lost promise settle
	}
	if lost == nil {
		t.Fatalf("Run on a destroyed device: %v", err)
	}
	t.Logf("the error: %v", err)
}

// TestTilingVariants runs the conv cases (the smaller ones: a software
// GPU is slow) with every conv variant forced: the 64x64 tile, the 32x32
// tile, and the 32x32 tile with K split and reduced.
func TestTilingVariants(t *testing.T) {
	d := device(t)
	var cases []backendtest.Case
	for _, c := range backendtest.Cases() {
		switch c.Name {
		case "conv/odd-3x3-nopad", "conv/odd-5x5-s3", "conv/odd-1x1", "conv/odd-3x3-s2-tiny", "conv/rect-dilated-grouped-nobias",
			"conv/f32-weights", "conv/residual-fused", "conv/residual-projection", "conv/1x1-s1-reduce", "conv/1x1-s2-projection",
			"network/small-resnet":
			cases = append(cases, c)
		}
	}
	for _, force := range []string{"large", "small", "split"} {
		t.Run(force, func(t *testing.T) {
			backendtest.Run(t, func(p *core.Program, w *weights.Weights) (core.Backend, error) {
				return New(d, p, w, Options{Tiling: Tiling{Force: force}})
			}, cases)
		})
	}
}

// TestBatchInChunks: a batch larger than one binding can hold runs in
// several submits (here a 256 KiB binding limit holds 4 images of the small
// ResNet's largest buffer, 64 KiB), and each image still matches the CPU.
func TestBatchInChunks(t *testing.T) {
	device(t)
	d, err := OpenDevice(DeviceOptions{CapLimits: Limits{MaxStorageBufferBindingSize: 256 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Destroy()
	c := caseByName(t, "network/small-resnet")
	p, read := c.Load(t)
	b, err := New(d, p, read(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.maxBatch != 4 {
		t.Fatalf("maxBatch = %d, want 4", b.maxBatch)
	}
	ref, err := core.NewCPU(p, read(), core.CPUOptions{Float32Weights: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	const n = 10
	in := make([]float32, n*p.InputSize())
	for i := range in {
		in[i] = float32((i*7)%201) - 100
	}
	want, err := ref.Run(in, n)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Run(in, n)
	if err != nil {
		t.Fatal(err)
	}
	out := p.OutputSize()
	for i := range n {
		backendtest.Compare(t, fmt.Sprintf("image %d", i), got.Values[i*out:(i+1)*out], want.Values[i*out:(i+1)*out], c.Tol)
	}
}
