package onnxtest

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// tensorBytes builds a TensorProto by hand, the way the tests below need it.
type tensorBytes struct {
	dims       []int64
	packedDims bool
	dtype      int64 // -1: field absent
	floats     []float32
	packed     bool
	raw        []float32
	name       string
}

func (tb tensorBytes) encode() []byte {
	var b []byte
	if tb.packedDims {
		var p []byte
		for _, d := range tb.dims {
			p = protowire.AppendVarint(p, uint64(d))
		}
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, p)
	} else {
		for _, d := range tb.dims {
			b = protowire.AppendTag(b, 1, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(d))
		}
	}
	if tb.dtype >= 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(tb.dtype))
	}
	if tb.packed {
		var p []byte
		for _, f := range tb.floats {
			p = binary.LittleEndian.AppendUint32(p, math.Float32bits(f))
		}
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, p)
	} else {
		for _, f := range tb.floats {
			b = protowire.AppendTag(b, 4, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, math.Float32bits(f))
		}
	}
	if tb.name != "" {
		b = protowire.AppendTag(b, 8, protowire.BytesType)
		b = protowire.AppendString(b, tb.name)
	}
	if tb.raw != nil {
		var p []byte
		for _, f := range tb.raw {
			p = binary.LittleEndian.AppendUint32(p, math.Float32bits(f))
		}
		b = protowire.AppendTag(b, 9, protowire.BytesType)
		b = protowire.AppendBytes(b, p)
	}
	return b
}

func TestParseTensor(t *testing.T) {
	vals := []float32{1, -2.5, float32(math.Inf(1)), 3e-40, 0, 7}
	tests := []struct {
		name    string
		in      []byte
		want    *Tensor
		wantErr any // pointer to the error type expected, or nil
	}{
		{"packed float_data", tensorBytes{dims: []int64{2, 3}, dtype: 1, floats: vals, packed: true, name: "x"}.encode(),
			&Tensor{Name: "x", Dims: []int{2, 3}, Data: vals}, nil},
		{"unpacked float_data, packed dims", tensorBytes{dims: []int64{3, 2}, packedDims: true, dtype: 1, floats: vals}.encode(),
			&Tensor{Dims: []int{3, 2}, Data: vals}, nil},
		{"raw_data", tensorBytes{dims: []int64{6}, dtype: 1, raw: vals, name: "y"}.encode(),
			&Tensor{Name: "y", Dims: []int{6}, Data: vals}, nil},
		{"scalar", tensorBytes{dtype: 1, raw: []float32{4}}.encode(),
			&Tensor{Data: []float32{4}}, nil},
		{"int64 refused", tensorBytes{dims: []int64{1}, dtype: 7}.encode(), nil, new(*UnsupportedError)},
		{"float16 refused", tensorBytes{dims: []int64{1}, dtype: 10, raw: []float32{0}}.encode(), nil, new(*UnsupportedError)},
		{"no data_type refused", tensorBytes{dims: []int64{1}, dtype: -1, floats: []float32{1}}.encode(), nil, new(*UnsupportedError)},
		{"dims overflow", tensorBytes{dims: []int64{1 << 20, 1 << 20, 1 << 20, 1 << 20}, dtype: 1}.encode(), nil, new(*FormatError)},
		{"count mismatch", tensorBytes{dims: []int64{2, 2}, dtype: 1, floats: vals, packed: true}.encode(), nil, new(*FormatError)},
		{"both data fields", tensorBytes{dims: []int64{1}, dtype: 1, floats: []float32{1}, raw: []float32{1}}.encode(), nil, new(*FormatError)},
		{"truncated", tensorBytes{dims: []int64{6}, dtype: 1, raw: vals}.encode()[:20], nil, new(*FormatError)},
		{"raw not multiple of 4", append(tensorBytes{dims: []int64{1}, dtype: 1}.encode(), 0x4a, 3, 1, 2, 3), nil, new(*FormatError)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTensor(tc.in, "test.pb")
			if tc.wantErr != nil {
				if err == nil || !errors.As(err, tc.wantErr) {
					t.Fatalf("error %v, want %T", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tc.want.Name || !reflect.DeepEqual(got.Dims, tc.want.Dims) || len(got.Data) != len(tc.want.Data) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got.Data {
				if math.Float32bits(got.Data[i]) != math.Float32bits(tc.want.Data[i]) {
					t.Fatalf("Data[%d] = %v, want %v", i, got.Data[i], tc.want.Data[i])
				}
			}
		})
	}
}

func TestParseModel(t *testing.T) {
	msg := func(fields ...[]byte) []byte {
		var b []byte
		for _, f := range fields {
			b = append(b, f...)
		}
		return b
	}
	str := func(num protowire.Number, s string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), s)
	}
	sub := func(num protowire.Number, m []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), m)
	}
	varint := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	negTwo := int64(-2)
	packedInts := protowire.AppendVarint(protowire.AppendVarint(nil, 3), 5)
	attrs := [][]byte{
		sub(5, msg(str(1, "axis"), varint(20, 2), varint(3, uint64(negTwo)))),
		sub(5, msg(str(1, "alpha"), varint(20, 1), protowire.AppendFixed32(protowire.AppendTag(nil, 2, protowire.Fixed32Type), math.Float32bits(0.25)))),
		sub(5, msg(str(1, "auto_pad"), varint(20, 3), str(4, "SAME_UPPER"))),
		sub(5, msg(str(1, "kernel_shape"), varint(20, 7), sub(8, packedInts))),
		sub(5, msg(str(1, "pads"), varint(20, 7), varint(8, 1), varint(8, 2))),
	}
	nodeMsg := msg(str(1, "x"), str(1, "w"), str(2, "y"), str(4, "Conv"))
	for _, a := range attrs {
		nodeMsg = append(nodeMsg, a...)
	}
	model := msg(
		varint(1, 7), // ir_version
		sub(8, msg(str(1, "com.example"), varint(2, 99))),
		sub(8, msg(varint(2, 13))),
		sub(7, msg(sub(1, nodeMsg), str(2, "graph"))),
	)
	m, err := ParseModel(model, "model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if m.Opset != 13 || len(m.Nodes) != 1 {
		t.Fatalf("opset %d, %d nodes; want 13, 1", m.Opset, len(m.Nodes))
	}
	n := m.Nodes[0]
	if n.OpType != "Conv" || !reflect.DeepEqual(n.Inputs, []string{"x", "w"}) || !reflect.DeepEqual(n.Outputs, []string{"y"}) {
		t.Fatalf("node %+v", n)
	}
	if n.Int("axis", 0) != -2 || n.Float("alpha", 0) != 0.25 || n.String("auto_pad", "") != "SAME_UPPER" ||
		!reflect.DeepEqual(n.Ints("kernel_shape", nil), []int64{3, 5}) || !reflect.DeepEqual(n.Ints("pads", nil), []int64{1, 2}) {
		t.Fatalf("attributes %+v", n.Attrs)
	}
	if n.Int("missing", 42) != 42 || n.Float("missing", 1.5) != 1.5 {
		t.Fatal("defaults not returned for absent attributes")
	}
	if _, err := ParseModel(msg(sub(7, msg())), "empty.onnx"); err == nil {
		t.Fatal("model without opset_import accepted")
	}
}

