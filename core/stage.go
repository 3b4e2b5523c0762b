package core

// This file runs a network as a pipeline of slices: a Stage holds the
// weights of one op range between two cuts (see Cuts) and runs it on the
// tensor that crosses into it. The Cloudflare Worker (wasm/worker) runs each
// stage in its own isolate, joined by Service Bindings, so that a model
// larger than one 128 MB isolate still runs; natively, stages chained in
// one process give exactly the results of Model (TestStagesEqualModel).
//
// The pieces every front end shares with Model live here too: the
// preprocessing of an image into a batch of crops (cropBatch), the crop
// average and top-k (topK).

import (
	"errors"
	"fmt"
	"image"
	"io/fs"
	"sync"

	"github.com/residual-go/residual/core/kernels"
	"github.com/residual-go/residual/core/preprocess"
	"github.com/residual-go/residual/core/weights"
)

// StageOptions configure OpenStage.
type StageOptions struct {
	// First and End delimit the op range [First, End) the stage runs (End
	// 0: to the last op). Each is 0, the number of ops, or the Op of a cut.
	First, End int
	// Threads for the kernels (0: runtime.NumCPU(); always 1 under wasm).
	Threads int
	// MaxPixels refuses larger images before decoding, in the front stage
	// (0: preprocess.DefaultMaxPixels).
	MaxPixels int
	// CAM makes the last stage keep what class activation maps need (the
	// features as a tap of its program, and the final inner product's
	// weights, which are part of its slice anyway), when the model has maps;
	// such a stage must start at MapsOp or before. Other stages ignore it.
	CAM bool
	// Progress, if set, is called while the slice's shards are read and
	// verified.
	Progress func(done, total int64)
	// MaxBatch, if positive, allocates at once what a batch of that many
	// crops needs (the front's preprocessed crops, the outputs and taps),
	// rather than on the first batch that large, so that a memory-limited
	// caller holds it with the weights from the start.
	MaxBatch int
}

// Boundary is the value that crosses into or out of a stage.
type Boundary struct {
	Blob  string `json:"blob"`
	Shape [3]int `json:"shape"` // C, H, W of one image
}

// StageInfo describes an open Stage.
type StageInfo struct {
	Model     string `json:"model"`
	Synthetic bool   `json:"synthetic"`
	Classes   int    `json:"classes"`
	// First and End are the op range; Ops is the number of ops of the
	// whole model, FirstOp and LastOp the names of ops First and End-1.
	First   int    `json:"first"`
	End     int    `json:"end"`
	Ops     int    `json:"ops"`
	FirstOp string `json:"first_op"`
	LastOp  string `json:"last_op"`
	// Input and Output cross the stage's ends (the network's input blob
	// for the front stage, its probabilities for the last).
	Input  Boundary `json:"input"`
	Output Boundary `json:"output"`
	// Front: the stage preprocesses images (First is 0). Last: its output
	// is the class probabilities.
	Front bool `json:"front"`
	Last  bool `json:"last"`
	// CAM: the last stage returns the features class activation maps need
	// (StageOptions.CAM on a model that has maps). ModelCAM: the model has
	// maps (it ends in global average pooling and an inner product).
	CAM      bool `json:"cam"`
	ModelCAM bool `json:"model_cam"`
	// Params and WeightBytes count only the stage's tensors (the front's
	// mean image included): all the stage reads and keeps of the shards.
	Params          int64  `json:"params"`
	WeightBytes     int64  `json:"weight_bytes"`
	ActivationBytes int64  `json:"activation_bytes"`
	ScratchBytes    int64  `json:"scratch_bytes"`
	Kernels         string `json:"kernels"`
}

// Stage runs ops [First, End) of a network with float16-resident weights on
// the CPU, holding only the tensors of its slice. Its methods are safe for
// concurrent use, but the Output of Run and RunImage belongs to the stage
// until the next call: a caller that shares a Stage serializes the use of
// the outputs too (the Worker handles one request at a time).
type Stage struct {
	m         *weights.Manifest
	prog      *Program
	info      StageInfo
	spec      preprocess.Spec // the front stage's preprocessing
	maxPixels int
	cam       camSource   // the model's maps, when info.ModelCAM
	camW      *camWeights // the last stage's inner product weights, when info.CAM

	mu      sync.Mutex // guards everything below
	w       *weights.Weights
	backend *CPU
	bufs    preprocess.Buffers
	batch   []float32
	sum     []float64
	closed  bool
}

