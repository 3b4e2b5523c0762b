// Package weights defines residual's converted-model format (weights/README.md
// specifies it byte by byte) and reads it: manifest.json, the op list, and the
// float16/float32 tensors in shard files, each shard checked against its sha256.
//
// The converter (tools/convert) writes this format; core executes it. Nothing
// here knows about Caffe: the op list is already folded and fused.
package weights

// FormatName and FormatVersion identify the manifest. A reader refuses any
// other name and any version it does not know.
const (
	FormatName    = "residual-weights"
	FormatVersion = 1
)

// Op types of the runtime graph. Every activation is one image's C x H x W
// float32 tensor (batch 1, row-major, W fastest).
const (
	OpConv         = "conv"          // Caffe Convolution (BatchNorm/Scale folded in), optional fused ReLU
	OpPool         = "pool"          // Caffe Pooling: max or ave, ceil or floor, global
	OpEltwise      = "eltwise"       // Caffe Eltwise: sum with coeffs, prod, max; optional fused ReLU
	OpReLU         = "relu"          // standalone ReLU (only where it could not be fused)
	OpAffine       = "affine"        // per-channel y = x*weight[c] + bias[c] (BatchNorm/Scale that follow no conv)
	OpInnerProduct = "inner_product" // Caffe InnerProduct over the flattened input, optional fused ReLU
	OpSoftmax      = "softmax"       // softmax over channels at every spatial position
	OpConcat       = "concat"        // concatenation along channels
	OpFlatten      = "flatten"       // C*H*W x 1 x 1; data unchanged
)

// Data types of stored tensors.
const (
	DTypeF16 = "f16" // IEEE 754 binary16, little-endian
	DTypeF32 = "f32" // IEEE 754 binary32, little-endian
)

// Manifest is manifest.json.
type Manifest struct {
	Format    string `json:"format"`  // FormatName
	Version   int    `json:"version"` // FormatVersion
	Model     string `json:"model"`   // display name, e.g. "ResNet-50"
	Synthetic bool   `json:"synthetic,omitempty"`
	// Source records where the model came from (informational).
	Source     Source     `json:"source"`
	Input      Input      `json:"input"`
	Preprocess Preprocess `json:"preprocess"`
	Output     string     `json:"output"` // name of the blob holding the class probabilities
	// Labels[i] is class i's human-readable name; LabelIDs[i] its WordNet id when known.
	Labels   []string `json:"labels,omitempty"`
	LabelIDs []string `json:"label_ids,omitempty"`
	Ops      []Op     `json:"ops"`
	Tensors  []Tensor `json:"tensors"`
	Shards   []Shard  `json:"shards"`
}

// Source is provenance, not used for execution.
type Source struct {
	Caffemodel       string `json:"caffemodel,omitempty"`
	CaffemodelSHA256 string `json:"caffemodel_sha256,omitempty"`
	Prototxt         string `json:"prototxt,omitempty"`
	Mean             string `json:"mean,omitempty"`
	Converter        string `json:"converter,omitempty"`
}

// Input is the network's input blob.
type Input struct {
	Name     string `json:"name"`
	Channels int    `json:"channels"`
	Height   int    `json:"height"`
	Width    int    `json:"width"`
}

// Preprocess says how an image becomes the input tensor, following Caffe's
// DataTransformer: value = (pixel - mean) * Scale, in ChannelOrder.
type Preprocess struct {
	ChannelOrder string    `json:"channel_order"`         // "BGR", "RGB" or "GRAY"
	Resize       int       `json:"resize"`                // shorter side before the center crop (an image already Height x Width is used as is)
	Scale        float64   `json:"scale"`                 // applied after mean subtraction (Caffe transform_param.scale)
	MeanTensor   string    `json:"mean_tensor,omitempty"` // f32 tensor, Channels x Height x Width, in ChannelOrder
	MeanValues   []float64 `json:"mean_values,omitempty"` // per channel, in ChannelOrder; used when MeanTensor is empty
}

// Op is one step of the runtime graph.
type Op struct {
	Name     string   `json:"name"` // the Caffe layer it came from (the first one, when several were folded)
	Type     string   `json:"type"` // one of the Op* constants
	Inputs   []string `json:"inputs"`
	Output   string   `json:"output"`
	OutShape [3]int   `json:"out_shape"` // C, H, W of the output

	Weight string `json:"weight,omitempty"` // tensor names
	Bias   string `json:"bias,omitempty"`

	// conv, pool: [height, width] pairs.
	Kernel   [2]int `json:"kernel,omitzero"`
	Stride   [2]int `json:"stride,omitzero"`
	Pad      [2]int `json:"pad,omitzero"`
	Dilation [2]int `json:"dilation,omitzero"` // conv only
	Group    int    `json:"group,omitempty"`   // conv only

	// pool
	Pool      string `json:"pool,omitempty"`       // "max" or "ave"
	Global    bool   `json:"global,omitempty"`     // kernel = whole input (Kernel still filled in)
	RoundMode string `json:"round_mode,omitempty"` // "ceil" or "floor" (output size formula)

	// eltwise
	Operation string    `json:"operation,omitempty"` // "sum", "prod" or "max"
	Coeffs    []float64 `json:"coeffs,omitempty"`    // sum only; empty = all 1

	// Fused (or standalone) ReLU: y = x > 0 ? x : x*NegativeSlope.
	ReLU          bool    `json:"relu,omitempty"`
	NegativeSlope float64 `json:"negative_slope,omitempty"`
}

// Tensor locates one stored tensor.
type Tensor struct {
	Name   string `json:"name"`
	Shape  []int  `json:"shape"`
	DType  string `json:"dtype"`  // DTypeF16 or DTypeF32
	Shard  int    `json:"shard"`  // index into Manifest.Shards
	Offset int64  `json:"offset"` // byte offset in the shard, a multiple of Alignment
	Length int64  `json:"length"` // bytes: product(Shape) * size of DType
	// Rounding report written by the converter (informational).
	MaxRelError float64 `json:"max_rel_error,omitempty"` // largest |f16(x)-x|/|x| over the values
	Flushed     int     `json:"flushed,omitempty"`       // non-zero values that became zero
}

// Alignment of every tensor's offset within its shard, in bytes.
const Alignment = 64

// MaxShardSize is the default and largest shard size: Cloudflare's static-asset limit.
const MaxShardSize = 25 << 20

// Shard is one shard-NNN.bin file.
type Shard struct {
	File   string `json:"file"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lowercase hex
}
