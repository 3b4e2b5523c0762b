// Package onnxtest reads the ONNX backend node tests (the layout Debian's
// libonnx-testdata installs under /usr/share/libonnx-testdata/data/node/):
// each test_* directory holds model.onnx, a one-node ModelProto, and
// test_data_set_0/input_N.pb and output_N.pb, each a serialized TensorProto.
//
// Only what the kernel tests need is decoded, straight from the wire format
// with protowire (no generated code). Field numbers are those of onnx/onnx.proto:
//
//	ModelProto:         opset_import = 8, graph = 7
//	OperatorSetIdProto: domain = 1, version = 2
//	GraphProto:         node = 1
//	NodeProto:          input = 1, output = 2, op_type = 4, attribute = 5
//	AttributeProto:     name = 1, f = 2, i = 3, s = 4, floats = 7, ints = 8, type = 20
//	TensorProto:        dims = 1, data_type = 2, float_data = 4, name = 8, raw_data = 9
//
// Tensors are read as float32 only (data_type FLOAT); any other data type is
// refused with an *UnsupportedError, as are external data and segments.
package onnxtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// DefaultRoot is where Debian's libonnx-testdata installs the node tests.
const DefaultRoot = "/usr/share/libonnx-testdata/data/node"

// DataTypeFloat is TensorProto.DataType FLOAT, the only one read here.
const DataTypeFloat = 1

// maxValues bounds a tensor's element count (node tests hold a few thousand).
const maxValues = 1 << 28

// Tensor is a float32 TensorProto.
type Tensor struct {
	Name string
	Dims []int
	Data []float32
}

// Len is the product of Dims (1 for a scalar).
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Attribute is one AttributeProto; only the field its Type names is set.
type Attribute struct {
	Name   string
	Type   int // AttributeProto.AttributeType: 1 FLOAT, 2 INT, 3 STRING, 6 FLOATS, 7 INTS
	F      float32
	I      int64
	S      string
	Floats []float32
	Ints   []int64
}

// Node is one NodeProto.
type Node struct {
	OpType  string
	Inputs  []string
	Outputs []string
	Attrs   map[string]Attribute
}

// Int returns the INT attribute name, or def when the node does not carry it.
func (n *Node) Int(name string, def int64) int64 {
	if a, ok := n.Attrs[name]; ok {
		return a.I
	}
	return def
}

// Float returns the FLOAT attribute name, or def when absent.
func (n *Node) Float(name string, def float32) float32 {
	if a, ok := n.Attrs[name]; ok {
		return a.F
	}
	return def
}

// String returns the STRING attribute name, or def when absent.
func (n *Node) String(name, def string) string {
	if a, ok := n.Attrs[name]; ok {
		return a.S
	}
	return def
}

// Ints returns the INTS attribute name, or def when absent.
func (n *Node) Ints(name string, def []int64) []int64 {
	if a, ok := n.Attrs[name]; ok {
		return a.Ints
	}
	return def
}

// Model is the part of a ModelProto the tests use.
type Model struct {
	// Opset is the version of the default ("" or "ai.onnx") operator set:
	// some operators (Softmax) changed meaning between versions.
	Opset int64
	Nodes []Node
}

// Case is one node test directory with its first data set.
type Case struct {
	Name    string
	Dir     string
	Model   *Model
	Inputs  []*Tensor
	Outputs []*Tensor
}

// Node returns the model's only node; node tests have exactly one.
func (c *Case) Node() (*Node, error) {
	if len(c.Model.Nodes) != 1 {
		return nil, fmt.Errorf("onnxtest: %s: model has %d nodes, want 1", c.Name, len(c.Model.Nodes))
	}
	return &c.Model.Nodes[0], nil
}

// ErrNoTestdata is wrapped when the node test directory is missing.
var ErrNoTestdata = errors.New("ONNX node test data not found: install it with `apt-get install libonnx-testdata`")

// FormatError reports a malformed protobuf file.
type FormatError struct {
	File string
	Msg  string
}

func (e *FormatError) Error() string { return "onnxtest: " + e.File + ": malformed protobuf: " + e.Msg }

// UnsupportedError reports a valid tensor this reader does not handle
// (a data type other than FLOAT, external data, segments).
type UnsupportedError struct {
	File string
	What string
}

func (e *UnsupportedError) Error() string {
	return "onnxtest: " + e.File + ": unsupported: " + e.What + " (only float32 tensors stored inline are read)"
}

