package core

// This file is the public API the front ends (tools/classify, wasm/) call.

import (
	"fmt"
	"image"
	"io/fs"
	"runtime/debug"
	"sync"
	"time"

	"github.com/residual-go/residual/core/preprocess"
	"github.com/residual-go/residual/core/weights"
)

// Options configure Open.
type Options struct {
	// Float32Weights widens every float16 weight to float32 once at load (faster,
	// twice the memory). The default keeps weights as float16 and widens per op
	// into a reused scratch buffer: the mode a 128 MB Cloudflare Worker needs.
	Float32Weights bool
	// Threads is the number of goroutines kernels use (0: runtime.NumCPU()).
	Threads int
	// MaxPixels refuses larger images before decoding (0: preprocess.DefaultMaxPixels).
	MaxPixels int
	// Progress, if set, is called while shards are read and verified.
	Progress func(done, total int64)
	// CAM keeps what class activation maps need (the last convolutional
	// features, as a tap, and the final inner product's weights), when the
	// model has them (Info.CAM says so), so that ClassifyOptions.CAM can ask
	// for maps. It costs the features' memory per crop.
	CAM bool
	// Backend, if set, builds the backend that runs the compiled network p
	// from the verified weights w (a GPU backend, say) instead of the CPU
	// executor. It may fall back to NewCPU itself, and may compile the
	// manifest again with other CompileOptions (FuseResidual, say) as long
	// as the input, output and taps stay those of p. Float32Weights and
	// Threads are then up to it (they are passed along in opts). Once it
	// returns, Open releases w's shard bytes unless the backend's
	// Describe().HostWeights says it reads them.
	Backend func(p *Program, w *weights.Weights, opts Options) (Backend, error)
}

// Model is a loaded network. Its methods are safe for concurrent use; the
// Classify methods decode in parallel but run one inference at a time (a
// mutex guards the executor's buffers, which are planned once per Model).
// Open several Models for parallel inference.
type Model struct {
	w         *weights.Weights
	info      Info
	spec      preprocess.Spec
	maxPixels int
	classes   int
	labels    []string
	cam       camSource   // where maps come from, when camW != nil
	camW      *camWeights // the inner product's weights, when Options.CAM and the model has maps

	mu      sync.Mutex // guards everything below
	prog    *Program
	backend Backend
	bufs    preprocess.Buffers
	batch   []float32 // preprocessed crops, image after image; allocated on first use
	sum     []float64 // 10-crop softmax sum
	closed  bool
}

// Open loads the converted model whose manifest.json is at the root of fsys,
// verifying every shard's sha256. When fsys implements fs.ReadFileFS, the
// byte slices it returns are kept as the float16 weights without copying.
//
// Errors: *weights.FormatError, *weights.ShardError, *weights.ChecksumError
// for a broken model directory (each says how to regenerate it); whatever
// Options.Backend returns; an *InternalError if planning panicked (a bug).
func Open(fsys fs.FS, opts Options) (_ *Model, err error) {
	defer recoverInternal(&err)
	if opts.Threads < 0 {
		return nil, &OptionError{Option: "threads", Msg: fmt.Sprintf("%d; use 0 (all cores) or more", opts.Threads)}
	}
	w, err := weights.Read(fsys, weights.ReadOptions{Progress: opts.Progress})
	if err != nil {
		return nil, err
	}
	m := w.Manifest
	model := &Model{w: w, maxPixels: opts.MaxPixels, classes: m.Classes(), labels: m.Labels}
	if model.maxPixels <= 0 {
		model.maxPixels = preprocess.DefaultMaxPixels
	}
	model.spec = specOf(w)

	// Residual sums fused into the convolutions: one pass over memory less
	// per block on every backend (the CPU adds them in the GEMM epilogue).
	co := CompileOptions{FuseResidual: true}
	if src, ok := findCAM(m); ok && opts.CAM {
		model.cam = src
		co.Taps = []string{src.feature}
	}
	model.prog, err = Compile(m, co)
	if err != nil {
		return nil, err
	}
	if opts.Backend != nil {
		model.backend, err = opts.Backend(model.prog, w, opts)
	} else {
		model.backend, err = NewCPU(model.prog, w, CPUOptions{Float32Weights: opts.Float32Weights, Threads: opts.Threads})
	}
	if err != nil {
		return nil, err
	}
	bi := model.backend.Describe()
	if co.Taps != nil {
		if model.camW, err = keepCAMWeights(w, model.cam, !bi.HostWeights); err != nil {
			model.backend.Close()
			return nil, err
		}
	}
	if !bi.HostWeights {
		w.Release() // the backend holds its own copy (GPU buffers, float32)
	}

	model.info = Info{
		Model:           m.Model,
		Synthetic:       m.Synthetic,
		Classes:         model.classes,
		Input:           m.Input,
		Params:          model.prog.Params(),
		WeightBytes:     bi.WeightBytes,
		WeightMode:      bi.WeightMode,
		Kernels:         bi.Name,
		Device:          bi.Device,
		Ops:             len(m.Ops),
		ActivationBytes: bi.ActivationBytes,
		ScratchBytes:    bi.ScratchBytes,
		CAM:             model.camW != nil,
	}
	return model, nil
}