func TestLoadCase(t *testing.T) {
	root := t.TempDir()
	if _, err := LoadCase(root, "test_nothing"); !errors.Is(err, ErrNoTestdata) {
		t.Fatalf("missing directory: error %v, want ErrNoTestdata", err)
	}
	dir := filepath.Join(root, "test_x", "test_data_set_0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	model := protowire.AppendBytes(protowire.AppendTag(nil, 8, protowire.BytesType),
		protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 11))
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(root, "test_x", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("model.onnx", model)
	// 12 inputs: numeric order (input_10 after input_9) matters.
	for i := range 12 {
		write(filepath.Join("test_data_set_0", "input_"+strconv.Itoa(i)+".pb"), tensorBytes{dims: []int64{1}, dtype: 1, raw: []float32{float32(i)}}.encode())
	}
	write("test_data_set_0/output_0.pb", tensorBytes{dims: []int64{1}, dtype: 1, raw: []float32{-1}}.encode())
	c, err := LoadCase(root, "test_x")
	if err != nil {
		t.Fatal(err)
	}
	if c.Model.Opset != 11 || len(c.Inputs) != 12 || len(c.Outputs) != 1 {
		t.Fatalf("case %+v", c)
	}
	for i, x := range c.Inputs {
		if x.Data[0] != float32(i) {
			t.Fatalf("input %d holds %v: files read out of order", i, x.Data[0])
		}
	}
}

// TestRealFiles reads a few files of the installed package when present
// (core's TestONNXNodes requires them; this package's tests do not).
func TestRealFiles(t *testing.T) {
	c, err := LoadCase(DefaultRoot, "test_conv_with_strides_padding")
	if errors.Is(err, ErrNoTestdata) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.Node()
	if err != nil {
		t.Fatal(err)
	}
	if n.OpType != "Conv" || !reflect.DeepEqual(n.Ints("strides", nil), []int64{2, 2}) ||
		!reflect.DeepEqual(c.Inputs[0].Dims, []int{1, 1, 7, 5}) || !reflect.DeepEqual(c.Outputs[0].Dims, []int{1, 1, 4, 3}) {
		t.Fatalf("unexpected case contents: %+v, node %+v", c, n)
	}
	// The input is 0..34 in row-major order.
	for i, v := range c.Inputs[0].Data {
		if v != float32(i) {
			t.Fatalf("input[%d] = %v, want %d", i, v, i)
		}
	}
	if _, err := LoadCase(DefaultRoot, "test_maxpool_2d_uint8"); !errors.As(err, new(*UnsupportedError)) {
		t.Fatalf("uint8 tensors: error %v, want *UnsupportedError", err)
	}
}

// FuzzParse feeds arbitrary bytes to both parsers: no panic, and an accepted
// tensor is consistent with its dims.
func FuzzParse(f *testing.F) {
	f.Add(tensorBytes{dims: []int64{2, 3}, dtype: 1, floats: []float32{1, 2, 3, 4, 5, 6}, packed: true, name: "x"}.encode())
	f.Add(tensorBytes{dims: []int64{2}, dtype: 1, raw: []float32{1, 2}}.encode())
	f.Add(tensorBytes{dims: []int64{1}, packedDims: true, dtype: 1, floats: []float32{1}}.encode())
	if b, err := os.ReadFile(filepath.Join(DefaultRoot, "test_relu", "model.onnx")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		if tn, err := ParseTensor(b, "fuzz.pb"); err == nil {
			if len(tn.Data) != tn.Len() {
				t.Fatalf("accepted tensor with %d values for dims %v", len(tn.Data), tn.Dims)
			}
		}
		if m, err := ParseModel(b, "fuzz.onnx"); err == nil && m.Opset == 0 {
			t.Fatal("accepted model without an opset")
		}
	})
}