// LoadCase reads root/name: model.onnx and test_data_set_0's input_N.pb and
// output_N.pb in index order.
func LoadCase(root, name string) (*Case, error) {
	dir := filepath.Join(root, name)
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("onnxtest: %s: %w (%v)", dir, ErrNoTestdata, err)
	}
	m, err := ReadModel(filepath.Join(dir, "model.onnx"))
	if err != nil {
		return nil, err
	}
	c := &Case{Name: name, Dir: dir, Model: m}
	set := filepath.Join(dir, "test_data_set_0")
	if c.Inputs, err = readNumbered(set, "input_"); err != nil {
		return nil, err
	}
	if c.Outputs, err = readNumbered(set, "output_"); err != nil {
		return nil, err
	}
	if len(c.Outputs) == 0 {
		return nil, fmt.Errorf("onnxtest: %s: no output_*.pb: %w", set, ErrNoTestdata)
	}
	return c, nil
}

// readNumbered reads dir/prefixN.pb for N = 0, 1, ... sorted numerically.
func readNumbered(dir, prefix string) ([]*Tensor, error) {
	paths, err := filepath.Glob(filepath.Join(dir, prefix+"*.pb"))
	if err != nil {
		return nil, err
	}
	index := func(p string) int {
		s := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), prefix), ".pb")
		n, err := strconv.Atoi(s)
		if err != nil {
			return -1
		}
		return n
	}
	sort.Slice(paths, func(i, j int) bool { return index(paths[i]) < index(paths[j]) })
	var ts []*Tensor
	for i, p := range paths {
		if index(p) != i {
			return nil, fmt.Errorf("onnxtest: %s: expected %s%d.pb, found %s", dir, prefix, i, filepath.Base(p))
		}
		t, err := ReadTensor(p)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// ReadTensor reads a serialized TensorProto file.
func ReadTensor(path string) (*Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseTensor(b, path)
}

// ReadModel reads a serialized ModelProto file.
func ReadModel(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseModel(b, path)
}

// field is one decoded protobuf field: its number, wire type and either the
// varint/fixed value or the length-delimited bytes.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

// fields splits a message into its fields. Groups are refused (proto3 ONNX has none).
func fields(b []byte, file string) ([]field, error) {
	var fs []field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, &FormatError{file, protowire.ParseError(n).Error()}
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.v = uint64(v)
		case protowire.Fixed64Type:
			f.v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			return nil, &FormatError{file, fmt.Sprintf("field %d has wire type %d", num, typ)}
		}
		if n < 0 {
			return nil, &FormatError{file, fmt.Sprintf("field %d: %v", num, protowire.ParseError(n))}
		}
		b = b[n:]
		fs = append(fs, f)
	}
	return fs, nil
}

// ints appends the values of a repeated int64 field, packed or not.
func ints(dst []int64, f field, file string) ([]int64, error) {
	switch f.typ {
	case protowire.VarintType:
		return append(dst, int64(f.v)), nil
	case protowire.BytesType:
		b := f.b
		for len(b) > 0 {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, &FormatError{file, fmt.Sprintf("packed field %d: %v", f.num, protowire.ParseError(n))}
			}
			dst = append(dst, int64(v))
			b = b[n:]
		}
		return dst, nil
	}
	return nil, &FormatError{file, fmt.Sprintf("int field %d has wire type %d", f.num, f.typ)}
}

// floats appends the values of a repeated float field, packed or not.
func floats(dst []float32, f field, file string) ([]float32, error) {
	switch f.typ {
	case protowire.Fixed32Type:
		return append(dst, math.Float32frombits(uint32(f.v))), nil
	case protowire.BytesType:
		if len(f.b)%4 != 0 {
			return nil, &FormatError{file, fmt.Sprintf("packed float field %d has %d bytes", f.num, len(f.b))}
		}
		for i := 0; i < len(f.b); i += 4 {
			dst = append(dst, math.Float32frombits(binary.LittleEndian.Uint32(f.b[i:])))
		}
		return dst, nil
	}
	return nil, &FormatError{file, fmt.Sprintf("float field %d has wire type %d", f.num, f.typ)}
}

