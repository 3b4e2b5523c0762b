package caffe

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// fieldKind is how caffe.proto declares an integer field.
type fieldKind int

const (
	kindInt32  fieldKind = iota
	kindUint32           // also the repeated uint32 pad/kernel_size/stride/dilation
	kindUint31           // uint32 that Caffe holds in an int: concat_dim, crop_size
	kindEnum
)

// intField is one integer field of a layer parameter message, and how to
// get its decoded value back.
type intField struct {
	param    string // the LayerParameter field holding the message
	paramNum protowire.Number
	name     string
	num      protowire.Number
	kind     fieldKind
	enum     map[string]int
	get      func(*Layer) int
}

func last(v []int) int { return v[len(v)-1] }

// intFields lists every integer and enum field the readers decode.
var intFields = []intField{
	{"convolution_param", layerConv, "num_output", convNumOutput, kindUint32, nil, func(l *Layer) int { return l.Conv.NumOutput }},
	{"convolution_param", layerConv, "pad", convPad, kindUint32, nil, func(l *Layer) int { return last(l.Conv.Pad) }},
	{"convolution_param", layerConv, "kernel_size", convKernel, kindUint32, nil, func(l *Layer) int { return last(l.Conv.KernelSize) }},
	{"convolution_param", layerConv, "group", convGroup, kindUint32, nil, func(l *Layer) int { return l.Conv.Group }},
	{"convolution_param", layerConv, "stride", convStride, kindUint32, nil, func(l *Layer) int { return last(l.Conv.Stride) }},
	{"convolution_param", layerConv, "pad_h", convPadH, kindUint32, nil, func(l *Layer) int { return l.Conv.PadH }},
	{"convolution_param", layerConv, "pad_w", convPadW, kindUint32, nil, func(l *Layer) int { return l.Conv.PadW }},
	{"convolution_param", layerConv, "kernel_h", convKernelH, kindUint32, nil, func(l *Layer) int { return l.Conv.KernelH }},
	{"convolution_param", layerConv, "kernel_w", convKernelW, kindUint32, nil, func(l *Layer) int { return l.Conv.KernelW }},
	{"convolution_param", layerConv, "stride_h", convStrideH, kindUint32, nil, func(l *Layer) int { return l.Conv.StrideH }},
	{"convolution_param", layerConv, "stride_w", convStrideW, kindUint32, nil, func(l *Layer) int { return l.Conv.StrideW }},
	{"convolution_param", layerConv, "axis", convAxis, kindInt32, nil, func(l *Layer) int { return l.Conv.Axis }},
	{"convolution_param", layerConv, "dilation", convDilation, kindUint32, nil, func(l *Layer) int { return last(l.Conv.Dilation) }},
	{"pooling_param", layerPooling, "pool", poolPool, kindEnum, poolEnum, func(l *Layer) int { return l.Pooling.Pool }},
	{"pooling_param", layerPooling, "kernel_size", poolKernel, kindUint32, nil, func(l *Layer) int { return l.Pooling.KernelSize }},
	{"pooling_param", layerPooling, "stride", poolStride, kindUint32, nil, func(l *Layer) int { return l.Pooling.Stride }},
	{"pooling_param", layerPooling, "pad", poolPad, kindUint32, nil, func(l *Layer) int { return l.Pooling.Pad }},
	{"pooling_param", layerPooling, "kernel_h", poolKernelH, kindUint32, nil, func(l *Layer) int { return l.Pooling.KernelH }},
	{"pooling_param", layerPooling, "kernel_w", poolKernelW, kindUint32, nil, func(l *Layer) int { return l.Pooling.KernelW }},
	{"pooling_param", layerPooling, "stride_h", poolStrideH, kindUint32, nil, func(l *Layer) int { return l.Pooling.StrideH }},
	{"pooling_param", layerPooling, "stride_w", poolStrideW, kindUint32, nil, func(l *Layer) int { return l.Pooling.StrideW }},
	{"pooling_param", layerPooling, "pad_h", poolPadH, kindUint32, nil, func(l *Layer) int { return l.Pooling.PadH }},
	{"pooling_param", layerPooling, "pad_w", poolPadW, kindUint32, nil, func(l *Layer) int { return l.Pooling.PadW }},
	{"pooling_param", layerPooling, "round_mode", poolRoundMode, kindEnum, roundEnum, func(l *Layer) int { return l.Pooling.RoundMode }},
	{"eltwise_param", layerEltwise, "operation", eltOperation, kindEnum, eltwiseEnum, func(l *Layer) int { return l.Eltwise.Operation }},
	{"inner_product_param", layerInnerProd, "num_output", ipNumOutput, kindUint32, nil, func(l *Layer) int { return l.InnerProd.NumOutput }},
	{"inner_product_param", layerInnerProd, "axis", ipAxis, kindInt32, nil, func(l *Layer) int { return l.InnerProd.Axis }},
	{"softmax_param", layerSoftmax, "axis", softmaxAxis, kindInt32, nil, func(l *Layer) int { return l.Softmax.Axis }},
	{"concat_param", layerConcat, "axis", concatAxis, kindInt32, nil, func(l *Layer) int { return l.Concat.Axis }},
	{"concat_param", layerConcat, "concat_dim", concatDim, kindUint31, nil, func(l *Layer) int { return l.Concat.Axis }},
	{"flatten_param", layerFlatten, "axis", flattenAxis, kindInt32, nil, func(l *Layer) int { return l.Flatten.Axis }},
	{"flatten_param", layerFlatten, "end_axis", flattenEndAxis, kindInt32, nil, func(l *Layer) int { return l.Flatten.EndAxis }},
	{"scale_param", layerScale, "axis", scaleAxis, kindInt32, nil, func(l *Layer) int { return l.Scale.Axis }},
	{"scale_param", layerScale, "num_axes", scaleNumAxes, kindInt32, nil, func(l *Layer) int { return l.Scale.NumAxes }},
	{"transform_param", layerTransform, "crop_size", tfCropSize, kindUint31, nil, func(l *Layer) int { return l.Transform.CropSize }},
	{"include", layerInclude, "phase", netStateRulePhse, kindEnum, phaseEnum, func(l *Layer) int { return l.Phase.Wire() }},
}

