package caffe

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// maxDim bounds one blob or input dimension: Caffe's Blob holds each
// dimension (and the count) in a C++ int, so a larger one cannot be loaded.
const maxDim = math.MaxInt32

// Integer fields and their ranges.
//
// caffe.proto declares int32, uint32, int64 and enum fields; on the wire all
// are varints of up to 64 bits. Caffe's C++ protobuf keeps the low 32 bits of
// an int32 or uint32 varint and silently drops an unknown enum value (the field
// keeps its earlier value). residual refuses instead, with the field's name and
// the value: no protobuf writer produces a 32-bit field whose varint does not
// fit (a negative int32 is written as its 64-bit sign extension, which does),
// and a truncated kernel size or a pooling method quietly replaced by MAX
// would be a different net than the file says. So:
//
//   - int32 (axis, num_axes, end_axis...): the varint, read as a signed
//     64-bit value, must lie in [-2^31, 2^31-1];
//   - uint32 (num_output, kernel_size, pad, stride, group...): in
//     [0, 2^32-1]; a negative number written as a 10-byte varint is refused;
//     concat_dim and crop_size, which Caffe casts to int, at most 2^31-1
//     (Caffe refuses a larger concat_dim too);
//   - enum (pool, round_mode, operation, phase): an int32 that names one of
//     the values caffe.proto declares, in binary as in text;
//   - int64 dimensions (BlobShape.dim, input_dim): in [0, maxDim].
//
// The text parser applies the same ranges to the numbers it reads, so a net
// reads the same from either format, and whatever the readers accept the
// writers write back unchanged.

// fields is a cursor over the fields of one message, binary ([msg]) or
// text ([textMsg]). The layer and blob decoders are written once against it,
// by caffe.proto field number; the text side maps field names to numbers.
type fields interface {
	next() (bool, error)     // advance to the next field; false at the end
	field() protowire.Number // the current field's number (0 if unknown)
	skip() error             // ignore the current field
	errorf(format string, args ...any) error
	str(what string) (string, error)
	boolean(what string) (bool, error)
	int32v(what string) (int, error)
	uint32v(what string) (int, error)
	enum(what string, values map[string]int) (int, error)
	float(what string) (float64, error) // a float field, widened
	sub(what string) (fields, error)    // the embedded message
	uint32s(dst []int, what string) ([]int, error)
	dims(dst []int, what string) ([]int, error)
	floats(dst []float64, what string) ([]float64, error)
	float32s(dst []float32, what string) ([]float32, error)
	float64s(dst []float64, what string) ([]float64, error)
}

func (m *msg) field() protowire.Number { return m.num }

// msg decodes one protobuf message held in memory. Errors carry the
// absolute file offset of the field being decoded.
type msg struct {
	b    []byte
	pos  int
	base int64  // file offset of b[0]
	kind string // "caffemodel" or "binaryproto", for errors

	// the field last returned by next
	num   protowire.Number
	typ   protowire.Type
	start int
}

func (m *msg) errorf(format string, args ...any) error {
	return &FormatError{Kind: m.kind, Offset: m.base + int64(m.start), Msg: fmt.Sprintf(format, args...)}
}

// next reads the next tag; it returns false at the end of the message.
func (m *msg) next() (bool, error) {
	if m.pos >= len(m.b) {
		return false, nil
	}
	m.start = m.pos
	num, typ, n := protowire.ConsumeTag(m.b[m.pos:])
	if n < 0 {
		return false, m.errorf("bad field tag: %v", protowire.ParseError(n))
	}
	m.pos += n
	m.num, m.typ = num, typ
	return true, nil
}

func (m *msg) wrongType(what string) error {
	return m.errorf("%s (field %d) has wire type %d, which caffe.proto does not allow", what, m.num, m.typ)
}

