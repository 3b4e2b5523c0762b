package main

import (
	"fmt"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/preprocess"
	"github.com/residual-go/residual/core/weights"
)

// IsolateLimit is the memory of one Cloudflare Worker isolate: "128 MB" in
// Cloudflare's limits table, read here as 128,000,000 bytes (the stricter of
// MB and MiB). JavaScript heap and wasm linear memory both count against it.
const IsolateLimit = 128_000_000

// DefaultBudget is what the Go side may use of an isolate: IsolateLimit minus
// 8 MB for the JavaScript side (V8's own heap, the entry module, the stream
// chunks and the request and response objects in flight). A model whose Estimate exceeds the budget
// is refused with 503 before its shards are fetched.
const DefaultBudget = IsolateLimit - 8_000_000

// runtimeReserve covers the Go runtime itself in wasm linear memory beyond
// the heap objects: the binary's data segments, goroutine stacks, allocator
// metadata and heap fragmentation. Measured with ResNet-50 in wrangler dev:
// wasm memory minus Go heap objects right after the load is 9.6 MB.
const runtimeReserve = 10_000_000

// referenceRequest is the smallest request a model must leave room for: a
// 640x480 RGBA image (4:3, like most photos) sent as a 1 MiB body.
var referenceRequest = imageGeometry{Width: 640, Height: 480, BytesPerPixel: 4, Body: 1 << 20}

// Estimate is the memory a model needs in the worker, from its manifest
// alone, before any shard is fetched. Every model term is an upper bound of
// what core allocates (see core.NewCPU; TestEstimateBoundsCore checks it).
type Estimate struct {
	Model string `json:"model"`
	// Weights: the shard bytes, kept resident as float16 (no float32 copy).
	Weights int64 `json:"weights"`
	// Activations: core's activation buffers after liveness packing.
	Activations int64 `json:"activations"`
	// Scratch: the largest convolution workspace plus the largest tensor
	// widened from float16 to float32 while its op runs.
	Scratch int64 `json:"scratch"`
	// Inputs: the ten preprocessed crops of ?crops=10 (kept by the model).
	Inputs int64 `json:"inputs"`
	// Runtime: the Go runtime's own memory (runtimeReserve).
	Runtime int64 `json:"runtime"`
	// Request: what classifying referenceRequest takes (see requestNeed);
	// each real request is checked against what is free when it arrives.
	Request int64 `json:"request"`
	Total   int64 `json:"total"`
}

// Resident is the memory the loaded model keeps between requests.
func (e Estimate) Resident() int64 {
	return e.Weights + e.Activations + e.Scratch + e.Inputs + e.Runtime
}

// EstimateMemory computes the Estimate of a validated manifest. The
// activation and scratch terms are core's own plan (core.EstimateCPU: the
// bytes core.NewCPU will allocate in float16-resident mode), not a second
// model of it.
func EstimateMemory(m *weights.Manifest) Estimate {
	e := Estimate{Model: m.Model, Runtime: runtimeReserve}
	for _, s := range m.Shards {
		e.Weights += s.Size
	}
	p, err := core.Compile(m, core.CompileOptions{})
	if err != nil {
		panic(err) // the whole op list of a validated manifest always compiles
	}
	cpu := core.EstimateCPU(p, core.CPUOptions{})
	e.Activations, e.Scratch = cpu.ActivationBytes, cpu.ScratchBytes
	in := m.Input
	e.Inputs = 10 * int64(in.Channels*in.Height*in.Width) * 4
	e.Request = requestNeed(referenceRequest, specOf(m)).Total()
	e.Total = e.Resident() + e.Request
	return e
}

// specOf is the preprocessing a manifest describes (the fields requestNeed uses).
func specOf(m *weights.Manifest) preprocess.Spec {
	return preprocess.Spec{Channels: m.Input.Channels, Height: m.Input.Height, Width: m.Input.Width, Resize: m.Preprocess.Resize}
}

// imageGeometry is what the worker knows of a request before decoding it.
type imageGeometry struct {
	Width, Height int
	BytesPerPixel int         // of the decoded image (image.Config's color model); unused for a JPEG
	JPEG          *jpegLayout // a JPEG's frame layout, nil for other formats
	Body          int64       // the request body, alive until decoding ends
}

// need is the memory one request takes while it is classified.
type need struct {
	Body, Decoded, Work, Resize int64
	Retained                    int64 // of Work+Resize: what core's preprocessing buffers keep afterwards
}

func (n need) Total() int64 { return n.Body + n.Decoded + n.Work + n.Resize }

// requestNeed bounds the live memory of classifying an image of geometry g:
// the body, the decoded image (for a JPEG: one byte per sample of its
// blocks, 256 bytes a block more while a progressive one decodes, and a
// 4:4:4 copy when it carries Exif, whose orientation core may apply), and
// preprocess.Buffers' images (core/preprocess/crops.go):
// the source box-reduced by f = max(1, min(w/2rw, h/2rh)) as RGBA64 (8 bytes a
// pixel), x/image/draw's CatmullRom temporary of rw x h/f [4]float64 (32 bytes
// each) and the rw x rh RGBA64 resized image.
func requestNeed(g imageGeometry, s preprocess.Spec) need {
	w, h := int64(g.Width), int64(g.Height)
	n := need{Body: g.Body, Decoded: w * h * int64(g.BytesPerPixel)}
	if j := g.JPEG; j != nil {
		n.Decoded = j.Blocks * 64
		if j.Progressive {
			n.Decoded += j.Blocks * 256
		}
		if j.Exif {
			n.Decoded += w * h * int64(min(j.Components, 4))
		}
	}
	if g.Width == s.Width && g.Height == s.Height {
		n.Work = w * h * 8
		n.Retained = n.Work
		return n
	}
	resize := s.Resize
	if resize <= 0 {
		resize = max(s.Height, s.Width)
	}
	rw, rh := preprocess.ResizedSize(g.Width, g.Height, resize)
	f := int64(max(1, min(g.Width/(2*rw), g.Height/(2*rh), 256)))
	ww, wh := w/f, h/f
	n.Work = ww * wh * 8
	if ww != int64(rw) || wh != int64(rh) {
		n.Resize = int64(rw)*wh*32 + int64(rw*rh)*8
	}
	n.Retained = n.Work + int64(rw*rh)*8
	return n
}

// TooBigError says that a model cannot run within the worker's memory budget.
type TooBigError struct {
	Name     string // the model directory, e.g. "resnet101"
	Estimate Estimate
	Budget   int64
}

func (e *TooBigError) Error() string {
	x := e.Estimate
	return fmt.Sprintf("model %s (%s) needs about %s in this worker (float16 weights %s + activations %s + scratch %s + inputs %s + Go runtime %s + one 640x480 request %s), "+
		"more than the %s a 128 MB Cloudflare Worker isolate leaves for it; deploy a smaller model (ResNet-50 fits) or run it natively with tools/classify",
		e.Name, x.Model, mb(x.Total), mb(x.Weights), mb(x.Activations), mb(x.Scratch), mb(x.Inputs), mb(x.Runtime), mb(x.Request), mb(e.Budget))
}

// mb formats a byte count in megabytes (10^6 bytes, as Cloudflare's limit is stated).
func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
