// Package budget is the Cloudflare Worker's memory arithmetic: what a stage
// (a slice of a model, or all of it) keeps resident in a 128 MB isolate,
// from the manifest before any shard is fetched; the split of a model into
// the fewest stages that fit (Plan); and what one request needs, from its
// image's header through core/preprocess's bound. The worker refuses a
// stage (503) or a request (413) that does not fit. It is a package of its own, without syscall/js,
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
// labels). Measured in wrangler dev (test/admission.test.mjs, with the heap
// grown by Free right after the load, see the worker's reserve): with
// ResNet-50 in one Worker of 120 MB, wasm memory 121.9 MB at its peak where
// the object terms and Free came to 110.0 MB, so 11.9 MB; with the front
// stage of ResNet-50 at 90 MB, 91.0 MB where they came to 77.0 MB, so
// 14.0 MB; 15 MB leaves a margin. (A later stage, without the reserve, has
// about 12 MB.)
const runtimeReserve = 15_000_000

// referenceRequest is the request a model must leave room for: any 640x480
// JPEG (a header made by hand, so preprocess.Header.Memory counts the most
// demanding layout: progressive, 4:4:4, RGB, turned by Exif) sent as a
// 1 MiB body, classified with ten crops.
var referenceRequest = struct {
	header preprocess.Header
	body   int64
	crops  int
}{preprocess.Header{Format: "JPEG", Width: 640, Height: 480, ColorModel: color.YCbCrModel, Bytes: 1 << 20}, 1 << 20, 10}

// MaxBatch is the largest batch a stage receives: ten crops.
const MaxBatch = 10

// BatchOf is the batch the stage starting at op first runs at once: the
// front runs its ten crops as one batch; a later stage reads the batch it
// receives one item at a time and runs each as it arrives.
func BatchOf(first int) int {
	if first == 0 {
		return MaxBatch
	}
	return 1
}

// DefaultStage is what a stage is planned for (Plan) and may use (the
// generated configuration sets it as the stage's MEMORY_BUDGET): 90 MB of
// the isolate's 128 MB. The rest is headroom the estimate cannot see: the
// JavaScript heap and the stream chunks in flight. Within it, ResNet-50 runs
// in two stages, ResNet-101 and ResNet-152 in three (TestMemoryFigures
// computes them), and the front leaves each request 20 to 35 MB.
const DefaultStage = 90_000_000

// Estimate is the memory one stage of a model needs in its isolate: the
// whole model when it runs as one Worker. It is computed from the manifest
// alone, before any shard is fetched; every model term is an upper bound of
// what core allocates for the stage (TestStageEstimateBoundsCore checks it).
type Estimate struct {
	Model string `json:"model"`
	// Stage runs ops [First, End) of the model.
	Stage int `json:"stage"`
	First int `json:"first"`
	End   int `json:"end"`
	// Weights: the slice's tensors, kept resident as float16 (each 64-byte
	// aligned; the front also keeps the mean image).
	Weights int64 `json:"weights"`
	// Activations: core's activation buffers after liveness packing.
	Activations int64 `json:"activations"`
	// Scratch: the largest convolution workspace plus the largest tensor
	// widened from float16 to float32 while its op runs.
	Scratch int64 `json:"scratch"`
	// Inputs: what comes in (the front: the ten preprocessed crops of
	// ?crops=10; a later stage: one item of the batch it receives, which
	// it runs item by item).
	Inputs int64 `json:"inputs"`
	// Outputs: ten crops of what goes out (and, in the last stage, of the
	// features class activation maps are made of), plus, in a later stage,
	// one item's as core computes it. Reply: the front's copy of the last
	// stage's answer.
	Outputs int64 `json:"outputs"`
	Reply   int64 `json:"reply"`
	// Kept: the preprocessing scratch the front may keep between requests
	// (preprocess.KeepLimit: a small image's; larger scratch is dropped).
	Kept int64 `json:"kept"`
	// Runtime: the Go runtime's own memory (runtimeReserve).
	Runtime int64 `json:"runtime"`
	// Request: what classifying referenceRequest takes (RequestNeed), in
	// the front; each real request is checked against Free when it arrives.
	Request int64 `json:"request"`
	Total   int64 `json:"total"`
	// Free is what every request may use in the front: the budget less
	// Resident. A request is admitted when its own need fits in it,
	// whatever the requests before it were (the model keeps nothing of them).
	Free int64 `json:"free"`
}

// Resident is the memory the loaded stage keeps between requests.
func (e Estimate) Resident() int64 {
	return e.Weights + e.Activations + e.Scratch + e.Inputs + e.Outputs + e.Reply + e.Kept + e.Runtime
}

// EstimateMemory is the Estimate of the whole model of a validated
// manifest in one Worker, for a memory budget.
func EstimateMemory(m *weights.Manifest, budget int64) Estimate {
	e, err := EstimateStage(m, 0, len(m.Ops), 0, true, budget)
	if err != nil {
		panic(err) // the whole op list of a validated manifest always compiles
	}
	return e
}

// EstimateStage computes the Estimate of ops [first, end) of m as stage
// index of a pipeline, for a memory budget; maps says that the last stage
// keeps what class activation maps need (when the model has maps and the
// slice starts at their features or before).
func EstimateStage(m *weights.Manifest, first, end, index int, maps bool, budget int64) (Estimate, error) {
	e, err := estimate(m, first, end, maps)
	if err != nil {
		return Estimate{}, err
	}
	e.Stage = index
	e.Free = budget - e.Resident()
	return e, nil
}

