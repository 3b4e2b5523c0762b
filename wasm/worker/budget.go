package main

import (
	"fmt"

	"github.com/residual-go/residual/core/preprocess"
	"github.com/residual-go/residual/core/weights"
)

// IsolateLimit is the memory of one Cloudflare Worker isolate: "128 MB" in
// Cloudflare's limits table, read here as 128,000,000 bytes (the stricter of
// MB and MiB). JavaScript heap and wasm linear memory both count against it.
const IsolateLimit = 128_000_000

// DefaultBudget is what the Go side may use of an isolate: IsolateLimit minus
// 8 MB for the JavaScript side (V8's own heap, the entry module, the stream
// chunks and the request and response objects in flight). A stage whose
// StageEstimate exceeds the budget is refused with 503 before its shards are
// fetched; the partition plans stages for less (DefaultStageBudget).
const DefaultBudget = IsolateLimit - 8_000_000

// runtimeReserve covers the Go runtime itself in wasm linear memory beyond
// the heap objects: the binary's data segments, goroutine stacks, allocator
// metadata and heap fragmentation. Measured with ResNet-50 in wrangler dev:
// wasm memory minus Go heap objects right after the load is 9.6 MB.
const runtimeReserve = 10_000_000

// referenceRequest is the smallest request a model must leave room for: a
// 640x480 RGBA image (4:3, like most photos) sent as a 1 MiB body.
var referenceRequest = imageGeometry{Width: 640, Height: 480, BytesPerPixel: 4, Body: 1 << 20}

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

// TooBigError says that a stage cannot run within the worker's memory budget.
type TooBigError struct {
	Name     string // the model directory, e.g. "resnet101"
	Slice    slice
	Ops      int // the model's
	Estimate StageEstimate
	Budget   int64
}

func (e *TooBigError) Error() string {
	x := e.Estimate
	what := fmt.Sprintf("model %s", e.Name)
	if x.First > 0 || x.End < e.Ops {
		what = fmt.Sprintf("stage %d of model %s (ops %d to %d of %d)", e.Slice.Stage, e.Name, x.First, x.End, e.Ops)
	}
	return fmt.Sprintf("%s needs about %s in this worker (float16 weights %s + activations %s + scratch %s + tensors in %s and out %s + Go runtime %s + one 640x480 request %s), "+
		"more than the %s a 128 MB Cloudflare Worker isolate leaves for it; split the model into more stages (make deploy WORKER_BUDGET=..., see README) or run it natively with tools/classify",
		what, mb(x.Total), mb(x.Weights), mb(x.Activations), mb(x.Scratch), mb(x.In), mb(x.Out+x.Reply), mb(x.Runtime), mb(x.Request), mb(e.Budget))
}

// mb formats a byte count in megabytes (10^6 bytes, as Cloudflare's limit is stated).
func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
