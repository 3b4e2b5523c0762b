package caffe

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func randBlob(rng *rand.Rand, shape ...int) *Blob {
	b := &Blob{Shape: shape, Data: make([]float32, (&Blob{Shape: shape}).Count())}
	for i := range b.Data {
		b.Data[i] = float32(rng.NormFloat64())
	}
	return b
}

func boolPtr(v bool) *bool { return &v }

// fixtureNet sets every field of the data model that the writers handle,
// with values a float32 holds exactly, so write -> read must give it back.
func fixtureNet(rng *rand.Rand) *Net {
	d64 := &Blob{Shape: []int{2, 3}, Data64: []float64{1.0 / 3, -2.5e-300, math.Pi, 0, -0, 1e300}}
	return &Net{
		Name:   "fixture \"net\"\n\x01é",
		Inputs: []Input{{Name: "data", Shape: []int{1, 3, 8, 8}}, {Name: "aux", Shape: []int{1, 2}}},
		Layers: []*Layer{
			{Name: "in", Type: "Input", Tops: []string{"in2"}, Phase: PhaseAny,
				Input: &InputParam{Shapes: [][]int{{1, 3, 8, 8}, {2}}}},
			{Name: "data", Type: "Data", Tops: []string{"d", "label"}, Phase: PhaseTrain,
				Transform: &TransformParam{Scale: 0.00390625, HasScale: true, MeanValue: []float64{104, 117, 123},
					MeanFile: "mean.binaryproto", CropSize: 7, Mirror: true, ForceGray: true}},
			{Name: "conv1", Type: "Convolution", Bottoms: []string{"data"}, Tops: []string{"conv1"}, Phase: PhaseAny,
				Conv: &ConvolutionParam{NumOutput: 4, BiasTerm: false, Pad: []int{1, 2}, KernelSize: []int{3},
					Stride: []int{2}, Dilation: []int{1}, PadH: 1, PadW: 0, HasPadHW: true, KernelH: 3, KernelW: 1,
					HasKernelHW: true, StrideH: 2, StrideW: 1, HasStrideHW: true, Group: 1, Axis: 1},
				Blobs: []*Blob{randBlob(rng, 4, 3, 3, 3)}},
			{Name: "bn1", Type: "BatchNorm", Bottoms: []string{"conv1"}, Tops: []string{"conv1"}, Phase: PhaseAny,
				BatchNorm: &BatchNormParam{UseGlobalStats: boolPtr(true), Eps: 0.5, MovingAvgFraction: 0.25},
				Blobs:     []*Blob{randBlob(rng, 4), randBlob(rng, 4), {Shape: []int{1}, Data: []float32{999.5}}}},
			{Name: "sc1", Type: "Scale", Bottoms: []string{"conv1"}, Tops: []string{"conv1"}, Phase: PhaseAny,
				Scale: &ScaleParam{Axis: 1, NumAxes: 1, BiasTerm: true}, Blobs: []*Blob{randBlob(rng, 4), randBlob(rng, 4)}},
			{Name: "relu1", Type: "ReLU", Bottoms: []string{"conv1"}, Tops: []string{"conv1"}, Phase: PhaseAny,
				ReLU: &ReLUParam{NegativeSlope: 0.125}},
			{Name: "pool1", Type: "Pooling", Bottoms: []string{"conv1"}, Tops: []string{"pool1"}, Phase: PhaseAny,
				Pooling: &PoolingParam{Pool: PoolAve, Pad: 1, PadH: 1, PadW: 0, HasPadHW: true, KernelSize: 3,
					KernelH: 3, KernelW: 2, HasKernelHW: true, Stride: 2, StrideH: 2, StrideW: 1, HasStrideHW: true,
					GlobalPooling: true, RoundMode: RoundFloor}},
			{Name: "elt", Type: "Eltwise", Bottoms: []string{"pool1", "pool1"}, Tops: []string{"elt"}, Phase: PhaseTest,
				Eltwise: &EltwiseParam{Operation: EltwiseMax, Coeff: []float64{1, -1}}},
			{Name: "cat", Type: "Concat", Bottoms: []string{"elt", "pool1"}, Tops: []string{"cat"}, Phase: PhaseAny,
				Concat: &ConcatParam{Axis: -1}},
			{Name: "flat", Type: "Flatten", Bottoms: []string{"cat"}, Tops: []string{"flat"}, Phase: PhaseAny,
				Flatten: &FlattenParam{Axis: 2, EndAxis: -2}},
			{Name: "drop", Type: "Dropout", Bottoms: []string{"flat"}, Tops: []string{"flat"}, Phase: PhaseAny,
				Dropout: &DropoutParam{Ratio: 0.75}},
			{Name: "fc", Type: "InnerProduct", Bottoms: []string{"flat"}, Tops: []string{"fc"}, Phase: PhaseAny,
				InnerProd: &InnerProductParam{NumOutput: 3, BiasTerm: true, Axis: 1, Transpose: true},
				Blobs:     []*Blob{randBlob(rng, 3, 16), d64}},
			{Name: "prob", Type: "Softmax", Bottoms: []string{"fc"}, Tops: []string{"prob"}, Phase: PhaseAny,
				Softmax: &SoftmaxParam{Axis: 1}},
			{Name: "scalar", Type: "Parameter", Phase: PhaseAny, Blobs: []*Blob{{Shape: []int{}, Data: []float32{7}}}},
		},
	}
}