// estimate is the Estimate of a slice (Stage and Free left zero): the cost
// Plan minimizes. The program is compiled as the stage compiles it
// (core.CompileStage: residual fusion, the maps' features as a tap).
func estimate(m *weights.Manifest, first, end int, maps bool) (Estimate, error) {
	if end == 0 {
		end = len(m.Ops)
	}
	last := end == len(m.Ops)
	op, features, hasMaps := core.MapsOp(m)
	maps = maps && hasMaps && last && first <= op
	p, err := core.CompileStage(m, core.StageOptions{First: first, End: end, CAM: maps})
	if err != nil {
		return Estimate{}, err
	}
	e := Estimate{Model: m.Model, First: first, End: end, Runtime: runtimeReserve}
	align := func(n int64) int64 { return (n + weights.Alignment - 1) / weights.Alignment * weights.Alignment }
	for _, t := range p.Tensors() {
		e.Weights += align(t.Length)
	}
	cpu := core.EstimateCPU(p, core.CPUOptions{})
	e.Activations, e.Scratch = cpu.ActivationBytes, cpu.ScratchBytes
	batch := BatchOf(first)
	held := int64(MaxBatch) // the batch's results
	if batch < MaxBatch {
		held += int64(batch) // and core's own, item by item
	}
	e.Inputs = int64(batch) * int64(p.InputSize()) * 4
	e.Outputs = held * int64(p.OutputSize()) * 4
	if maps {
		e.Outputs += held * int64(features[0]*features[1]*features[2]) * 4
	}
	if first == 0 {
		if name := m.Preprocess.MeanTensor; name != "" {
			for i := range m.Tensors {
				if m.Tensors[i].Name == name {
					e.Weights += align(m.Tensors[i].Length)
				}
			}
		}
		e.Kept = preprocess.KeepLimit
		r := referenceRequest
		e.Request = RequestNeed(&r.header, r.body, SpecOf(m), r.crops).Total()
		if !last {
			e.Reply = MaxBatch * int64(m.Classes()) * 4 * 2 // the answer's bytes and its values
		}
	}
	e.Total = e.Resident() + e.Request
	return e, nil
}

// Plan splits m into the fewest stages whose estimates are within budget
// (core.Partition: then the smallest largest stage, then the fewest values
// moved). With maps, the last stage keeps the layers from the features of
// class activation maps on.
//
// The plan made natively (the configuration generator) may differ from
// the one made as js/wasm (the Worker, and TestMemoryFigures): the simd
// GEMM's workspace, part of the scratch term, depends on the vector width
// (ResNet-101's first stage: 3.7 MB on an AVX-512 host, 7.9 MB in wasm,
// where vectors are narrowest). Each stage computes its estimate again
// when it loads, in wasm, exactly, and refuses a slice over its budget.
func Plan(m *weights.Manifest, budget int64, maps bool) ([]Estimate, error) {
	o := core.PartitionOptions{Budget: budget, Cost: func(p *core.Program) int64 {
		e, err := estimate(m, p.Options.First, p.Options.End, maps)
		if err != nil {
			panic(err) // Partition compiles only ranges between cuts: a bug
		}
		return e.Total
	}}
	if op, _, ok := core.MapsOp(m); ok && maps {
		o.Skip = func(c core.Cut) bool { return c.Op > op }
	}
	ranges, err := core.Partition(m, o)
	if err != nil {
		return nil, fmt.Errorf("model %s does not fit in stages of %s: %w", m.Model, MB(budget), err)
	}
	est := make([]Estimate, len(ranges))
	for i, r := range ranges {
		if est[i], err = EstimateStage(m, r.First, r.End, i, maps, budget); err != nil {
			return nil, err
		}
	}
	return est, nil
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

// TooBigError says that a stage (or the whole model, in one Worker) cannot
// run within the worker's memory budget.
type TooBigError struct {
	Name     string // the model directory, e.g. "resnet101"
	Ops      int    // the model's
	Estimate Estimate
	Budget   int64
}

func (e *TooBigError) Error() string {
	x := e.Estimate
	what := fmt.Sprintf("model %s (%s)", e.Name, x.Model)
	if x.First > 0 || x.End < e.Ops {
		what = fmt.Sprintf("stage %d of model %s (ops %d to %d of %d)", x.Stage, e.Name, x.First, x.End, e.Ops)
	}
	return fmt.Sprintf("%s needs about %s in this worker (float16 weights %s + activations %s + scratch %s + tensors in %s and out %s + Go runtime %s + one 640x480 JPEG request %s), "+
		"more than the %s it may use of a 128 MB Cloudflare Worker isolate; split the model into more stages (make deploy plans them, see README) or run it natively with tools/classify",
		what, MB(x.Total), MB(x.Weights), MB(x.Activations), MB(x.Scratch), MB(x.Inputs), MB(x.Outputs+x.Reply), MB(x.Runtime), MB(x.Request), MB(e.Budget))
}

// MB formats a byte count in megabytes (10^6 bytes, as Cloudflare's limit is stated).
func MB(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