// skip consumes the value of the current field.
func (m *msg) skip() error {
	n := protowire.ConsumeFieldValue(m.num, m.typ, m.b[m.pos:])
	if n < 0 {
		return m.errorf("field %d: %v", m.num, protowire.ParseError(n))
	}
	m.pos += n
	return nil
}

func (m *msg) varint(what string) (uint64, error) {
	if m.typ != protowire.VarintType {
		return 0, m.wrongType(what)
	}
	v, n := protowire.ConsumeVarint(m.b[m.pos:])
	if n < 0 {
		return 0, m.errorf("%s: %v", what, protowire.ParseError(n))
	}
	m.pos += n
	return v, nil
}

func (m *msg) bytes(what string) ([]byte, int64, error) {
	if m.typ != protowire.BytesType {
		return nil, 0, m.wrongType(what)
	}
	v, n := protowire.ConsumeBytes(m.b[m.pos:])
	if n < 0 {
		return nil, 0, m.errorf("%s: %v (truncated?)", what, protowire.ParseError(n))
	}
	off := m.base + int64(m.pos+n-len(v))
	m.pos += n
	return v, off, nil
}

// sub returns a decoder for the embedded message in the current field.
func (m *msg) sub(what string) (fields, error) {
	b, off, err := m.bytes(what)
	if err != nil {
		return nil, err
	}
	return &msg{b: b, base: off, kind: m.kind}, nil
}

func (m *msg) str(what string) (string, error) {
	b, _, err := m.bytes(what)
	return string(b), err
}

func (m *msg) boolean(what string) (bool, error) {
	v, err := m.varint(what)
	return v != 0, err
}

// int32v decodes an int32 field (negative values are sign-extended to 64
// bits on the wire); a varint outside the int32 range is refused.
func (m *msg) int32v(what string) (int, error) {
	v, err := m.varint(what)
	if err != nil {
		return 0, err
	}
	return m.checkInt32(int64(v), what)
}

func (m *msg) checkInt32(v int64, what string) (int, error) {
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, m.errorf("%s %d is out of range for an int32 field", what, v)
	}
	return int(v), nil
}

// uint32v decodes a uint32 field; a varint beyond 32 bits (a negative
// number, for one) is refused.
func (m *msg) uint32v(what string) (int, error) {
	v, err := m.varint(what)
	if err != nil {
		return 0, err
	}
	return m.checkUint32(v, what)
}

func (m *msg) checkUint32(v uint64, what string) (int, error) {
	if v > math.MaxUint32 {
		if int64(v) < 0 {
			return 0, m.errorf("%s %d is negative, and the field is a uint32", what, int64(v))
		}
		return 0, m.errorf("%s %d is out of range for a uint32 field", what, v)
	}
	return int(v), nil
}

// enum decodes an enum field and refuses a value caffe.proto does not declare.
func (m *msg) enum(what string, values map[string]int) (int, error) {
	v, err := m.int32v(what)
	if err != nil {
		return 0, err
	}
	if !hasEnumValue(values, v) {
		return 0, m.errorf("%s %d is not a value caffe.proto declares (%s)", what, v, enumPairs(values))
	}
	return v, nil
}

// enumPairs lists an enum's names and values, "AVE = 1, MAX = 0, ...".
func enumPairs(values map[string]int) string {
	names := slices.Sorted(maps.Keys(values))
	for i, k := range names {
		names[i] = fmt.Sprintf("%s = %d", k, values[k])
	}
	return strings.Join(names, ", ")
}

func hasEnumValue(values map[string]int, v int) bool {
	for _, x := range values {
		if x == v {
			return true
		}
	}
	return false
}

func (m *msg) float(what string) (float64, error) {
	if m.typ != protowire.Fixed32Type {
		return 0, m.wrongType(what)
	}
	v, n := protowire.ConsumeFixed32(m.b[m.pos:])
	if n < 0 {
		return 0, m.errorf("%s: %v", what, protowire.ParseError(n))
	}
	m.pos += n
	return float64(math.Float32frombits(v)), nil
}