// OpenStage reads the manifest at the root of fsys, compiles ops [o.First,
// o.End) and reads, of the shards, only the tensors that range uses (see
// weights.ReadOptions.Tensors: every shard read is verified whole; the
// others are not read at all). The front stage also keeps the mean image.
//
// Errors: those of core.Open for a broken model directory, and a plain
// error for a range that does not start and end at cuts.
func OpenStage(fsys fs.FS, o StageOptions) (_ *Stage, err error) {
	defer recoverInternal(&err)
	if o.Threads < 0 {
		return nil, &OptionError{Option: "threads", Msg: fmt.Sprintf("%d; use 0 (all cores) or more", o.Threads)}
	}
	m, err := weights.ReadManifest(fsys)
	if err != nil {
		return nil, err
	}
	if o.End == 0 {
		o.End = len(m.Ops)
	}
	s := &Stage{m: m, maxPixels: o.MaxPixels}
	if s.maxPixels <= 0 {
		s.maxPixels = preprocess.DefaultMaxPixels
	}
	s.info = StageInfo{Model: m.Model, Synthetic: m.Synthetic, Classes: m.Classes(),
		First: o.First, End: o.End, Ops: len(m.Ops), Front: o.First == 0, Last: o.End == len(m.Ops)}
	s.cam, s.info.ModelCAM = findCAM(m)
	s.prog, err = CompileStage(m, o)
	if err != nil {
		return nil, err
	}
	s.info.CAM = len(s.prog.Taps) > 0
	var names []string
	for _, t := range s.prog.Tensors() {
		names = append(names, t.Name)
	}
	if s.info.Front && m.Preprocess.MeanTensor != "" {
		names = append(names, m.Preprocess.MeanTensor)
	}
	s.w, err = weights.Load(fsys, m, weights.ReadOptions{Tensors: names, Progress: o.Progress})
	if err != nil {
		return nil, err
	}
	if s.info.Front {
		s.spec = specOf(s.w)
	}
	if s.info.CAM {
		if s.camW, err = keepCAMWeights(s.w, s.cam, false); err != nil {
			return nil, err
		}
	}
	s.backend, err = NewCPU(s.prog, s.w, CPUOptions{Threads: o.Threads})
	if err != nil {
		return nil, err
	}
	if o.MaxBatch > 0 {
		s.backend.Grow(o.MaxBatch)
		if s.info.Front {
			s.batch = make([]float32, o.MaxBatch*s.prog.InputSize())
		}
	}
	bi := s.backend.Describe()
	in, out := s.prog.Values[s.prog.Input], s.prog.Values[s.prog.Output]
	s.info.FirstOp, s.info.LastOp = m.Ops[o.First].Name, m.Ops[o.End-1].Name
	s.info.Input = Boundary{Blob: in.Blob, Shape: in.Shape}
	s.info.Output = Boundary{Blob: out.Blob, Shape: out.Shape}
	s.info.Params = s.prog.Params()
	s.info.WeightBytes = s.w.ShardBytes()
	s.info.ActivationBytes, s.info.ScratchBytes = bi.ActivationBytes, bi.ScratchBytes
	s.info.Kernels = bi.Name
	return s, nil
}

// CompileStage compiles ops [o.First, o.End) of m as OpenStage does (End 0:
// to the last op): with the residual sums fused into the convolutions, as
// Open compiles a whole model, and, for a last stage asked for class
// activation maps (o.CAM) of a model that has them, with their features as
// a tap. A memory-limited caller estimates a stage from this program
// (EstimateCPU) before opening it.
func CompileStage(m *weights.Manifest, o StageOptions) (*Program, error) {
	if o.End == 0 {
		o.End = len(m.Ops)
	}
	co := CompileOptions{First: o.First, End: o.End, FuseResidual: true}
	if src, ok := findCAM(m); ok && o.CAM && o.End == len(m.Ops) {
		if o.First > src.pool {
			return nil, fmt.Errorf("core: OpenStage: a last stage starting at op %d (%s) cannot return class activation maps: their features are read by op %d (%s); start it there or before",
				o.First, m.Ops[o.First].Name, src.pool, m.Ops[src.pool].Name)
		}
		co.Taps = []string{src.feature}
	}
	return Compile(m, co)
}

