package caffe

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// The writers produce real-format files (what Caffe itself would write for
// the same content) for fixtures and tests. One encoding of the data model
// drives both a binary and a text encoder.

// encoder receives fields by caffe.proto number and text name.
type encoder interface {
	str(num protowire.Number, name, v string)
	integer(num protowire.Number, name string, v int64) // int32/int64/uint32 fields
	boolean(num protowire.Number, name string, v bool)
	float(num protowire.Number, name string, v float64) // a float field: stored as float32
	enum(num protowire.Number, name string, v int, names map[string]int)
	message(num protowire.Number, name string, body func(encoder))
	dims(num protowire.Number, name string, v []int) // packed int64 in binary
	data(num protowire.Number, name string, v []float32)
	data64(num protowire.Number, name string, v []float64)
}

// binEnc appends the binary encoding.
type binEnc struct{ b []byte }

func (e *binEnc) tag(num protowire.Number, typ protowire.Type) {
	e.b = protowire.AppendTag(e.b, num, typ)
}

func (e *binEnc) str(num protowire.Number, _, v string) {
	e.tag(num, protowire.BytesType)
	e.b = protowire.AppendString(e.b, v)
}

func (e *binEnc) integer(num protowire.Number, _ string, v int64) {
	e.tag(num, protowire.VarintType)
	e.b = protowire.AppendVarint(e.b, uint64(v))
}

func (e *binEnc) boolean(num protowire.Number, _ string, v bool) {
	e.tag(num, protowire.VarintType)
	e.b = protowire.AppendVarint(e.b, protowire.EncodeBool(v))
}

func (e *binEnc) float(num protowire.Number, _ string, v float64) {
	e.tag(num, protowire.Fixed32Type)
	e.b = protowire.AppendFixed32(e.b, math.Float32bits(float32(v)))
}

func (e *binEnc) enum(num protowire.Number, name string, v int, _ map[string]int) {
	e.integer(num, name, int64(v))
}

func (e *binEnc) message(num protowire.Number, _ string, body func(encoder)) {
	sub := &binEnc{}
	body(sub)
	e.tag(num, protowire.BytesType)
	e.b = protowire.AppendBytes(e.b, sub.b)
}

func (e *binEnc) dims(num protowire.Number, _ string, v []int) {
	var p []byte
	for _, d := range v {
		p = protowire.AppendVarint(p, uint64(int64(d)))
	}
	e.tag(num, protowire.BytesType)
	e.b = protowire.AppendBytes(e.b, p)
}

func (e *binEnc) data(num protowire.Number, _ string, v []float32) {
	e.tag(num, protowire.BytesType)
	e.b = protowire.AppendVarint(e.b, uint64(4*len(v)))
	i := len(e.b)
	e.b = append(e.b, make([]byte, 4*len(v))...)
	for j, x := range v {
		binary.LittleEndian.PutUint32(e.b[i+4*j:], math.Float32bits(x))
	}
}

func (e *binEnc) data64(num protowire.Number, _ string, v []float64) {
	e.tag(num, protowire.BytesType)
	e.b = protowire.AppendVarint(e.b, uint64(8*len(v)))
	i := len(e.b)
	e.b = append(e.b, make([]byte, 8*len(v))...)
	for j, x := range v {
		binary.LittleEndian.PutUint64(e.b[i+8*j:], math.Float64bits(x))
	}
}

// textEnc writes the text format, two spaces per nesting level.
type textEnc struct {
	w     *bufio.Writer
	depth int
}

func (e *textEnc) line(name, value string) {
	e.w.WriteString(strings.Repeat("  ", e.depth))
	e.w.WriteString(name)
	e.w.WriteString(": ")
	e.w.WriteString(value)
	e.w.WriteByte('\n')
}

func (e *textEnc) str(_ protowire.Number, name, v string) { e.line(name, quoteText(v)) }

func (e *textEnc) integer(_ protowire.Number, name string, v int64) {
	e.line(name, strconv.FormatInt(v, 10))
}

func (e *textEnc) boolean(_ protowire.Number, name string, v bool) {
	e.line(name, strconv.FormatBool(v))
}

func (e *textEnc) float(_ protowire.Number, name string, v float64) {
	e.line(name, formatFloat(float64(float32(v)), 32))
}

func (e *textEnc) enum(_ protowire.Number, name string, v int, names map[string]int) {
	for k, x := range names {
		if x == v {
			e.line(name, k)
			return
		}
	}
	e.line(name, strconv.Itoa(v))
}