func TestWriteReadModelRoundTrip(t *testing.T) {
	want := fixtureNet(rand.New(rand.NewPCG(1, 2)))
	var buf bytes.Buffer
	if err := WriteModel(&buf, want); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{int64(buf.Len()), -1} {
		got, err := ReadModel(bytes.NewReader(buf.Bytes()), size)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("size %d: round trip differs\n got %s\nwant %s", size, dump(got), dump(want))
		}
	}
}

func TestWriteParsePrototxtRoundTrip(t *testing.T) {
	want := fixtureNet(rand.New(rand.NewPCG(3, 4)))
	var buf bytes.Buffer
	if err := WritePrototxt(&buf, want); err != nil {
		t.Fatal(err)
	}
	got, err := ParsePrototxt(&buf)
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip differs\n got %s\nwant %s", dump(got), dump(want))
	}
}

func TestBlobProtoRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	tests := []struct {
		name   string
		blob   *Blob
		legacy bool
		shape  []int // expected shape after reading
	}{
		{"shape", randBlob(rng, 1, 3, 5, 7), false, []int{1, 3, 5, 7}},
		{"legacy 4d", randBlob(rng, 2, 3, 4, 5), true, []int{2, 3, 4, 5}},
		{"legacy 3d padded", randBlob(rng, 3, 4, 5), true, []int{1, 3, 4, 5}},
		{"double shape", &Blob{Shape: []int{3}, Data64: []float64{0.1, 0.2, 1e-310}}, false, []int{3}},
		{"double legacy", &Blob{Shape: []int{1, 1, 1, 2}, Data64: []float64{-1, 2}}, true, []int{1, 1, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			write := WriteBlobProto
			if tt.legacy {
				write = WriteBlobProtoLegacy
			}
			if err := write(&buf, tt.blob); err != nil {
				t.Fatal(err)
			}
			got, err := ReadBlobProto(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
			if err != nil {
				t.Fatal(err)
			}
			want := &Blob{Shape: tt.shape, Data: tt.blob.Data, Data64: tt.blob.Data64}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
	if err := WriteBlobProtoLegacy(&bytes.Buffer{}, randBlob(rng, 1, 1, 1, 1, 2)); err == nil {
		t.Error("a 5-axis blob was written in the 4-axis legacy form")
	}
	if err := WriteBlobProto(&bytes.Buffer{}, &Blob{Shape: []int{3}, Data: []float32{1}}); err == nil {
		t.Error("a blob whose values do not match its shape was written")
	}
}

// TestUnpackedAndMixedEncodings builds, by hand, the encodings Caffe may
// write but the writers do not: unpacked repeated floats and dims, packed
// repeated uint32 parameters, concat_dim, exclude rules, a split
// repeated field, and fields in unusual order.
func TestUnpackedAndMixedEncodings(t *testing.T) {
	var blob []byte
	for _, v := range []float32{1.5, -2} { // data, unpacked
		blob = protowire.AppendTag(blob, blobData, protowire.Fixed32Type)
		blob = protowire.AppendFixed32(blob, math.Float32bits(v))
	}
	var shape []byte
	for _, d := range []int{1, 3} { // dims, unpacked
		shape = protowire.AppendTag(shape, shapeDim, protowire.VarintType)
		shape = protowire.AppendVarint(shape, uint64(d))
	}
	blob = protowire.AppendTag(blob, blobShape, protowire.BytesType)
	blob = protowire.AppendBytes(blob, shape)
	blob = protowire.AppendTag(blob, blobData, protowire.BytesType) // a third value, packed
	blob = protowire.AppendBytes(blob, protowire.AppendFixed32(nil, math.Float32bits(4)))

	var conv []byte
	conv = protowire.AppendTag(conv, convPad, protowire.BytesType) // packed uint32
	conv = protowire.AppendBytes(conv, []byte{1, 2})
	conv = protowire.AppendTag(conv, convPad, protowire.VarintType) // then one more, unpacked
	conv = protowire.AppendVarint(conv, 3)
	conv = protowire.AppendTag(conv, 99, protowire.Fixed64Type) // an unknown field
	conv = protowire.AppendFixed64(conv, 0)

	var rule []byte
	rule = protowire.AppendTag(rule, netStateRulePhse, protowire.VarintType)
	rule = protowire.AppendVarint(rule, 1) // exclude TEST = TRAIN only

	var concat []byte
	concat = protowire.AppendTag(concat, concatDim, protowire.VarintType)
	concat = protowire.AppendVarint(concat, 2)

	var layer []byte
	layer = protowire.AppendTag(layer, layerBlobs, protowire.BytesType) // blobs before the name
	layer = protowire.AppendBytes(layer, blob)
	layer = protowire.AppendTag(layer, layerName, protowire.BytesType)
	layer = protowire.AppendString(layer, "c")
	layer = protowire.AppendTag(layer, layerExclude, protowire.BytesType)
	layer = protowire.AppendBytes(layer, rule)
	layer = protowire.AppendTag(layer, layerConv, protowire.BytesType)
	layer = protowire.AppendBytes(layer, conv)
	layer = protowire.AppendTag(layer, layerConcat, protowire.BytesType)
	layer = protowire.AppendBytes(layer, concat)

	var file []byte
	file = protowire.AppendTag(file, netInputDim, protowire.BytesType) // packed input_dim
	file = protowire.AppendBytes(file, []byte{1, 3})
	file = protowire.AppendTag(file, netLayer, protowire.BytesType)
	file = protowire.AppendBytes(file, layer)
	for _, d := range []uint64{5, 7} { // then unpacked input_dim
		file = protowire.AppendTag(file, netInputDim, protowire.VarintType)
		file = protowire.AppendVarint(file, d)
	}
	file = protowire.AppendTag(file, netInput, protowire.BytesType)
	file = protowire.AppendString(file, "x")
	file = protowire.AppendTag(file, 7777, protowire.Fixed32Type) // unknown top-level field
	file = protowire.AppendFixed32(file, 0)

	n, err := ReadModel(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	l := n.Layers[0]
	if !reflect.DeepEqual(n.Inputs, []Input{{Name: "x", Shape: []int{1, 3, 5, 7}}}) {
		t.Errorf("inputs %+v", n.Inputs)
	}
	if l.Name != "c" || l.Phase != PhaseTrain || !equalInts(l.Conv.Pad, []int{1, 2, 3}) || l.Concat.Axis != 2 {
		t.Errorf("layer %+v conv %+v concat %+v", l, l.Conv, l.Concat)
	}
	if len(l.Blobs) != 1 || !equalInts(l.Blobs[0].Shape, []int{1, 3}) ||
		!reflect.DeepEqual(l.Blobs[0].Data, []float32{1.5, -2, 4}) {
		t.Errorf("blob %+v", l.Blobs[0])
	}
}

func TestParamDefaults(t *testing.T) {
	// A present but empty parameter message means Caffe's defaults.
	src := `layer { name: "c" type: "Convolution" convolution_param { } batch_norm_param { }
	  scale_param { } pooling_param { } inner_product_param { } eltwise_param { } softmax_param { }
	  concat_param { } flatten_param { } dropout_param { } transform_param { } relu_param { } }`
	n, err := ParsePrototxt(bytes.NewReader([]byte(src)))
	if err != nil {
		t.Fatal(err)
	}
	l := n.Layers[0]
	checks := []struct {
		got, want any
	}{
		{*l.Conv, ConvolutionParam{BiasTerm: true, Group: 1, Axis: 1}},
		{*l.BatchNorm, BatchNormParam{Eps: float64(float32(1e-5)), MovingAvgFraction: float64(float32(0.999))}},
		{*l.Scale, ScaleParam{Axis: 1, NumAxes: 1}},
		{*l.Pooling, PoolingParam{Stride: 1}},
		{*l.InnerProd, InnerProductParam{BiasTerm: true, Axis: 1}},
		{*l.Eltwise, EltwiseParam{Operation: EltwiseSum}},
		{*l.Softmax, SoftmaxParam{Axis: 1}},
		{*l.Concat, ConcatParam{Axis: 1}},
		{*l.Flatten, FlattenParam{Axis: 1, EndAxis: -1}},
		{*l.Dropout, DropoutParam{Ratio: 0.5}},
		{*l.Transform, TransformParam{Scale: 1}},
		{*l.ReLU, ReLUParam{}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("got %+v, want %+v", c.got, c.want)
		}
	}
	// The same through the binary reader.
	var buf bytes.Buffer
	if err := WriteModel(&buf, n); err != nil {
		t.Fatal(err)
	}
	m, err := ReadModel(&buf, -1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, n) {
		t.Errorf("binary %s\ntext %s", dump(m), dump(n))
	}
}
