// Package caffe reads and writes the Caffe file formats residual consumes: binary
// NetParameter (.caffemodel), the protobuf text format (.prototxt) and BlobProto
// (.binaryproto mean files). It is written from the field numbers of Caffe's
// caffe.proto with google.golang.org/protobuf/encoding/protowire; no generated code.
//
// The data model below keeps only what residual needs: layer names, types,
// bottoms and tops, the typed parameters of the supported layers, and the blobs.
// Unknown fields are skipped, so files written by any Caffe version parse. An
// integer that does not fit its field's declared type, or an enum value
// caffe.proto does not declare, is refused rather than cut to 32 bits or
// dropped as Caffe's protobuf would (see decode.go for the ranges and why).
package caffe

// Net is a parsed NetParameter: the deploy definition from a .prototxt, the
// trained net from a .caffemodel, or both merged with [Merge].
type Net struct {
	Name   string
	Inputs []Input // legacy input:+input_dim / input_shape, and Input layers are NOT listed here (they stay layers)
	Layers []*Layer
}

// Input is a net-level input blob declared with `input:` and `input_dim`
// (the form of the ResNet deploy files) or `input_shape`.
type Input struct {
	Name  string
	Shape []int // N, C, H, W as declared
}

// Phase of a NetStateRule (include/exclude). The zero value is PhaseAny, so a
// Layer built in Go belongs to every phase unless it says otherwise. The wire
// values are Caffe's (TRAIN = 0, TEST = 1); see Phase.Wire and PhaseFromWire.
type Phase int

const (
	PhaseAny   Phase = iota // no include/exclude rule with a phase
	PhaseTrain              // include { phase: TRAIN }
	PhaseTest               // include { phase: TEST }
)

// Wire is the phase's value in caffe.proto's Phase enum (TRAIN = 0, TEST = 1); -1 for PhaseAny.
func (p Phase) Wire() int { return int(p) - 1 }

// PhaseFromWire maps caffe.proto's Phase enum value (0 or 1) to a Phase.
func PhaseFromWire(v int) Phase { return Phase(v + 1) }

// Layer is one LayerParameter. Exactly the parameter struct matching Type is
// non-nil when the file carried it; a nil parameter means Caffe's defaults.
type Layer struct {
	Name    string
	Type    string // "Convolution", "BatchNorm", ... as written in the file
	Bottoms []string
	Tops    []string
	Phase   Phase // from include { phase: ... }; PhaseAny when absent

	Conv      *ConvolutionParam
	BatchNorm *BatchNormParam
	Scale     *ScaleParam
	ReLU      *ReLUParam
	Eltwise   *EltwiseParam
	Pooling   *PoolingParam
	InnerProd *InnerProductParam
	Softmax   *SoftmaxParam
	Concat    *ConcatParam
	Flatten   *FlattenParam
	Dropout   *DropoutParam
	Input     *InputParam
	Transform *TransformParam // transform_param of data layers

	Blobs []*Blob
}

// Blob is a BlobProto. Data holds `data` (float32) or, when the file used
// `double_data`, Data64 holds it and Data is nil.
type Blob struct {
	Shape  []int // from `shape`, or the legacy num/channels/height/width
	Data   []float32
	Data64 []float64
}

// Len is the number of values the blob carries.
func (b *Blob) Len() int {
	if b.Data64 != nil {
		return len(b.Data64)
	}
	return len(b.Data)
}

// At returns value i as float64, whichever field carried it.
func (b *Blob) At(i int) float64 {
	if b.Data64 != nil {
		return b.Data64[i]
	}
	return float64(b.Data[i])
}

// Count is the product of Shape (1 for an empty shape).
func (b *Blob) Count() int {
	n := 1
	for _, d := range b.Shape {
		n *= d
	}
	return n
}

// ConvolutionParameter (caffe.proto field 106). Repeated pad/kernel/stride/dilation
// are kept as written; the _h/_w forms are kept separately (0 = not given).
type ConvolutionParam struct {
	NumOutput               int
	BiasTerm                bool // default true
	Pad, KernelSize, Stride []int
	Dilation                []int
	PadH, PadW              int
	KernelH, KernelW        int
	StrideH, StrideW        int
	HasPadHW, HasKernelHW   bool
	HasStrideHW             bool
	Group                   int // default 1
	Axis                    int // default 1
}

// BatchNormParameter (field 139).
type BatchNormParam struct {
	UseGlobalStats    *bool   // nil = not given (Caffe: true in TEST phase)
	Eps               float64 // default 1e-5
	MovingAvgFraction float64 // default 0.999
}

// ScaleParameter (field 142).
type ScaleParam struct {
	Axis     int // default 1
	NumAxes  int // default 1
	BiasTerm bool
}

// ReLUParameter (field 123).
type ReLUParam struct{ NegativeSlope float64 }

// EltwiseOp values as in caffe.proto.
const (
	EltwiseProd = 0
	EltwiseSum  = 1
	EltwiseMax  = 2
)

// EltwiseParameter (field 110).
type EltwiseParam struct {
	Operation int // default EltwiseSum
	Coeff     []float64
}

// Pooling methods and round modes as in caffe.proto.
const (
	PoolMax        = 0
	PoolAve        = 1
	PoolStochastic = 2
	RoundCeil      = 0
	RoundFloor     = 1
)

// PoolingParameter (field 121).
type PoolingParam struct {
	Pool             int // default PoolMax
	Pad, PadH, PadW  int
	KernelSize       int
	KernelH, KernelW int
	Stride           int // default 1
	StrideH, StrideW int
	HasPadHW         bool
	HasKernelHW      bool
	HasStrideHW      bool
	GlobalPooling    bool
	RoundMode        int // default RoundCeil
}

// InnerProductParameter (field 117).
type InnerProductParam struct {
	NumOutput int
	BiasTerm  bool // default true
	Axis      int  // default 1
	Transpose bool
}

// SoftmaxParameter (field 125).
type SoftmaxParam struct{ Axis int } // default 1

// ConcatParameter (field 104).
type ConcatParam struct{ Axis int } // default 1 (concat_dim folded in)

// FlattenParameter (field 135).
type FlattenParam struct{ Axis, EndAxis int } // defaults 1, -1

// DropoutParameter (field 108).
type DropoutParam struct{ Ratio float64 }

// InputParameter (field 143).
type InputParam struct{ Shapes [][]int }

// TransformationParameter (field 100).
type TransformParam struct {
	Scale     float64 // default 1
	HasScale  bool
	MeanValue []float64
	MeanFile  string
	CropSize  int
	Mirror    bool
	ForceGray bool
}