// ParseTensor decodes a TensorProto; file names it in errors.
func ParseTensor(b []byte, file string) (*Tensor, error) {
	fs, err := fields(b, file)
	if err != nil {
		return nil, err
	}
	t := &Tensor{}
	var dims []int64
	dtype := int64(0)
	var raw []byte
	hasRaw := false
	for _, f := range fs {
		switch f.num {
		case 1: // dims
			if dims, err = ints(dims, f, file); err != nil {
				return nil, err
			}
		case 2: // data_type
			dtype = int64(f.v)
		case 3:
			return nil, &UnsupportedError{file, "segment"}
		case 4: // float_data
			if t.Data, err = floats(t.Data, f, file); err != nil {
				return nil, err
			}
		case 8:
			t.Name = string(f.b)
		case 9:
			raw, hasRaw = f.b, true
		case 13:
			return nil, &UnsupportedError{file, "external_data"}
		}
	}
	if dtype != DataTypeFloat {
		return nil, &UnsupportedError{file, fmt.Sprintf("data_type %d (%s)", dtype, dataTypeName(dtype))}
	}
	count := int64(1)
	for _, d := range dims {
		if d < 0 || d > maxValues || count*d > maxValues {
			return nil, &FormatError{file, fmt.Sprintf("dims %v: more than %d values", dims, int64(maxValues))}
		}
		count *= d
		t.Dims = append(t.Dims, int(d))
	}
	if hasRaw {
		if len(t.Data) > 0 {
			return nil, &FormatError{file, "both float_data and raw_data are set"}
		}
		if len(raw)%4 != 0 {
			return nil, &FormatError{file, fmt.Sprintf("raw_data has %d bytes, not a multiple of 4", len(raw))}
		}
		t.Data = make([]float32, len(raw)/4)
		for i := range t.Data {
			t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	}
	if len(t.Data) != t.Len() {
		return nil, &FormatError{file, fmt.Sprintf("tensor %q has %d values for dims %v", t.Name, len(t.Data), t.Dims)}
	}
	return t, nil
}

func dataTypeName(t int64) string {
	names := map[int64]string{0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16",
		6: "INT32", 7: "INT64", 8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32",
		13: "UINT64", 14: "COMPLEX64", 15: "COMPLEX128", 16: "BFLOAT16"}
	if s, ok := names[t]; ok {
		return s
	}
	return "unknown"
}

// ParseModel decodes the graph's nodes and the default opset of a ModelProto.
func ParseModel(b []byte, file string) (*Model, error) {
	fs, err := fields(b, file)
	if err != nil {
		return nil, err
	}
	m := &Model{}
	for _, f := range fs {
		switch {
		case f.num == 8 && f.typ == protowire.BytesType: // opset_import
			os, err := fields(f.b, file)
			if err != nil {
				return nil, err
			}
			domain, version := "", int64(0)
			for _, o := range os {
				switch o.num {
				case 1:
					domain = string(o.b)
				case 2:
					version = int64(o.v)
				}
			}
			if domain == "" || domain == "ai.onnx" {
				m.Opset = version
			}
		case f.num == 7 && f.typ == protowire.BytesType: // graph
			gs, err := fields(f.b, file)
			if err != nil {
				return nil, err
			}
			for _, g := range gs {
				if g.num != 1 || g.typ != protowire.BytesType {
					continue
				}
				n, err := parseNode(g.b, file)
				if err != nil {
					return nil, err
				}
				m.Nodes = append(m.Nodes, *n)
			}
		}
	}
	if m.Opset == 0 {
		return nil, &FormatError{file, "no opset_import for the default domain"}
	}
	return m, nil
}

func parseNode(b []byte, file string) (*Node, error) {
	fs, err := fields(b, file)
	if err != nil {
		return nil, err
	}
	n := &Node{Attrs: map[string]Attribute{}}
	for _, f := range fs {
		switch f.num {
		case 1:
			n.Inputs = append(n.Inputs, string(f.b))
		case 2:
			n.Outputs = append(n.Outputs, string(f.b))
		case 4:
			n.OpType = string(f.b)
		case 5:
			a, err := parseAttribute(f.b, file)
			if err != nil {
				return nil, err
			}
			n.Attrs[a.Name] = *a
		}
	}
	return n, nil
}

func parseAttribute(b []byte, file string) (*Attribute, error) {
	fs, err := fields(b, file)
	if err != nil {
		return nil, err
	}
	a := &Attribute{}
	for _, f := range fs {
		switch f.num {
		case 1:
			a.Name = string(f.b)
		case 20:
			a.Type = int(f.v)
		case 2:
			a.F = math.Float32frombits(uint32(f.v))
		case 3:
			a.I = int64(f.v)
		case 4:
			a.S = string(f.b)
		case 7:
			if a.Floats, err = floats(a.Floats, f, file); err != nil {
				return nil, err
			}
		case 8:
			if a.Ints, err = ints(a.Ints, f, file); err != nil {
				return nil, err
			}
		}
	}
	return a, nil
}