// Info describes the stage.
func (s *Stage) Info() StageInfo { return s.info }

// Manifest returns the model's validated manifest (do not modify it).
func (s *Stage) Manifest() *weights.Manifest { return s.m }

// Program returns the stage's compiled program.
func (s *Stage) Program() *Program { return s.prog }

// Close releases the kernels' goroutines; later calls return ErrClosed.
func (s *Stage) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.backend.Close()
	}
}

// Normalize checks o against the whole model (its classes, whether it has
// maps) and fills in the defaults, as Model's Classify methods do: a front
// stage checks a request's options before the other stages see it.
func (s *Stage) Normalize(o ClassifyOptions) (ClassifyOptions, error) {
	o, err := o.normalize(s.info.Classes)
	if err != nil {
		return o, err
	}
	if o.CAM && !s.info.ModelCAM {
		return o, &OptionError{Option: OptCAM, Msg: "this model has no class activation maps (it must end in global average pooling and an inner product)"}
	}
	return o, nil
}

// Decode decodes image bytes as Model.Decode does, with the stage's pixel limit.
func (s *Stage) Decode(data []byte) (image.Image, error) {
	img, err := preprocess.Decode(data, s.maxPixels)
	if err != nil {
		return nil, fmt.Errorf("core: %w", err)
	}
	return img, nil
}

// RunImage preprocesses crops crops (1 or 10) of img as Model does and runs
// the front stage on them as one batch. It returns the stage's output and
// where the crops lie in the resized image (for ClassMap.Place).
func (s *Stage) RunImage(img image.Image, crops int) (_ Output, _ preprocess.Layout, err error) {
	defer recoverInternal(&err)
	if !s.info.Front {
		return Output{}, preprocess.Layout{}, fmt.Errorf("core: stage [%d, %d) is not the front stage: it takes a tensor, not an image", s.info.First, s.info.End)
	}
	if crops != 1 && crops != 10 {
		return Output{}, preprocess.Layout{}, badCrops(crops)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Output{}, preprocess.Layout{}, ErrClosed
	}
	batch, err := cropBatch(&s.bufs, s.spec, img, crops, &s.batch)
	if err != nil {
		return Output{}, preprocess.Layout{}, err
	}
	b := img.Bounds()
	l, err := preprocess.CropLayout(b.Dx(), b.Dy(), s.spec, crops)
	if err != nil {
		return Output{}, preprocess.Layout{}, fmt.Errorf("core: %w", err) // Crops accepted the same geometry: not reached
	}
	out, err := s.backend.Run(batch, crops)
	return out, l, err
}

// Run runs the stage on n inputs (n x Info().Input's size floats, image
// after image): the tensor the previous stage output. The Output is valid
// until the next Run or RunImage.
func (s *Stage) Run(in []float32, n int) (_ Output, err error) {
	defer recoverInternal(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Output{}, ErrClosed
	}
	return s.backend.Run(in, n)
}