// Close releases the model's worker goroutines. Classify calls after Close
// return ErrClosed.
func (m *Model) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		m.backend.Close()
	}
}

// Info describes a loaded model.
type Info struct {
	Model       string        `json:"model"`
	Synthetic   bool          `json:"synthetic"`
	Classes     int           `json:"classes"`
	Input       weights.Input `json:"input"`
	Params      int64         `json:"params"`
	WeightBytes int64         `json:"weight_bytes"`     // bytes of weights resident in memory
	WeightMode  string        `json:"weight_mode"`      // "f16" or "f32"
	Kernels     string        `json:"kernels"`          // the backend: "simd" or "scalar" (CPU kernels), "webgpu"
	Device      string        `json:"device,omitempty"` // the backend's device, when it has one (a GPU adapter)
	Ops         int           `json:"ops"`
	// ActivationBytes is the size of the activation buffers after liveness
	// packing; ScratchBytes the other working memory (im2col, widened weights).
	ActivationBytes int64 `json:"activation_bytes"`
	ScratchBytes    int64 `json:"scratch_bytes"`
	// CAM says that ClassifyOptions.CAM works: the model ends in global
	// average pooling and an inner product, and was opened with Options.CAM.
	CAM bool `json:"cam"`
}

// Info returns the model's description.
func (m *Model) Info() Info { return m.info }

// Manifest returns the model's validated manifest (do not modify it).
func (m *Model) Manifest() *weights.Manifest { return m.w.Manifest }

// Weights returns the verified weights (do not modify them). Unless the
// backend reads them as it runs (the CPU in float16 mode), the shard bytes
// have been released: only the manifest remains.
func (m *Model) Weights() *weights.Weights { return m.w }

// Spec returns the preprocessing the model's manifest describes.
func (m *Model) Spec() preprocess.Spec { return m.spec }

// Prediction is one class with its probability.
type Prediction struct {
	Index int     `json:"index"`
	Label string  `json:"label"`
	Prob  float64 `json:"prob"`
}

// Result of classifying one image.
type Result struct {
	Top []Prediction `json:"top"`
	// Maps are the class activation maps ClassifyOptions.CAM asked for:
	// the top-1 class's, then those of CAMClasses.
	Maps    []ClassMap    `json:"-"`
	Elapsed time.Duration `json:"-"`
}

// ClassifyBytes decodes image bytes (JPEG, PNG, GIF, WebP, BMP, TIFF) and classifies them.
// A bad image gives an error wrapping *preprocess.ImageError (errors.As).
func (m *Model) ClassifyBytes(data []byte, o ClassifyOptions) (res *Result, err error) {
	start := time.Now()
	defer recoverInternal(&err)
	o, err = o.normalize(m.classes)
	if err != nil {
		return nil, err
	}
	img, err := m.Decode(data)
	if err != nil {
		return nil, err
	}
	return m.classify(img, o, start)
}