func (e *textEnc) message(_ protowire.Number, name string, body func(encoder)) {
	e.w.WriteString(strings.Repeat("  ", e.depth))
	e.w.WriteString(name)
	e.w.WriteString(" {\n")
	e.depth++
	body(e)
	e.depth--
	e.w.WriteString(strings.Repeat("  ", e.depth))
	e.w.WriteString("}\n")
}

func (e *textEnc) dims(_ protowire.Number, name string, v []int) {
	for _, d := range v {
		e.line(name, strconv.Itoa(d))
	}
}

func (e *textEnc) data(_ protowire.Number, name string, v []float32) {
	for _, x := range v {
		e.line(name, formatFloat(float64(x), 32))
	}
}

func (e *textEnc) data64(_ protowire.Number, name string, v []float64) {
	for _, x := range v {
		e.line(name, formatFloat(x, 64))
	}
}

// formatFloat writes the shortest text that reads back to the same value.
func formatFloat(v float64, bits int) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	return strconv.FormatFloat(v, 'g', -1, bits)
}

// quoteText quotes a string for the text format: printable ASCII as is,
// everything else as an octal escape, so any bytes survive.
func quoteText(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c == '\n':
			sb.WriteString(`\n`)
		case c >= 0x20 && c < 0x7f:
			sb.WriteByte(c)
		default:
			fmt.Fprintf(&sb, `\%03o`, c)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

func encodeShape(e encoder, dims []int) {
	e.dims(shapeDim, "dim", dims)
}

// encodeBlob writes a BlobProto in Caffe's field order (data 5, shape 7,
// double_data 8); legacy writes num/channels/height/width instead of shape.
func encodeBlob(e encoder, b *Blob, legacy bool) {
	if legacy {
		dims := legacyDims(b.Shape)
		e.integer(blobNum, "num", int64(dims[0]))
		e.integer(blobChannels, "channels", int64(dims[1]))
		e.integer(blobHeight, "height", int64(dims[2]))
		e.integer(blobWidth, "width", int64(dims[3]))
	}
	if b.Data64 == nil && len(b.Data) > 0 {
		e.data(blobData, "data", b.Data)
	}
	if !legacy {
		e.message(blobShape, "shape", func(e encoder) { encodeShape(e, b.Shape) })
	}
	if b.Data64 != nil {
		e.data64(blobDoubleData, "double_data", b.Data64)
	}
}

// legacyDims pads a shape of at most 4 axes to N, C, H, W with leading 1s.
func legacyDims(shape []int) [4]int {
	d := [4]int{1, 1, 1, 1}
	copy(d[4-len(shape):], shape)
	return d
}

func encodeNetHeader(e encoder, n *Net) error {
	if n.Name != "" {
		e.str(netName, "name", n.Name)
	}
	withShape := 0
	for _, in := range n.Inputs {
		e.str(netInput, "input", in.Name)
		if in.Shape != nil {
			withShape++
		}
	}
	if withShape != 0 && withShape != len(n.Inputs) {
		return errors.New("caffe: either every net input has a shape or none has")
	}
	if withShape > 0 {
		for _, in := range n.Inputs {
			e.message(netInputShape, "input_shape", func(e encoder) { encodeShape(e, in.Shape) })
		}
	}
	return nil
}

func checkLayer(l *Layer) error {
	if l == nil {
		return errors.New("caffe: nil layer")
	}
	for i, b := range l.Blobs {
		if b == nil {
			return fmt.Errorf("caffe: layer %q blob %d is nil", l.Name, i)
		}
		if err := checkCount(b, l.Name, i); err != nil {
			return err
		}
	}
	return nil
}

// encodeLayer writes a LayerParameter in field-number order.
func encodeLayer(e encoder, l *Layer) {
	e.str(layerName, "name", l.Name)
	e.str(layerType, "type", l.Type)
	for _, s := range l.Bottoms {
		e.str(layerBottom, "bottom", s)
	}
	for _, s := range l.Tops {
		e.str(layerTop, "top", s)
	}
	for _, b := range l.Blobs {
		e.message(layerBlobs, "blobs", func(e encoder) { encodeBlob(e, b, false) })
	}
	if l.Phase == PhaseTrain || l.Phase == PhaseTest {
		e.message(layerInclude, "include", func(e encoder) {
			e.enum(netStateRulePhse, "phase", l.Phase.Wire(), phaseEnum)
		})
	}
	if p := l.Transform; p != nil {
		e.message(layerTransform, "transform_param", func(e encoder) {
			if p.HasScale || p.Scale != 1 {
				e.float(tfScale, "scale", p.Scale)
			}
			e.boolean(tfMirror, "mirror", p.Mirror)
			e.integer(tfCropSize, "crop_size", int64(p.CropSize))
			if p.MeanFile != "" {
				e.str(tfMeanFile, "mean_file", p.MeanFile)
			}
			for _, v := range p.MeanValue {
				e.float(tfMeanValue, "mean_value", v)
			}
			e.boolean(tfForceGray, "force_gray", p.ForceGray)
		})
	}
	if p := l.Concat; p != nil {
		e.message(layerConcat, "concat_param", func(e encoder) { e.integer(concatAxis, "axis", int64(p.Axis)) })
	}
	if p := l.Conv; p != nil {
		e.message(layerConv, "convolution_param", func(e encoder) { encodeConv(e, p) })
	}
	if p := l.Dropout; p != nil {
		e.message(layerDropout, "dropout_param", func(e encoder) { e.float(dropoutRatio, "dropout_ratio", p.Ratio) })
	}
	if p := l.Eltwise; p != nil {
		e.message(layerEltwise, "eltwise_param", func(e encoder) {
			e.enum(eltOperation, "operation", p.Operation, eltwiseEnum)
			for _, c := range p.Coeff {
				e.float(eltCoeff, "coeff", c)
			}
		})
	}
	if p := l.InnerProd; p != nil {
		e.message(layerInnerProd, "inner_product_param", func(e encoder) {
			e.integer(ipNumOutput, "num_output", int64(p.NumOutput))
			e.boolean(ipBiasTerm, "bias_term", p.BiasTerm)
			e.integer(ipAxis, "axis", int64(p.Axis))
			e.boolean(ipTranspose, "transpose", p.Transpose)
		})
	}
	if p := l.Pooling; p != nil {
		e.message(layerPooling, "pooling_param", func(e encoder) { encodePooling(e, p) })
	}
	if p := l.ReLU; p != nil {
		e.message(layerReLU, "relu_param", func(e encoder) { e.float(reluNegSlope, "negative_slope", p.NegativeSlope) })
	}
	if p := l.Softmax; p != nil {
		e.message(layerSoftmax, "softmax_param", func(e encoder) { e.integer(softmaxAxis, "axis", int64(p.Axis)) })
	}
	if p := l.Flatten; p != nil {
		e.message(layerFlatten, "flatten_param", func(e encoder) {
			e.integer(flattenAxis, "axis", int64(p.Axis))
			e.integer(flattenEndAxis, "end_axis", int64(p.EndAxis))
		})
	}
	if p := l.BatchNorm; p != nil {
		e.message(layerBatchNorm, "batch_norm_param", func(e encoder) {
			if p.UseGlobalStats != nil {
				e.boolean(bnUseGlobalStats, "use_global_stats", *p.UseGlobalStats)
			}
			e.float(bnMovingAvg, "moving_average_fraction", p.MovingAvgFraction)
			e.float(bnEps, "eps", p.Eps)
		})
	}
	if p := l.Scale; p != nil {
		e.message(layerScale, "scale_param", func(e encoder) {
			e.integer(scaleAxis, "axis", int64(p.Axis))
			e.integer(scaleNumAxes, "num_axes", int64(p.NumAxes))
			e.boolean(scaleBiasTerm, "bias_term", p.BiasTerm)
		})
	}
	if p := l.Input; p != nil {
		e.message(layerInput, "input_param", func(e encoder) {
			for _, s := range p.Shapes {
				e.message(inputShape, "shape", func(e encoder) { encodeShape(e, s) })
			}
		})
	}
}

func encodeConv(e encoder, p *ConvolutionParam) {
	e.integer(convNumOutput, "num_output", int64(p.NumOutput))
	e.boolean(convBiasTerm, "bias_term", p.BiasTerm)
	for _, v := range p.Pad { // repeated uint32, not packed in caffe.proto
		e.integer(convPad, "pad", int64(v))
	}
	for _, v := range p.KernelSize {
		e.integer(convKernel, "kernel_size", int64(v))
	}
	e.integer(convGroup, "group", int64(p.Group))
	for _, v := range p.Stride {
		e.integer(convStride, "stride", int64(v))
	}
	if p.HasPadHW {
		e.integer(convPadH, "pad_h", int64(p.PadH))
		e.integer(convPadW, "pad_w", int64(p.PadW))
	}
	if p.HasKernelHW {
		e.integer(convKernelH, "kernel_h", int64(p.KernelH))
		e.integer(convKernelW, "kernel_w", int64(p.KernelW))
	}
	if p.HasStrideHW {
		e.integer(convStrideH, "stride_h", int64(p.StrideH))
		e.integer(convStrideW, "stride_w", int64(p.StrideW))
	}
	e.integer(convAxis, "axis", int64(p.Axis))
	for _, v := range p.Dilation {
		e.integer(convDilation, "dilation", int64(v))
	}
}

func encodePooling(e encoder, p *PoolingParam) {
	e.enum(poolPool, "pool", p.Pool, poolEnum)
	if p.KernelSize != 0 {
		e.integer(poolKernel, "kernel_size", int64(p.KernelSize))
	}
	e.integer(poolStride, "stride", int64(p.Stride))
	e.integer(poolPad, "pad", int64(p.Pad))
	if p.HasKernelHW {
		e.integer(poolKernelH, "kernel_h", int64(p.KernelH))
		e.integer(poolKernelW, "kernel_w", int64(p.KernelW))
	}
	if p.HasStrideHW {
		e.integer(poolStrideH, "stride_h", int64(p.StrideH))
		e.integer(poolStrideW, "stride_w", int64(p.StrideW))
	}
	if p.HasPadHW {
		e.integer(poolPadH, "pad_h", int64(p.PadH))
		e.integer(poolPadW, "pad_w", int64(p.PadW))
	}
	e.boolean(poolGlobal, "global_pooling", p.GlobalPooling)
	e.enum(poolRoundMode, "round_mode", p.RoundMode, roundEnum)
}

// WriteModel writes n as a binary NetParameter (.caffemodel) with `layer`
// entries: names, types, bottoms, tops, include { phase } when Phase is
// set, every non-nil parameter, and the blobs with `shape` and packed `data`
// (or `double_data` when Data64 is set). Layers are encoded one at a time.
func WriteModel(w io.Writer, n *Net) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	head := &binEnc{}
	if err := encodeNetHeader(head, n); err != nil {
		return err
	}
	bw.Write(head.b)
	layer := &binEnc{}
	var prefix []byte
	for _, l := range n.Layers {
		if err := checkLayer(l); err != nil {
			return err
		}
		layer.b = layer.b[:0]
		encodeLayer(layer, l)
		prefix = protowire.AppendTag(prefix[:0], netLayer, protowire.BytesType)
		prefix = protowire.AppendVarint(prefix, uint64(len(layer.b)))
		bw.Write(prefix)
		if _, err := bw.Write(layer.b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteBlobProto writes b as a BlobProto (.binaryproto) with `shape`.
func WriteBlobProto(w io.Writer, b *Blob) error {
	return writeBlob(w, b, false)
}

// WriteBlobProtoLegacy writes b with the legacy num/channels/height/width
// fields instead of `shape`, as Caffe's compute_image_mean does; b must have
// at most 4 axes (leading axes of 1 are added).
func WriteBlobProtoLegacy(w io.Writer, b *Blob) error {
	if len(b.Shape) > 4 {
		return fmt.Errorf("caffe: a legacy blob has at most 4 axes, this one has %d", len(b.Shape))
	}
	return writeBlob(w, b, true)
}

func writeBlob(w io.Writer, b *Blob, legacy bool) error {
	if err := checkCount(b, "", 0); err != nil {
		return err
	}
	e := &binEnc{}
	encodeBlob(e, b, legacy)
	_, err := w.Write(e.b)
	return err
}

// WritePrototxt writes n in the protobuf text format that [ParsePrototxt]
// reads (and Caffe too): the same fields as [WriteModel], blobs included.
func WritePrototxt(w io.Writer, n *Net) error {
	e := &textEnc{w: bufio.NewWriter(w)}
	if err := encodeNetHeader(e, n); err != nil {
		return err
	}
	for _, l := range n.Layers {
		if err := checkLayer(l); err != nil {
			return err
		}
		e.message(netLayer, "layer", func(e encoder) { encodeLayer(e, l) })
	}
	return e.w.Flush()
}