// uint32s appends a repeated uint32 field, packed or not.
func (m *msg) uint32s(dst []int, what string) ([]int, error) {
	if m.typ != protowire.BytesType {
		v, err := m.uint32v(what)
		return append(dst, v), err
	}
	b, _, err := m.bytes(what)
	if err != nil {
		return dst, err
	}
	for len(b) > 0 {
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return dst, m.errorf("packed %s: %v", what, protowire.ParseError(n))
		}
		u, err := m.checkUint32(v, what)
		if err != nil {
			return dst, err
		}
		dst = append(dst, u)
		b = b[n:]
	}
	return dst, nil
}

// dims appends a repeated int64 dimension field, packed or not, checking
// that every value is a sane dimension.
func (m *msg) dims(dst []int, what string) ([]int, error) {
	if m.typ != protowire.BytesType {
		v, err := m.varint(what)
		if err != nil {
			return dst, err
		}
		if d := int64(v); d < 0 || d > maxDim {
			return dst, m.errorf("%s %d is out of range", what, d)
		}
		return append(dst, int(v)), nil
	}
	b, _, err := m.bytes(what)
	if err != nil {
		return dst, err
	}
	return m.packedDims(dst, b, what)
}

// packedDims decodes packed int64 dimensions from b.
func (m *msg) packedDims(dst []int, b []byte, what string) ([]int, error) {
	for len(b) > 0 {
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return dst, m.errorf("packed %s: %v", what, protowire.ParseError(n))
		}
		if d := int64(v); d < 0 || d > maxDim {
			return dst, m.errorf("%s %d is out of range", what, d)
		}
		dst = append(dst, int(v))
		b = b[n:]
	}
	return dst, nil
}

// floats appends a repeated float field (as float64), packed or not. It is
// for small parameter lists; blob data goes through float32s.
func (m *msg) floats(dst []float64, what string) ([]float64, error) {
	if m.typ != protowire.BytesType {
		v, err := m.float(what)
		return append(dst, v), err
	}
	b, _, err := m.bytes(what)
	if err != nil {
		return dst, err
	}
	if len(b)%4 != 0 {
		return dst, m.errorf("packed %s is %d bytes, not a multiple of 4", what, len(b))
	}
	for i := 0; i < len(b); i += 4 {
		dst = append(dst, float64(math.Float32frombits(binary.LittleEndian.Uint32(b[i:]))))
	}
	return dst, nil
}

// float32s appends a repeated float field, packed or not, as float32. The
// packed case allocates once for exactly the values present.
func (m *msg) float32s(dst []float32, what string) ([]float32, error) {
	switch m.typ {
	case protowire.Fixed32Type:
		v, n := protowire.ConsumeFixed32(m.b[m.pos:])
		if n < 0 {
			return dst, m.errorf("%s: %v", what, protowire.ParseError(n))
		}
		m.pos += n
		return append(dst, math.Float32frombits(v)), nil
	case protowire.BytesType:
	default:
		return dst, m.wrongType(what)
	}
	b, _, err := m.bytes(what)
	if err != nil {
		return dst, err
	}
	if len(b)%4 != 0 {
		return dst, m.errorf("packed %s is %d bytes, not a multiple of 4", what, len(b))
	}
	if len(b) == 0 {
		return dst, nil
	}
	return appendFloat32s(dst, b), nil
}

// grow extends s by n elements, allocating exactly once for the common
// case of a single packed field (no temporary, even under -race).
func grow[T any](s []T, n int) []T {
	i := len(s)
	if cap(s)-i < n {
		ns := make([]T, i, i+max(n, i)) // later packed pieces: amortized doubling
		copy(ns, s)
		s = ns
	}
	return s[:i+n]
}