// Decode decodes image bytes as ClassifyBytes does (the same formats, the
// same pixel limit, EXIF orientation applied), for a caller that needs the
// image itself too (to draw a class activation map over it, say).
// A bad image gives an error wrapping *preprocess.ImageError.
func (m *Model) Decode(data []byte) (image.Image, error) {
	img, err := preprocess.Decode(data, m.maxPixels)
	if err != nil {
		return nil, fmt.Errorf("core: %w", err)
	}
	return img, nil
}

// ClassifyImage classifies a decoded image.
// An image that cannot be cropped gives an error wrapping *preprocess.ImageError.
func (m *Model) ClassifyImage(img image.Image, o ClassifyOptions) (res *Result, err error) {
	start := time.Now()
	defer recoverInternal(&err)
	o, err = o.normalize(m.classes)
	if err != nil {
		return nil, err
	}
	return m.classify(img, o, start)
}

// Forward runs the network on one preprocessed input tensor (Channels x
// Height x Width, as Spec describes) and returns a copy of the output blob.
func (m *Model) Forward(input []float32) ([]float32, error) {
	return m.ForwardBatch(input, 1)
}

// ForwardBatch runs the network on n preprocessed inputs, image after image
// in input, as one batch (one upload and one readback on a GPU), and
// returns a copy of the n output blobs, image after image.
func (m *Model) ForwardBatch(input []float32, n int) (out []float32, err error) {
	defer recoverInternal(&err)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	res, err := m.backend.Run(input, n)
	if err != nil {
		return nil, err
	}
	return append([]float32(nil), res.Values...), nil
}

func (m *Model) classify(img image.Image, o ClassifyOptions, start time.Time) (*Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if o.CAM && m.camW == nil {
		return nil, &OptionError{Option: OptCAM, Msg: "this model has no class activation maps (it must end in global average pooling and an inner product, and be opened with Options.CAM)"}
	}
	batch, err := cropBatch(&m.bufs, m.spec, img, o.Crops, &m.batch)
	if err != nil {
		return nil, err
	}
	// All crops in one batch: one upload and one readback on a GPU.
	res, err := m.backend.Run(batch, o.Crops)
	if err != nil {
		return nil, err
	}
	top := topK(res.Values, o.Crops, m.classes, o.Top, m.labels, &m.sum)
	r := &Result{Top: top}
	if o.CAM && len(top) > 0 {
		b := img.Bounds()
		l, err := preprocess.CropLayout(b.Dx(), b.Dy(), m.spec, o.Crops)
		if err != nil {
			return nil, fmt.Errorf("core: %w", err) // Crops accepted the same geometry: not reached
		}
		r.Maps = classMaps(m.cam, m.camW, res.Taps[0], o.Crops, append([]int{top[0].Index}, o.CAMClasses...))
		for i := range r.Maps {
			r.Maps[i].Place(l)
		}
	}
	r.Elapsed = time.Since(start)
	return r, nil
}

// insertTop adds class j with probability p to top (sorted by probability,
// descending, at most k entries). Classes arrive in increasing index order
// and only a strictly larger probability moves ahead, so ties keep the lower
// index first. NaN probabilities never enter.
func insertTop(top []Prediction, k, j int, p float64) []Prediction {
	if k == 0 || p != p || (len(top) == k && p <= top[k-1].Prob) {
		return top
	}
	if len(top) < k {
		top = append(top, Prediction{})
	}
	i := len(top) - 1
	for i > 0 && top[i-1].Prob < p {
		top[i] = top[i-1]
		i--
	}
	top[i] = Prediction{Index: j, Prob: p}
	return top
}

// recoverInternal turns a panic into an *InternalError.
func recoverInternal(err *error) {
	if v := recover(); v != nil {
		*err = &InternalError{Value: v, Stack: string(debug.Stack())}
	}
}