// values returns the values a field of kind k must accept and refuse. For
// an enum, the accepted values are its declared ones.
func (f intField) values() (accept, refuse []int64) {
	switch f.kind {
	case kindInt32:
		return []int64{0, -1, math.MinInt32, math.MaxInt32},
			[]int64{math.MaxInt32 + 1, math.MaxUint32, math.MinInt32 - 1, 1 << 40, math.MaxInt64}
	case kindUint32:
		return []int64{0, 3, math.MaxInt32 + 1, math.MaxUint32},
			[]int64{-1, math.MinInt32, math.MaxUint32 + 1, 1<<32 + 3, math.MaxInt64}
	case kindUint31:
		return []int64{0, 2, math.MaxInt32},
			[]int64{math.MaxInt32 + 1, math.MaxUint32, -1, 1<<32 + 2, math.MaxInt64}
	}
	for _, v := range f.enum {
		accept = append(accept, int64(v))
	}
	// 1<<32 + 1 would be 1 to Caffe's protobuf (low 32 bits).
	return accept, []int64{-1, 7, 1<<32 + 1, math.MaxInt64}
}

// binaryLayer is a caffemodel with one layer whose parameter message holds
// the field as one varint.
func (f intField) binaryLayer(v int64) []byte {
	var param, layer, file []byte
	param = protowire.AppendTag(param, f.num, protowire.VarintType)
	param = protowire.AppendVarint(param, uint64(v))
	layer = protowire.AppendTag(layer, layerName, protowire.BytesType)
	layer = protowire.AppendString(layer, "L")
	layer = protowire.AppendTag(layer, f.paramNum, protowire.BytesType)
	layer = protowire.AppendBytes(layer, param)
	file = protowire.AppendTag(file, netLayer, protowire.BytesType)
	return protowire.AppendBytes(file, layer)
}

func (f intField) textLayer(v int64) string {
	return fmt.Sprintf("layer { name: \"L\" %s { %s: %d } }", f.param, f.name, v)
}

// TestIntegerFieldRanges checks every integer and enum field of both
// readers: in-range values are read as written and survive a write and a
// read in either format; out-of-range varints (beyond 32 bits, negative in
// a uint32, not sign-extended in an int32) and undeclared enum values are
// refused with an error that names the field.
func TestIntegerFieldRanges(t *testing.T) {
	for _, f := range intFields {
		accept, refuse := f.values()
		for _, v := range accept {
			t.Run(fmt.Sprintf("%s.%s=%d", f.param, f.name, v), func(t *testing.T) {
				bin := f.binaryLayer(v)
				n, err := ReadModel(bytes.NewReader(bin), int64(len(bin)))
				if err != nil {
					t.Fatalf("binary: %v", err)
				}
				if got := f.get(n.Layers[0]); int64(got) != v {
					t.Fatalf("binary: read %d", got)
				}
				var w bytes.Buffer
				if err := WriteModel(&w, n); err != nil {
					t.Fatal(err)
				}
				if n, err = ReadModel(bytes.NewReader(w.Bytes()), int64(w.Len())); err != nil || int64(f.get(n.Layers[0])) != v {
					t.Fatalf("binary written back: %v", err)
				}
				if n, err = ParsePrototxt(strings.NewReader(f.textLayer(v))); err != nil || int64(f.get(n.Layers[0])) != v {
					t.Fatalf("text: %v", err)
				}
				w.Reset()
				if err := WritePrototxt(&w, n); err != nil {
					t.Fatal(err)
				}
				if n, err = ParsePrototxt(&w); err != nil || int64(f.get(n.Layers[0])) != v {
					t.Fatalf("text written back: %v", err)
				}
			})
		}
		for _, v := range refuse {
			t.Run(fmt.Sprintf("%s.%s=%d refused", f.param, f.name, v), func(t *testing.T) {
				bin := f.binaryLayer(v)
				_, err := ReadModel(bytes.NewReader(bin), int64(len(bin)))
				var fe *FormatError
				if !errors.As(err, &fe) || !strings.Contains(fe.Msg, f.name) {
					t.Errorf("binary: error %v, want a *FormatError naming %s", err, f.name)
				}
				_, err = ParsePrototxt(strings.NewReader(f.textLayer(v)))
				var se *SyntaxError
				if !errors.As(err, &se) || !strings.Contains(se.Msg, f.name) {
					t.Errorf("text: error %v, want a *SyntaxError naming %s", err, f.name)
				}
			})
		}
	}
}