// appendFloat32s decodes little-endian IEEE 754 singles; len(b)%4 == 0.
func appendFloat32s(dst []float32, b []byte) []float32 {
	i := len(dst)
	dst = grow(dst, len(b)/4)
	out := dst[i:]
	for j := range out {
		out[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
	}
	return dst
}

// float64s is float32s for repeated double.
func (m *msg) float64s(dst []float64, what string) ([]float64, error) {
	switch m.typ {
	case protowire.Fixed64Type:
		v, n := protowire.ConsumeFixed64(m.b[m.pos:])
		if n < 0 {
			return dst, m.errorf("%s: %v", what, protowire.ParseError(n))
		}
		m.pos += n
		return append(dst, math.Float64frombits(v)), nil
	case protowire.BytesType:
	default:
		return dst, m.wrongType(what)
	}
	b, _, err := m.bytes(what)
	if err != nil {
		return dst, err
	}
	if len(b)%8 != 0 {
		return dst, m.errorf("packed %s is %d bytes, not a multiple of 8", what, len(b))
	}
	if len(b) == 0 {
		return dst, nil
	}
	i := len(dst)
	dst = grow(dst, len(b)/8)
	out := dst[i:]
	for j := range out {
		out[j] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*j:]))
	}
	return dst, nil
}

// decodeShape decodes a BlobShape.
func decodeShape(m fields) ([]int, error) {
	dims := []int{}
	for {
		ok, err := m.next()
		if err != nil || !ok {
			return dims, err
		}
		if m.field() == shapeDim {
			if dims, err = m.dims(dims, "BlobShape.dim"); err != nil {
				return nil, err
			}
		} else if err := m.skip(); err != nil {
			return nil, err
		}
	}
}

// decodeBlob decodes a BlobProto. layer and index name the blob in errors.
func decodeBlob(m fields, layer string, index int) (*Blob, error) {
	b := &Blob{}
	var legacy [4]int
	hasLegacy, hasShape := false, false
	for {
		ok, err := m.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		switch m.field() {
		case blobNum, blobChannels, blobHeight, blobWidth: // int32 fields
			v, err := m.int32v("BlobProto num/channels/height/width")
			if err != nil {
				return nil, err
			}
			if v < 0 {
				return nil, m.errorf("legacy blob dimension %d is negative", v)
			}
			legacy[m.field()-blobNum] = v
			hasLegacy = true
		case blobShape:
			s, err := m.sub("BlobProto.shape")
			if err != nil {
				return nil, err
			}
			if b.Shape, err = decodeShape(s); err != nil {
				return nil, err
			}
			hasShape = true
		case blobData:
			if b.Data, err = m.float32s(b.Data, "BlobProto.data"); err != nil {
				return nil, err
			}
		case blobDoubleData:
			if b.Data64, err = m.float64s(b.Data64, "BlobProto.double_data"); err != nil {
				return nil, err
			}
		default:
			if err := m.skip(); err != nil {
				return nil, err
			}
		}
	}
	// Caffe's Blob::FromProto: the legacy 4-D fields win when any is present.
	if hasLegacy {
		b.Shape = legacy[:]
	} else if !hasShape {
		b.Shape = []int{}
	}
	if b.Data != nil && b.Data64 != nil {
		return nil, m.errorf("%s carries both data and double_data", blobName(layer, index))
	}
	if err := checkCount(b, layer, index); err != nil {
		return nil, err
	}
	return b, nil
}

func blobName(layer string, index int) string {
	if layer == "" {
		return "the blob"
	}
	return fmt.Sprintf("layer %q blob %d", layer, index)
}

// checkCount verifies that the blob carries exactly the product of its shape
// in values, without overflowing on hostile shapes.
func checkCount(b *Blob, layer string, index int) error {
	n := b.Len()
	count := int64(1)
	for _, d := range b.Shape {
		if d == 0 {
			count = 0
			break
		}
		if count > math.MaxInt64/int64(d) {
			count = -1 // larger than anything a file can carry
			break
		}
		count *= int64(d)
	}
	if count != int64(n) {
		return &BlobSizeError{Layer: layer, Index: index, Shape: b.Shape, Values: n}
	}
	return nil
}
