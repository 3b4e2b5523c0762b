package weights

import (
	"encoding/hex"
	"fmt"
	"io/fs"
	"math"

	"github.com/residual-go/residual/core/shape"
)

// Limits that keep a hostile or broken manifest from making the reader (or the
// executor after it) allocate absurd amounts of memory. They are far above
// anything an image classifier needs: ResNet-152's largest activation has
// 802,816 values, its largest tensor 2,359,296.
const (
	MaxElements = 1 << 28 // values in one tensor or one activation (1 GiB as float32)
	MaxDim      = 1 << 20 // any single dimension, kernel size, stride, pad or dilation
	MaxOps      = 1 << 16
	MaxTensors  = 1 << 16
	MaxShards   = 1 << 12
	MaxClasses  = 1 << 20
)

// Groups returns the conv op's group count (an omitted group means 1, as in Caffe).
func (op *Op) Groups() int {
	if op.Group == 0 {
		return 1
	}
	return op.Group
}

// Dilations returns the conv op's dilation (an omitted dilation means 1, as in Caffe).
func (op *Op) Dilations() [2]int {
	d := op.Dilation
	for i := range d {
		if d[i] == 0 {
			d[i] = 1
		}
	}
	return d
}

// Elements is the number of values the tensor holds (product of Shape).
func (t *Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// DTypeSize is the size in bytes of one value of dtype, or 0 for an unknown dtype.
func DTypeSize(dtype string) int {
	switch dtype {
	case DTypeF16:
		return 2
	case DTypeF32:
		return 4
	}
	return 0
}

// Classes is the number of values in the output blob (the class count).
// Valid only after Validate succeeded.
func (m *Manifest) Classes() int {
	s := m.blobShapes()[m.Output]
	return s[0] * s[1] * s[2]
}

// blobShapes returns the final shape of every blob of a validated manifest.
func (m *Manifest) blobShapes() map[string][3]int {
	shapes := map[string][3]int{m.Input.Name: {m.Input.Channels, m.Input.Height, m.Input.Width}}
	for i := range m.Ops {
		shapes[m.Ops[i].Output] = m.Ops[i].OutShape
	}
	return shapes
}

// Validate checks everything the executor relies on, so that a model that
// passes can be planned and run without further checks: the format name and
// version, sizes within the limits above, shards (names, sizes, hashes),
// tensors (dtype, shape, length, offset aligned and inside its shard), the
// input and preprocessing description, and every op: known type, inputs
// defined by an earlier op (or the input), parameters in range, weights of
// the shape the op needs, and OutShape equal to the shape the op computes.
// Labels, when present, number exactly the output's classes.
//
// A blob name may be written again by a later op (Caffe's in-place layers);
// readers always see the latest write.
func (m *Manifest) Validate() error {
	if m.Format != FormatName {
		return formatErr("format is %q, want %q: this is not a residual model manifest", m.Format, FormatName)
	}
	if m.Version != FormatVersion {
		return formatErr("format version is %d, this reader knows version %d", m.Version, FormatVersion)
	}
	if err := m.validateShards(); err != nil {
		return err
	}
	tensors, err := m.validateTensors()
	if err != nil {
		return err
	}
	if err := m.validateInput(tensors); err != nil {
		return err
	}
	if len(m.Ops) == 0 || len(m.Ops) > MaxOps {
		return formatErr("%d ops (want 1 to %d)", len(m.Ops), MaxOps)
	}
	shapes := map[string][3]int{m.Input.Name: {m.Input.Channels, m.Input.Height, m.Input.Width}}
	for i := range m.Ops {
		op := &m.Ops[i]
		if op.Output == "" {
			return formatErr("op %d (%q) has no output name", i, op.Name)
		}
		ins := make([][3]int, len(op.Inputs))
		for j, name := range op.Inputs {
			s, ok := shapes[name]
			if !ok {
				return formatErr("op %d (%q) reads blob %q before any op writes it", i, op.Name, name)
			}
			ins[j] = s
		}
		out, err := op.inferShape(ins, tensors)
		if err != nil {
			return formatErr("op %d (%q, %s): %v", i, op.Name, op.Type, err)
		}
		if out != op.OutShape {
			return formatErr("op %d (%q, %s): out_shape is %v but the op computes %v", i, op.Name, op.Type, op.OutShape, out)
		}
		shapes[op.Output] = out
	}
	out, ok := shapes[m.Output]
	if !ok || m.Output == m.Input.Name {
		return formatErr("output blob %q is not written by any op", m.Output)
	}
	classes := out[0] * out[1] * out[2]
	if classes > MaxClasses {
		return formatErr("output blob %q has %d values, more than %d classes", m.Output, classes, MaxClasses)
	}
	if len(m.Labels) != 0 && len(m.Labels) != classes {
		return formatErr("%d labels for %d classes", len(m.Labels), classes)
	}
	if len(m.LabelIDs) != 0 && len(m.LabelIDs) != classes {
		return formatErr("%d label_ids for %d classes", len(m.LabelIDs), classes)
	}
	return nil
}

func (m *Manifest) validateShards() error {
	if len(m.Shards) > MaxShards {
		return formatErr("%d shards, more than %d", len(m.Shards), MaxShards)
	}
	seen := map[string]bool{}
	for i, s := range m.Shards {
		if s.File == "" || !fs.ValidPath(s.File) || s.File == "." || s.File == ManifestFile {
			return formatErr("shard %d has an invalid file name %q", i, s.File)
		}
		if seen[s.File] {
			return formatErr("shard file %q is listed twice", s.File)
		}
		seen[s.File] = true
		if s.Size < 0 || s.Size > MaxShardSize {
			return formatErr("shard %s has size %d (want 0 to %d bytes)", s.File, s.Size, MaxShardSize)
		}
		if b, err := hex.DecodeString(s.SHA256); err != nil || len(b) != 32 || hex.EncodeToString(b) != s.SHA256 {
			return formatErr("shard %s: sha256 %q is not 64 lowercase hex digits", s.File, s.SHA256)
		}
	}
	return nil
}

func (m *Manifest) validateTensors() (map[string]*Tensor, error) {
	if len(m.Tensors) > MaxTensors {
		return nil, formatErr("%d tensors, more than %d", len(m.Tensors), MaxTensors)
	}
	tensors := make(map[string]*Tensor, len(m.Tensors))
	for i := range m.Tensors {
		t := &m.Tensors[i]
		if t.Name == "" {
			return nil, formatErr("tensor %d has no name", i)
		}
		if tensors[t.Name] != nil {
			return nil, formatErr("tensor %q is listed twice", t.Name)
		}
		tensors[t.Name] = t
		size := DTypeSize(t.DType)
		if size == 0 {
			return nil, formatErr("tensor %q has unknown dtype %q (want %q or %q)", t.Name, t.DType, DTypeF16, DTypeF32)
		}
		if len(t.Shape) == 0 || len(t.Shape) > 8 {
			return nil, formatErr("tensor %q has %d dimensions (want 1 to 8)", t.Name, len(t.Shape))
		}
		n := int64(1)
		for _, d := range t.Shape {
			if d < 1 || d > MaxElements {
				return nil, formatErr("tensor %q has shape %v: every dimension must be 1 to %d", t.Name, t.Shape, MaxElements)
			}
			n *= int64(d)
			if n > MaxElements {
				return nil, formatErr("tensor %q has shape %v: more than %d values", t.Name, t.Shape, MaxElements)
			}
		}
		if t.Length != n*int64(size) {
			return nil, formatErr("tensor %q: length is %d bytes, but shape %v of %s needs %d", t.Name, t.Length, t.Shape, t.DType, n*int64(size))
		}
		if t.Shard < 0 || t.Shard >= len(m.Shards) {
			return nil, formatErr("tensor %q is in shard %d, but there are %d shards", t.Name, t.Shard, len(m.Shards))
		}
		if t.Offset < 0 || t.Offset%Alignment != 0 {
			return nil, formatErr("tensor %q: offset %d is not a multiple of %d", t.Name, t.Offset, Alignment)
		}
		if sh := m.Shards[t.Shard]; t.Offset > sh.Size || t.Length > sh.Size-t.Offset {
			return nil, formatErr("tensor %q: bytes %d to %d lie outside shard %s of %d bytes", t.Name, t.Offset, t.Offset+t.Length, sh.File, sh.Size)
		}
	}
	return tensors, nil
}

func (m *Manifest) validateInput(tensors map[string]*Tensor) error {
	in := m.Input
	if in.Name == "" {
		return formatErr("input has no name")
	}
	if in.Channels != 1 && in.Channels != 3 {
		return formatErr("input has %d channels (want 1 or 3)", in.Channels)
	}
	if in.Height < 1 || in.Width < 1 || in.Height > 1<<14 || in.Width > 1<<14 {
		return formatErr("input size %dx%d out of range (1 to %d)", in.Width, in.Height, 1<<14)
	}
	p := m.Preprocess
	switch {
	case in.Channels == 3 && p.ChannelOrder != "BGR" && p.ChannelOrder != "RGB":
		return formatErr("channel_order %q for a 3-channel input (want \"BGR\" or \"RGB\")", p.ChannelOrder)
	case in.Channels == 1 && p.ChannelOrder != "GRAY":
		return formatErr("channel_order %q for a 1-channel input (want \"GRAY\")", p.ChannelOrder)
	}
	if p.Resize < max(in.Height, in.Width) || p.Resize > 1<<14 {
		return formatErr("resize %d must be at least the input size %dx%d (and at most %d)", p.Resize, in.Width, in.Height, 1<<14)
	}
	if !finite(p.Scale) || p.Scale == 0 {
		return formatErr("scale %v must be finite and non-zero", p.Scale)
	}
	if p.MeanTensor != "" {
		t := tensors[p.MeanTensor]
		if t == nil {
			return formatErr("mean_tensor %q is not in tensors", p.MeanTensor)
		}
		if !sameShape(t.Shape, in.Channels, in.Height, in.Width) {
			return formatErr("mean_tensor %q has shape %v, want [%d %d %d]", t.Name, t.Shape, in.Channels, in.Height, in.Width)
		}
		if len(p.MeanValues) != 0 {
			return formatErr("both mean_tensor and mean_values are given")
		}
	}
	if n := len(p.MeanValues); n != 0 && n != 1 && n != in.Channels {
		return formatErr("%d mean_values for %d channels (want 1 or %d)", n, in.Channels, in.Channels)
	}
	for _, v := range p.MeanValues {
		if !finite(v) {
			return formatErr("mean value %v is not finite", v)
		}
	}
	return nil
}

// inferShape checks op's parameters and weights against its input shapes and
// returns the shape it computes.
func (op *Op) inferShape(ins [][3]int, tensors map[string]*Tensor) ([3]int, error) {
	var zero [3]int
	nIn := func(n int) error {
		if len(ins) != n {
			return fmt.Errorf("has %d inputs, want %d", len(ins), n)
		}
		return nil
	}
	if !finite(op.NegativeSlope) {
		return zero, fmt.Errorf("negative_slope %v is not finite", op.NegativeSlope)
	}
	if op.NegativeSlope != 0 && !op.ReLU && op.Type != OpReLU {
		return zero, fmt.Errorf("negative_slope without relu")
	}
	switch op.Type {
	case OpConv:
		if err := nIn(1); err != nil {
			return zero, err
		}
		in := ins[0]
		g := op.Groups()
		d := op.Dilations()
		if err := checkGeometry(op.Kernel, op.Stride, op.Pad, d); err != nil {
			return zero, err
		}
		if g < 1 || g > in[0] || in[0]%g != 0 {
			return zero, fmt.Errorf("group %d does not divide the %d input channels", g, in[0])
		}
		w := tensors[op.Weight]
		if w == nil {
			return zero, fmt.Errorf("weight %q is not in tensors", op.Weight)
		}
		if len(w.Shape) != 4 || w.Shape[1] != in[0]/g || w.Shape[2] != op.Kernel[0] || w.Shape[3] != op.Kernel[1] || w.Shape[0]%g != 0 {
			return zero, fmt.Errorf("weight %q has shape %v, want [OutC %d %d %d] with OutC a multiple of group %d",
				w.Name, w.Shape, in[0]/g, op.Kernel[0], op.Kernel[1], g)
		}
		outC := w.Shape[0]
		if err := checkBias(op, tensors, outC); err != nil {
			return zero, err
		}
		hw, err := shape.Conv([2]int{in[1], in[2]}, op.Kernel, op.Stride, op.Pad, d)
		if err != nil {
			return zero, err
		}
		out := [3]int{outC, hw[0], hw[1]}
		if err := checkActivation(out); err != nil {
			return zero, err
		}
		// The executor's im2col matrix of one group: InC/group*KH*KW x OutH*OutW
		// (both factors are at most MaxElements by now: no overflow).
		if int64(in[0]/g*op.Kernel[0]*op.Kernel[1])*int64(out[1])*int64(out[2]) > MaxElements {
			return zero, fmt.Errorf("kernel %v over a %dx%d output needs an im2col matrix of more than %d values", op.Kernel, out[2], out[1], MaxElements)
		}
		return out, nil

	case OpPool:
		if err := nIn(1); err != nil {
			return zero, err
		}
		in := ins[0]
		if op.Pool != "max" && op.Pool != "ave" {
			return zero, fmt.Errorf("pool %q (want \"max\" or \"ave\")", op.Pool)
		}
		if op.RoundMode != "ceil" && op.RoundMode != "floor" {
			return zero, fmt.Errorf("round_mode %q (want \"ceil\" or \"floor\")", op.RoundMode)
		}
		if op.Weight != "" || op.Bias != "" || op.ReLU {
			return zero, fmt.Errorf("pool takes no weights and no fused relu")
		}
		if op.Global {
			if op.Kernel != [2]int{in[1], in[2]} || op.Stride != [2]int{1, 1} || op.Pad != [2]int{} {
				return zero, fmt.Errorf("global pooling over %dx%d needs kernel [%d %d], stride [1 1], pad [0 0]; got %v %v %v",
					in[2], in[1], in[1], in[2], op.Kernel, op.Stride, op.Pad)
			}
		}
		if err := checkGeometry(op.Kernel, op.Stride, op.Pad, [2]int{1, 1}); err != nil {
			return zero, err
		}
		hw, err := shape.Pool([2]int{in[1], in[2]}, op.Kernel, op.Stride, op.Pad, op.RoundMode == "ceil")
		if err != nil {
			return zero, err
		}
		out := [3]int{in[0], hw[0], hw[1]}
		return out, checkActivation(out)

	case OpEltwise:
		if len(ins) < 2 {
			return zero, fmt.Errorf("has %d inputs, want at least 2", len(ins))
		}
		for _, s := range ins[1:] {
			if s != ins[0] {
				return zero, fmt.Errorf("input shapes differ: %v and %v", ins[0], s)
			}
		}
		switch op.Operation {
		case "sum":
			if len(op.Coeffs) != 0 && len(op.Coeffs) != len(ins) {
				return zero, fmt.Errorf("%d coeffs for %d inputs", len(op.Coeffs), len(ins))
			}
			for _, c := range op.Coeffs {
				if !finite(c) {
					return zero, fmt.Errorf("coeff %v is not finite", c)
				}
			}
		case "prod", "max":
			if len(op.Coeffs) != 0 {
				return zero, fmt.Errorf("coeffs are only allowed with operation \"sum\"")
			}
		default:
			return zero, fmt.Errorf("operation %q (want \"sum\", \"prod\" or \"max\")", op.Operation)
		}
		return ins[0], noWeights(op)

	case OpReLU:
		if err := nIn(1); err != nil {
			return zero, err
		}
		return ins[0], noWeights(op)

	case OpSoftmax, OpFlatten:
		if err := nIn(1); err != nil {
			return zero, err
		}
		if op.ReLU {
			return zero, fmt.Errorf("%s takes no fused relu", op.Type)
		}
		if err := noWeights(op); err != nil {
			return zero, err
		}
		if op.Type == OpFlatten {
			return [3]int{ins[0][0] * ins[0][1] * ins[0][2], 1, 1}, nil
		}
		return ins[0], nil

	case OpAffine:
		if err := nIn(1); err != nil {
			return zero, err
		}
		w := tensors[op.Weight]
		if w == nil {
			return zero, fmt.Errorf("weight %q is not in tensors", op.Weight)
		}
		if len(w.Shape) != 1 || w.Shape[0] != ins[0][0] {
			return zero, fmt.Errorf("weight %q has shape %v, want [%d]", w.Name, w.Shape, ins[0][0])
		}
		return ins[0], checkBias(op, tensors, ins[0][0])

	case OpInnerProduct:
		if err := nIn(1); err != nil {
			return zero, err
		}
		k := ins[0][0] * ins[0][1] * ins[0][2]
		w := tensors[op.Weight]
		if w == nil {
			return zero, fmt.Errorf("weight %q is not in tensors", op.Weight)
		}
		if len(w.Shape) != 2 || w.Shape[1] != k {
			return zero, fmt.Errorf("weight %q has shape %v, want [N %d]", w.Name, w.Shape, k)
		}
		out := [3]int{w.Shape[0], 1, 1}
		if err := checkBias(op, tensors, w.Shape[0]); err != nil {
			return zero, err
		}
		return out, checkActivation(out)

	case OpConcat:
		if len(ins) < 1 {
			return zero, fmt.Errorf("has no inputs")
		}
		out := ins[0]
		for _, s := range ins[1:] {
			if s[1] != out[1] || s[2] != out[2] {
				return zero, fmt.Errorf("inputs of %dx%d and %dx%d cannot be concatenated along channels", out[2], out[1], s[2], s[1])
			}
			out[0] += s[0]
		}
		if op.ReLU {
			return zero, fmt.Errorf("concat takes no fused relu")
		}
		if err := noWeights(op); err != nil {
			return zero, err
		}
		return out, checkActivation(out)
	}
	return zero, fmt.Errorf("unknown op type %q", op.Type)
}

func checkGeometry(kernel, stride, pad, dil [2]int) error {
	for i := range 2 {
		if kernel[i] < 1 || kernel[i] > MaxDim || stride[i] < 1 || stride[i] > MaxDim ||
			pad[i] < 0 || pad[i] > MaxDim || dil[i] < 1 || dil[i] > MaxDim {
			return fmt.Errorf("kernel %v, stride %v, pad %v, dilation %v out of range", kernel, stride, pad, dil)
		}
	}
	return nil
}

func checkBias(op *Op, tensors map[string]*Tensor, n int) error {
	if op.Bias == "" {
		return nil
	}
	b := tensors[op.Bias]
	if b == nil {
		return fmt.Errorf("bias %q is not in tensors", op.Bias)
	}
	if len(b.Shape) != 1 || b.Shape[0] != n {
		return fmt.Errorf("bias %q has shape %v, want [%d]", b.Name, b.Shape, n)
	}
	return nil
}

func noWeights(op *Op) error {
	if op.Weight != "" || op.Bias != "" {
		return fmt.Errorf("%s takes no weight or bias", op.Type)
	}
	return nil
}

func checkActivation(s [3]int) error {
	if s[0] < 1 || s[1] < 1 || s[2] < 1 || int64(s[0])*int64(s[1])*int64(s[2]) > MaxElements {
		return fmt.Errorf("output shape %v is empty or has more than %d values", s, MaxElements)
	}
	return nil
}

func sameShape(shape []int, c, h, w int) bool {
	return len(shape) == 3 && shape[0] == c && shape[1] == h && shape[2] == w
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// FillOutShapes sets the OutShape of every op that has none (all zero) to the
// shape the op computes, checking the op as Validate does. Writers of
// manifests (the converter, tests) may use it instead of computing shapes.
func (m *Manifest) FillOutShapes() error {
	tensors := make(map[string]*Tensor, len(m.Tensors))
	for i := range m.Tensors {
		tensors[m.Tensors[i].Name] = &m.Tensors[i]
	}
	shapes := map[string][3]int{m.Input.Name: {m.Input.Channels, m.Input.Height, m.Input.Width}}
	for i := range m.Ops {
		op := &m.Ops[i]
		ins := make([][3]int, len(op.Inputs))
		for j, name := range op.Inputs {
			s, ok := shapes[name]
			if !ok {
				return formatErr("op %d (%q) reads blob %q before any op writes it", i, op.Name, name)
			}
			ins[j] = s
		}
		if op.OutShape == ([3]int{}) {
			out, err := op.inferShape(ins, tensors)
			if err != nil {
				return formatErr("op %d (%q, %s): %v", i, op.Name, op.Type, err)
			}
			op.OutShape = out
		}
		shapes[op.Output] = op.OutShape
	}
	return nil
}
