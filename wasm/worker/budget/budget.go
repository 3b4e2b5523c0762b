// Package budget is the Cloudflare Worker's memory arithmetic: what a model
// keeps resident in a 128 MB isolate, from its manifest before any shard is
// fetched, and what one request needs, from its image's header through
// core/preprocess's bound. The worker refuses a model (503) or a request
// (413) that does not fit. It is a package of its own, without syscall/js,
// so that its figures are computed and tested as js/wasm (where core's GEMM
// panels, part of the scratch estimate, have their worker sizes):
// TestMemoryFigures checks the READMEs' figures against it.
package budget

import (
	"fmt"
	"image/color"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/preprocess"
	"github.com/residual-go/residual/core/weights"
)

// IsolateLimit is the memory of one Cloudflare Worker isolate: "128 MB" in
// Cloudflare's limits table, read here as 128,000,000 bytes (the stricter of
// MB and MiB). JavaScript heap and wasm linear memory both count against it.
const IsolateLimit = 128_000_000

// Default is the budget: what the Go side may use of an isolate: IsolateLimit minus
// 8 MB for the JavaScript side (V8's own heap, the entry module, the stream
// chunks and the request and response objects in flight). A model whose Estimate exceeds the budget
// is refused with 503 before its shards are fetched.
const Default = IsolateLimit - 8_000_000

// runtimeReserve covers what wasm linear memory holds beyond the Estimate's
// object terms: the binary's data segments (4.6 MB), goroutine stacks,
// allocator and GC metadata, free space inside the heap's spans, and the
// small objects of the runtime, the HTTP bridge and the model (manifest,
// labels). Measured in wrangler dev with ResNet-50 (test/admission.test.mjs,
// with the heap grown by Free right after the load, see the worker's
// reserve): wasm memory 121.9 MB at its peak where the object terms and
// Free came to 110.0 MB, so 11.9 MB; 13 MB leaves a margin. (Right after a
// load without the reservation the gap was 9.3 MB: it grows with the heap.)
const runtimeReserve = 13_000_000

// referenceRequest is the request a model must leave room for: any 640x480
// JPEG (a header made by hand, so preprocess.Header.Memory counts the most
// demanding layout: progressive, 4:4:4, RGB, turned by Exif) sent as a
// 1 MiB body, classified with ten crops.
var referenceRequest = struct {
	header preprocess.Header
	body   int64
	crops  int
}{preprocess.Header{Format: "JPEG", Width: 640, Height: 480, ColorModel: color.YCbCrModel, Bytes: 1 << 20}, 1 << 20, 10}

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
	// Kept: the preprocessing scratch the model may keep between requests
	// (preprocess.KeepLimit: a small image's; larger scratch is dropped).
	Kept int64 `json:"kept"`
	// Runtime: the Go runtime's own memory (runtimeReserve).
	Runtime int64 `json:"runtime"`
	// Request: what classifying referenceRequest takes (RequestNeed);
	// each real request is checked against Free when it arrives.
	Request int64 `json:"request"`
	Total   int64 `json:"total"`
	// Free is what every request may use: the budget less Resident. A
	// request is admitted when its own need fits in it, whatever the
	// requests before it were (the model keeps nothing of them).
	Free int64 `json:"free"`
}

// Resident is the memory the loaded model keeps between requests.
func (e Estimate) Resident() int64 {
	return e.Weights + e.Activations + e.Scratch + e.Inputs + e.Kept + e.Runtime
}

// EstimateMemory computes the Estimate of a validated manifest for a
// memory budget. The activation and scratch terms are core's own plan
// (core.EstimateCPU: the bytes core.NewCPU will allocate in float16-resident
// mode), not a second model of it.
func EstimateMemory(m *weights.Manifest, budget int64) Estimate {
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
	e.Kept = preprocess.KeepLimit
	r := referenceRequest
	e.Request = RequestNeed(&r.header, r.body, SpecOf(m), r.crops).Total()
	e.Total = e.Resident() + e.Request
	e.Free = budget - e.Resident()
	return e
}

// SpecOf is the preprocessing a manifest describes (the fields
// preprocess.Header.Memory uses).
func SpecOf(m *weights.Manifest) preprocess.Spec {
	return preprocess.Spec{Channels: m.Input.Channels, Height: m.Input.Height, Width: m.Input.Width, Resize: m.Preprocess.Resize}
}

// Need is the memory one request takes while it is classified.
type Need struct {
	Body   int64 // the request body, held until the response is written
	Decode int64 // decoding the image (preprocess.Memory.Decode)
	Crops  int64 // cutting the crops (preprocess.Memory.Crops)
}

// Total is the request's whole need.
func (n Need) Total() int64 { return n.Body + n.Decode + n.Crops }

// RequestNeed bounds the memory of classifying an image of header h sent
// as a body of the given size: the body and what core/preprocess will
// allocate for the image (preprocess.Header.Memory), less the crop tensors,
// which the model keeps between requests (Estimate.Inputs).
func RequestNeed(h *preprocess.Header, body int64, s preprocess.Spec, crops int) Need {
	m := h.Memory(s, crops)
	return Need{Body: body, Decode: m.Decode, Crops: m.Crops}
}

// TooBigError says that a model cannot run within the worker's memory budget.
type TooBigError struct {
	Name     string // the model directory, e.g. "resnet101"
	Estimate Estimate
	Budget   int64
}

func (e *TooBigError) Error() string {
	x := e.Estimate
	return fmt.Sprintf("model %s (%s) needs about %s in this worker (float16 weights %s + activations %s + scratch %s + inputs %s + kept preprocessing scratch %s + Go runtime %s + one 640x480 JPEG request %s), "+
		"more than the %s a 128 MB Cloudflare Worker isolate leaves for it; deploy a smaller model (ResNet-50 fits) or run it natively with tools/classify",
		e.Name, x.Model, MB(x.Total), MB(x.Weights), MB(x.Activations), MB(x.Scratch), MB(x.Inputs), MB(x.Kept), MB(x.Runtime), MB(x.Request), MB(e.Budget))
}

// MB formats a byte count in megabytes (10^6 bytes, as Cloudflare's limit is stated).
func MB(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
