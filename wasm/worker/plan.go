package main

// How a model is split into stage Workers: each stage's memory from the
// manifest alone (StageEstimate), and the split (planStages: core.Partition
// with that cost). The configuration generator (config.go) writes one
// wrangler configuration per stage from it; each stage checks its own
// estimate again when it loads.

import (
	"crypto/sha256"
	"fmt"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/weights"
)

// DefaultStageBudget is what the partition plans a stage for: 90 MB of the
// isolate's 128 MB. The rest is headroom for what the plan cannot know: the
// JavaScript heap and the stream chunks in flight, and, in the front stage,
// images larger than the reference request (each checked when it arrives
// against the memory actually free). With it, ResNet-50 runs in two stages
// of about 60 MB, ResNet-101 in two of about 82 MB and ResNet-152 in three
// of about 76 MB (TestPlanOfficialShapes).
const DefaultStageBudget = 90_000_000

// maxBatch is the largest batch a stage receives: ten crops.
const maxBatch = 10

// StageEstimate is the memory one stage needs in its isolate, computed from
// the manifest before any shard is fetched. Every term bounds what core and
// this package allocate (TestStageEstimateBoundsCore).
type StageEstimate struct {
	Stage int `json:"stage"`
	First int `json:"first"` // the op range [First, End)
	End   int `json:"end"`
	// Weights: the slice's tensors as kept (float16, each 64-byte aligned;
	// the front stage also keeps the mean image).
	Weights int64 `json:"weights"`
	// Activations and Scratch: core's plan for the range (core.EstimateCPU).
	Activations int64 `json:"activations"`
	Scratch     int64 `json:"scratch"`
	// In: a batch of ten of the tensor crossing in (the front: its
	// preprocessed crops). Out: a batch of ten of the tensor crossing out,
	// and, in the last stage, of the features class activation maps are
	// made of. Reply: the front's copy of the last stage's answer.
	In    int64 `json:"in"`
	Out   int64 `json:"out"`
	Reply int64 `json:"reply"`
	// Runtime: the Go runtime's own memory (runtimeReserve).
	Runtime int64 `json:"runtime"`
	// Request: the front's reference request (see requestNeed).
	Request int64 `json:"request"`
	Total   int64 `json:"total"`
}

// Resident is what the stage keeps between requests.
func (e StageEstimate) Resident() int64 { return e.Total - e.Request }

// The plan is made natively (make worker-config), the stages run as
// WebAssembly: the scratch term is core.EstimateCPU of the build that
// computes it, and the simd GEMM's workspace depends on the vector width
// (measured for ResNet-101's first stage: 3.7 MB on an AVX-512 host, 7.9 MB
// in wasm, where vectors are narrowest). So the plan may be up to about 4 MB
// short; each stage computes its estimate again when it loads, in wasm,
// exactly, and refuses a slice over its budget (503, before fetching a
// shard). DefaultStageBudget leaves far more than that.

// estimateStage computes the estimate of ops [first, end) of m as stage
// index of a pipeline; maps says that the last stage keeps the features of
// class activation maps (the model must have them).
func estimateStage(m *weights.Manifest, first, end, index int, maps bool) (StageEstimate, error) {
	p, err := core.Compile(m, core.CompileOptions{First: first, End: end})
	if err != nil {
		return StageEstimate{}, err
	}
	return estimateProgram(p, index, maps), nil
}

func estimateProgram(p *core.Program, index int, maps bool) StageEstimate {
	m := p.Manifest
	first, end := p.Options.First, p.Options.End
	if end == 0 {
		end = len(m.Ops)
	}
	last := end == len(m.Ops)
	op, features, hasMaps := core.MapsOp(m)
	maps = maps && hasMaps && last && first <= op
	if maps && len(p.Options.Taps) == 0 {
		// The stage keeps the features live to the end (a tap): its plan
		// may need more activation memory than the program without it.
		o := p.Options
		o.Taps = []string{m.Ops[op].Inputs[0]}
		if tapped, err := core.Compile(m, o); err == nil {
			p = tapped
		}
	}
	e := StageEstimate{Stage: index, First: first, End: end, Runtime: runtimeReserve}
	align := func(n int64) int64 { return (n + weights.Alignment - 1) / weights.Alignment * weights.Alignment }
	for _, t := range p.Tensors() {
		e.Weights += align(t.Length)
	}
	cpu := core.EstimateCPU(p, core.CPUOptions{})
	e.Activations, e.Scratch = cpu.ActivationBytes, cpu.ScratchBytes
	e.In = maxBatch * int64(p.InputSize()) * 4
	e.Out = maxBatch * int64(p.OutputSize()) * 4
	if maps {
		e.Out += maxBatch * int64(features[0]*features[1]*features[2]) * 4
	}
	if first == 0 {
		if name := m.Preprocess.MeanTensor; name != "" {
			for i := range m.Tensors {
				if m.Tensors[i].Name == name {
					e.Weights += align(m.Tensors[i].Length)
				}
			}
		}
		e.Request = requestNeed(referenceRequest, specOf(m)).Total()
		if !last {
			e.Reply = maxBatch * int64(m.Classes()) * 4 * 2 // the answer's bytes and its values
		}
	}
	e.Total = e.Weights + e.Activations + e.Scratch + e.In + e.Out + e.Reply + e.Runtime + e.Request
	return e
}

// planStages splits m into the fewest stages whose estimates are within
// budget (core.Partition: then the smallest largest stage, then the fewest
// values moved). With maps, the last stage keeps the layers from the
// features of class activation maps on.
func planStages(m *weights.Manifest, budget int64, maps bool) ([]StageEstimate, error) {
	o := core.PartitionOptions{Budget: budget, Cost: func(p *core.Program) int64 {
		return estimateProgram(p, 0, maps).Total
	}}
	if op, _, ok := core.MapsOp(m); ok && maps {
		o.Skip = func(c core.Cut) bool { return c.Op > op }
	}
	ranges, err := core.Partition(m, o)
	if err != nil {
		return nil, fmt.Errorf("model %s does not fit in stages of %s: %w", m.Model, mb(budget), err)
	}
	est := make([]StageEstimate, len(ranges))
	for i, r := range ranges {
		if est[i], err = estimateStage(m, r.First, r.End, i, maps); err != nil {
			return nil, err
		}
	}
	return est, nil
}

// digestOf is the sha256 of a manifest's bytes: the stage messages carry it,
// and a stage refuses a tensor computed with another manifest.
func digestOf(raw []byte) [32]byte { return sha256.Sum256(raw) }