// TestConcatDimBeyond32Bits is the input FuzzReadModel found (kept as a seed
// in testdata/fuzz/FuzzReadModel): concat_param's concat_dim, a uint32,
// given as a 36-bit varint. It used to be cut to 32 bits into the int32 axis,
// which was then written as an unsigned varint and read back negative.
func TestConcatDimBeyond32Bits(t *testing.T) {
	seed, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzReadModel", "concat-dim-beyond-32-bits"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(seed), "\n", 2)
	lit, ok := strings.CutPrefix(strings.TrimSpace(lines[1]), "[]byte(")
	if !ok {
		t.Fatalf("seed %q is not a []byte corpus entry", lines[1])
	}
	data, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ReadModel(strings.NewReader(data), int64(len(data)))
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(fe.Msg, "concat_dim") || !strings.Contains(fe.Msg, "out of range for a uint32") {
		t.Errorf("error %v, want concat_dim refused as out of range for a uint32", err)
	}
}

// TestPackedUint32Ranges checks the packed form of the repeated uint32
// fields (pad, kernel_size, stride, dilation), which only binary files have.
func TestPackedUint32Ranges(t *testing.T) {
	for _, num := range []protowire.Number{convPad, convKernel, convStride, convDilation} {
		for _, v := range []int64{1 << 32, -1} {
			var packed, param, layer, file []byte
			packed = protowire.AppendVarint(protowire.AppendVarint(packed, 1), uint64(v))
			param = protowire.AppendTag(param, num, protowire.BytesType)
			param = protowire.AppendBytes(param, packed)
			layer = protowire.AppendTag(layer, layerConv, protowire.BytesType)
			layer = protowire.AppendBytes(layer, param)
			file = protowire.AppendTag(file, netLayer, protowire.BytesType)
			file = protowire.AppendBytes(file, layer)
			if _, err := ReadModel(bytes.NewReader(file), int64(len(file))); err == nil || !strings.Contains(err.Error(), "uint32") {
				t.Errorf("field %d packed value %d: error %v, want it refused", num, v, err)
			}
		}
	}
}

// TestDimensionRanges checks the int64 dimension fields (BlobShape.dim,
// input_dim) and the int32 legacy blob dimensions against the largest
// dimension Caffe's Blob holds (INT_MAX), in both readers.
func TestDimensionRanges(t *testing.T) {
	for _, tt := range []struct {
		dim int64
		ok  bool
	}{{0, true}, {math.MaxInt32, true}, {math.MaxInt32 + 1, false}, {-1, false}, {1 << 40, false}} {
		var file []byte
		file = protowire.AppendTag(file, netInput, protowire.BytesType)
		file = protowire.AppendString(file, "x")
		for _, d := range []int64{1, 1, 1, tt.dim} {
			file = protowire.AppendTag(file, netInputDim, protowire.VarintType)
			file = protowire.AppendVarint(file, uint64(d))
		}
		file = append(file, (intFields[0]).binaryLayer(1)...)
		_, err := ReadModel(bytes.NewReader(file), int64(len(file)))
		if (err == nil) != tt.ok || err != nil && !strings.Contains(err.Error(), "input_dim") {
			t.Errorf("binary input_dim %d: error %v", tt.dim, err)
		}
		src := fmt.Sprintf("input: \"x\" input_shape { dim: 1 dim: %d } layer { name: \"L\" }", tt.dim)
		_, err = ParsePrototxt(strings.NewReader(src))
		if (err == nil) != tt.ok || err != nil && !strings.Contains(err.Error(), "dim") {
			t.Errorf("text dim %d: error %v", tt.dim, err)
		}
	}
}