// Top returns the o.Top most probable classes of probs, the last stage's
// output for n crops (n x Classes), averaging the crops' probabilities as
// Model does; o must be normalized (Normalize). Any stage can do it: every
// stage has the model's labels.
func (s *Stage) Top(probs []float32, n int, o ClassifyOptions) ([]Prediction, error) {
	if n < 1 || len(probs) != n*s.info.Classes {
		return nil, fmt.Errorf("core: %d probabilities for %d crops of %d classes", len(probs), n, s.info.Classes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return topK(probs, n, s.info.Classes, o.Top, s.m.Labels, &s.sum), nil
}

// Maps returns the raw class activation maps (ClassMap.Crops; Layout and
// Placed are left for ClassMap.Place) of classes, from the features a last
// stage opened with StageOptions.CAM returned as its Output's tap for n
// crops.
func (s *Stage) Maps(out Output, n int, classes []int) ([]ClassMap, error) {
	if !s.info.CAM {
		return nil, &OptionError{Option: OptCAM, Msg: "this stage has no class activation maps (the last stage of a model that has them, opened with StageOptions.CAM)"}
	}
	c := s.cam.shape
	if n < 1 || len(out.Taps) != 1 || len(out.Taps[0]) != n*c[0]*c[1]*c[2] {
		return nil, errors.New("core: Maps: the output is not this stage's for that many crops")
	}
	for _, k := range classes {
		if k < 0 || k >= s.info.Classes {
			return nil, &OptionError{Option: OptCAMClasses, Msg: fmt.Sprintf("class %d; the model has classes 0..%d", k, s.info.Classes-1)}
		}
	}
	return classMaps(s.cam, s.camW, out.Taps[0], n, classes), nil
}

// specOf is the preprocessing w's manifest describes, with a copy of the
// mean image (so that the shards can be released in float32 mode).
func specOf(w *weights.Weights) preprocess.Spec {
	m := w.Manifest
	spec := preprocess.Spec{
		Channels:     m.Input.Channels,
		Height:       m.Input.Height,
		Width:        m.Input.Width,
		Resize:       m.Preprocess.Resize,
		ChannelOrder: m.Preprocess.ChannelOrder,
		Scale:        float32(m.Preprocess.Scale),
	}
	if name := m.Preprocess.MeanTensor; name != "" {
		spec.Mean = make([]float32, w.Tensor(name).Elements())
		if f := w.F32(name); f != nil {
			copy(spec.Mean, f)
		} else {
			kernels.WidenF16(spec.Mean, w.F16(name))
		}
	}
	for _, v := range m.Preprocess.MeanValues {
		spec.MeanValues = append(spec.MeanValues, float32(v))
	}
	return spec
}

// cropBatch preprocesses n crops of img under spec into *batch (grown when
// needed), image after image, and returns them. A shape that yields no crop
// is reported as an image error, so that front ends answer 400.
func cropBatch(bufs *preprocess.Buffers, spec preprocess.Spec, img image.Image, n int, batch *[]float32) ([]float32, error) {
	size := spec.Channels * spec.Height * spec.Width
	if len(*batch) < n*size {
		*batch = make([]float32, n*size)
	}
	var crops [10][]float32
	for i := range n {
		crops[i] = (*batch)[i*size : (i+1)*size]
	}
	if err := bufs.Crops(img, spec, n, crops[:n]); err != nil {
		var ge *preprocess.GeometryError
		if errors.As(err, &ge) {
			// The image's shape, not the model, is the problem.
			return nil, fmt.Errorf("core: %w", &preprocess.ImageError{Kind: preprocess.ErrUnsupported, Reason: ge.Reason, Err: ge})
		}
		return nil, fmt.Errorf("core: preprocessing for this model failed: %w", err)
	}
	return (*batch)[:n*size], nil
}

// topK returns the k most probable of classes classes from the
// probabilities of n crops (n x classes, crop after crop), averaged in
// float64 when n > 1 (*sum is the scratch, grown when needed), with labels.
func topK(probs []float32, n, classes, k int, labels []string, sum *[]float64) []Prediction {
	prob := func(j int) float64 { return float64(probs[j]) }
	if n > 1 {
		if len(*sum) < classes {
			*sum = make([]float64, classes)
		}
		acc := (*sum)[:classes]
		clear(acc)
		for i := range n {
			for j, p := range probs[i*classes : (i+1)*classes] {
				acc[j] += float64(p)
			}
		}
		prob = func(j int) float64 { return acc[j] / float64(n) }
	}
	top := make([]Prediction, 0, k)
	for j := range classes {
		top = insertTop(top, k, j, prob(j))
	}
	for i := range top {
		if top[i].Index < len(labels) {
			top[i].Label = labels[top[i].Index]
		}
	}
	return top
}
