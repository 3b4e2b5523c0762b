package main

// The message one stage Worker sends the next through its Service Binding:
// a small header and the tensor that crosses the cut, for a whole batch
// (ten crops go as one batch). The last stage answers with a message of the
// same format holding the class probabilities (and the raw class activation
// maps when they were asked for). All integers are little-endian.
//
//	offset    size  field
//	0         4     magic "RSTG"
//	4         1     version: 1
//	5         1     kind: 1 activations (a request to a stage), 2 probabilities (the last stage's answer)
//	6         1     dtype of the values: 1 float32, 2 float16 (IEEE 754 binary16)
//	7         1     stage: kind 1, the index of the stage addressed; kind 2, the index of the stage answering
//	8         32    sha256 of the model's manifest.json
//	40        1     L: length of the model's name (1..64)
//	41        L     the model's name (its directory, e.g. "resnet152"): ASCII letters, digits, '.', '_', '-'
//	41+L      2     n: the batch (1..16 crops)
//	43+L      12    c, h, w: the shape of one item, 3 x uint32, each 1..65535
//	55+L      1     flags: bit 0 maps (kind 1: the client asked for class activation maps; kind 2: maps follow
//	                the values); the other bits are 0
//	56+L      2     K: number of classes listed (0..1000; 0 without maps)
//	58+L      4K    class indices, uint32 (0..65535): kind 1, the classes asked for besides the top-1 (cam_classes);
//	                kind 2, the classes of the maps that follow, the top-1 first
//	58+L+4K   4     kind 2 with maps only: gh, gw, 2 x uint16 (1..1024), a map's grid
//	then            n*c*h*w values of dtype, item after item, each c x h x w row-major
//	then            kind 2 with maps only: K x n maps of gh x gw float32 (class after class, crop after crop)
//
// A message has exactly that length: nothing may follow. The values and the
// maps together are at most maxTensorValues values (64 MiB as float32: a
// ten-crop batch of ResNet's largest block output is 32 MB). A reader
// treats every byte as untrusted (parseTensorHeader refuses what it cannot
// account for before anything is allocated; FuzzTensorMessage).
//
// Activations travel as float32 by default: the network computes in
// float32, and rounding them to float16 between stages would change the
// result a single process gives (the converter rounds the weights once;
// nothing else is rounded). float16 halves the bytes moved for a caller
// that accepts that.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"unsafe"

	"github.com/x448/float16"
)

const (
	tensorMagic   = "RSTG"
	tensorVersion = 1

	kindActivations = 1
	kindProbs       = 2

	dtypeF32 = 1
	dtypeF16 = 2

	maxModelName    = 64
	maxTensorBatch  = 16
	maxTensorDim    = 65535
	maxMapClasses   = 1000
	maxMapGrid      = 1024
	maxTensorValues = 16 << 20
	tensorFixed     = 41 // bytes before the model's name
)

// tensorHeader is a message's header.
type tensorHeader struct {
	Kind    uint8
	DType   uint8
	Stage   int
	Digest  [32]byte
	Model   string
	N       int
	Shape   [3]int
	Maps    bool
	Classes []int
	GridH   int // kind 2 with maps
	GridW   int
}

// TensorError reports a stage message that cannot be read: it is not one,
// it is of another version, or it is malformed or truncated.
type TensorError struct{ Msg string }

func (e *TensorError) Error() string { return "stage tensor: " + e.Msg }

func tensorErr(format string, args ...any) error {
	return &TensorError{Msg: fmt.Sprintf(format, args...)}
}

// itemSize is the number of values of one batch item.
func (h *tensorHeader) itemSize() int { return h.Shape[0] * h.Shape[1] * h.Shape[2] }

// valueCount is the number of values the message carries.
func (h *tensorHeader) valueCount() int { return h.N * h.itemSize() }

// mapValues is the number of map values (kind 2 with maps).
func (h *tensorHeader) mapValues() int {
	if h.Kind != kindProbs || !h.Maps {
		return 0
	}
	return len(h.Classes) * h.N * h.GridH * h.GridW
}

// payloadBytes is the length of what follows the header.
func (h *tensorHeader) payloadBytes() int64 {
	size := int64(4)
	if h.DType == dtypeF16 {
		size = 2
	}
	return int64(h.valueCount())*size + int64(h.mapValues())*4
}

// headerBytes is the length of the header.
func (h *tensorHeader) headerBytes() int {
	n := tensorFixed + len(h.Model) + 2 + 12 + 1 + 2 + 4*len(h.Classes)
	if h.Kind == kindProbs && h.Maps {
		n += 4
	}
	return n
}

// check validates a header that is about to be written or was just read.
func (h *tensorHeader) check() error {
	switch {
	case h.Kind != kindActivations && h.Kind != kindProbs:
		return tensorErr("kind %d is neither 1 (activations) nor 2 (probabilities)", h.Kind)
	case h.DType != dtypeF32 && h.DType != dtypeF16:
		return tensorErr("dtype %d is neither 1 (float32) nor 2 (float16)", h.DType)
	case h.Stage < 0 || h.Stage > 255:
		return tensorErr("stage %d out of range", h.Stage)
	case len(h.Model) < 1 || len(h.Model) > maxModelName:
		return tensorErr("model name of %d bytes; 1 to %d", len(h.Model), maxModelName)
	case h.N < 1 || h.N > maxTensorBatch:
		return tensorErr("batch of %d; 1 to %d", h.N, maxTensorBatch)
	case !h.Maps && len(h.Classes) > 0:
		return tensorErr("%d map classes without maps", len(h.Classes))
	case len(h.Classes) > maxMapClasses:
		return tensorErr("%d map classes; at most %d", len(h.Classes), maxMapClasses)
	}
	for _, c := range h.Model {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return tensorErr("model name %q: only letters, digits, '.', '_' and '-'", h.Model)
		}
	}
	for _, d := range h.Shape {
		if d < 1 || d > maxTensorDim {
			return tensorErr("shape %v: each dimension 1 to %d", h.Shape, maxTensorDim)
		}
	}
	for _, c := range h.Classes {
		if c < 0 || c > maxTensorDim {
			return tensorErr("map class %d out of range", c)
		}
	}
	if h.Kind == kindProbs && h.Maps {
		if len(h.Classes) == 0 {
			return tensorErr("maps follow but no class is listed")
		}
		if h.GridH < 1 || h.GridH > maxMapGrid || h.GridW < 1 || h.GridW > maxMapGrid {
			return tensorErr("map grid %dx%d: each side 1 to %d", h.GridW, h.GridH, maxMapGrid)
		}
	}
	// Each factor is bounded above, so these products cannot overflow.
	if v := int64(h.N) * int64(h.Shape[0]) * int64(h.Shape[1]) * int64(h.Shape[2]); v > maxTensorValues {
		return tensorErr("%d values (batch %d of %v); at most %d", v, h.N, h.Shape, maxTensorValues)
	}
	if v := int64(h.valueCount()) + int64(len(h.Classes))*int64(h.N)*int64(h.GridH)*int64(h.GridW); h.Kind == kindProbs && v > maxTensorValues {
		return tensorErr("%d values and map values; at most %d", v, maxTensorValues)
	}
	return nil
}

// appendHeader appends h's encoding to b.
func (h *tensorHeader) appendHeader(b []byte) []byte {
	le := binary.LittleEndian
	b = append(b, tensorMagic...)
	b = append(b, tensorVersion, h.Kind, h.DType, byte(h.Stage))
	b = append(b, h.Digest[:]...)
	b = append(b, byte(len(h.Model)))
	b = append(b, h.Model...)
	b = le.AppendUint16(b, uint16(h.N))
	for _, d := range h.Shape {
		b = le.AppendUint32(b, uint32(d))
	}
	var flags byte
	if h.Maps {
		flags = 1
	}
	b = append(b, flags)
	b = le.AppendUint16(b, uint16(len(h.Classes)))
	for _, c := range h.Classes {
		b = le.AppendUint32(b, uint32(c))
	}
	if h.Kind == kindProbs && h.Maps {
		b = le.AppendUint16(b, uint16(h.GridH))
		b = le.AppendUint16(b, uint16(h.GridW))
	}
	return b
}

// readTensorHeader reads and validates a header from r, leaving r at the
// first value. It reads at most a few kilobytes whatever the input.
func readTensorHeader(r io.Reader) (tensorHeader, error) {
	var h tensorHeader
	le := binary.LittleEndian
	fixed := make([]byte, tensorFixed)
	if err := readFull(r, fixed, "the header"); err != nil {
		return h, err
	}
	if string(fixed[:4]) != tensorMagic {
		return h, tensorErr("not a stage tensor (magic %q, want %q)", fixed[:4], tensorMagic)
	}
	if fixed[4] != tensorVersion {
		return h, tensorErr("version %d; this stage reads version %d (deploy every stage from the same build)", fixed[4], tensorVersion)
	}
	h.Kind, h.DType, h.Stage = fixed[5], fixed[6], int(fixed[7])
	copy(h.Digest[:], fixed[8:40])
	l := int(fixed[40])
	if l < 1 || l > maxModelName {
		return h, tensorErr("model name of %d bytes; 1 to %d", l, maxModelName)
	}
	rest := make([]byte, l+2+12+1+2)
	if err := readFull(r, rest, "the header"); err != nil {
		return h, err
	}
	h.Model = string(rest[:l])
	p := rest[l:]
	h.N = int(le.Uint16(p))
	for i := range h.Shape {
		h.Shape[i] = int(le.Uint32(p[2+4*i:]))
	}
	flags := p[14]
	if flags&^1 != 0 {
		return h, tensorErr("unknown flags %#x", flags)
	}
	h.Maps = flags&1 != 0
	k := int(le.Uint16(p[15:]))
	if k > maxMapClasses {
		return h, tensorErr("%d map classes; at most %d", k, maxMapClasses)
	}
	tail := 4 * k
	if h.Kind == kindProbs && h.Maps {
		tail += 4
	}
	if tail > 0 {
		buf := make([]byte, tail)
		if err := readFull(r, buf, "the header"); err != nil {
			return h, err
		}
		h.Classes = make([]int, k)
		for i := range h.Classes {
			h.Classes[i] = int(le.Uint32(buf[4*i:]))
		}
		if h.Kind == kindProbs && h.Maps {
			h.GridH, h.GridW = int(le.Uint16(buf[4*k:])), int(le.Uint16(buf[4*k+2:]))
		}
		if k == 0 {
			h.Classes = nil
		}
	}
	return h, h.check()
}

// readFull is io.ReadFull with a TensorError for a short message.
func readFull(r io.Reader, b []byte, what string) error {
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return tensorErr("truncated in %s", what)
		}
		return fmt.Errorf("reading a stage tensor: %w", err)
	}
	return nil
}

// readTensorValues reads the values of a message whose header h was just
// read into dst (h.valueCount() floats, widening float16), then the maps
// (h.mapValues() floats into maps), and checks that nothing follows.
// float32 values are read straight into dst's memory.
func readTensorValues(r io.Reader, h *tensorHeader, dst, maps []float32) error {
	if len(dst) != h.valueCount() || len(maps) != h.mapValues() {
		return fmt.Errorf("readTensorValues: buffers of %d and %d values for %d and %d", len(dst), len(maps), h.valueCount(), h.mapValues())
	}
	if err := readTensorItems(r, h, dst); err != nil {
		return err
	}
	return readTensorEnd(r, h, maps)
}

// readTensorItems reads the next len(dst) values of a message (whole items,
// or all of them), widening float16: a stage reads the batch it receives
// one item at a time.
func readTensorItems(r io.Reader, h *tensorHeader, dst []float32) error {
	if len(dst)%h.itemSize() != 0 {
		return fmt.Errorf("readTensorItems: %d values are not whole items of %d", len(dst), h.itemSize())
	}
	if h.DType == dtypeF32 {
		return readFloats(r, dst, "the values")
	}
	buf := make([]byte, 2*min(len(dst), 32<<10))
	for off := 0; off < len(dst); {
		n := min(len(buf)/2, len(dst)-off)
		if err := readFull(r, buf[:2*n], "the values"); err != nil {
			return err
		}
		for i := range n {
			dst[off+i] = float16.Frombits(binary.LittleEndian.Uint16(buf[2*i:])).Float32()
		}
		off += n
	}
	return nil
}

// readTensorEnd reads the maps that follow the values (h.mapValues() floats
// into maps) and checks that nothing follows them.
func readTensorEnd(r io.Reader, h *tensorHeader, maps []float32) error {
	if len(maps) != h.mapValues() {
		return fmt.Errorf("readTensorEnd: a buffer of %d values for %d", len(maps), h.mapValues())
	}
	if err := readFloats(r, maps, "the maps"); err != nil {
		return err
	}
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n > 0 {
		return tensorErr("longer than its header says (%d bytes of values and maps)", h.payloadBytes())
	}
	return nil
}

// readFloats reads len(dst) little-endian float32 values into dst.
func readFloats(r io.Reader, dst []float32, what string) error {
	if len(dst) == 0 {
		return nil
	}
	if err := readFull(r, floatBytes(dst), what); err != nil {
		return err
	}
	if !littleEndian {
		for i, v := range dst {
			dst[i] = math.Float32frombits(swap32(math.Float32bits(v)))
		}
	}
	return nil
}

// writeTensor writes a whole message: the header, the values (converted to
// h.DType) and the maps (kind 2 with maps: K x n grids, class after class).
// float32 values are written from their own memory, without a copy.
func writeTensor(w io.Writer, h *tensorHeader, values []float32, maps [][]float32) error {
	if err := h.check(); err != nil {
		return err
	}
	if len(values) != h.valueCount() {
		return fmt.Errorf("writeTensor: %d values for a header of %d", len(values), h.valueCount())
	}
	if _, err := w.Write(h.appendHeader(nil)); err != nil {
		return err
	}
	if h.DType == dtypeF32 {
		if err := writeFloats(w, values); err != nil {
			return err
		}
	} else {
		buf := make([]byte, 0, 64<<10)
		for off := 0; off < len(values); {
			n := min(cap(buf)/2, len(values)-off)
			buf = buf[:0]
			for _, v := range values[off : off+n] {
				buf = binary.LittleEndian.AppendUint16(buf, float16.Fromfloat32(v).Bits())
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
			off += n
		}
	}
	var n int
	for _, m := range maps {
		n += len(m)
		if err := writeFloats(w, m); err != nil {
			return err
		}
	}
	if n != h.mapValues() {
		return fmt.Errorf("writeTensor: %d map values for a header of %d", n, h.mapValues())
	}
	return nil
}

func writeFloats(w io.Writer, v []float32) error {
	if len(v) == 0 {
		return nil
	}
	if !littleEndian {
		v = append([]float32(nil), v...)
		for i, x := range v {
			v[i] = math.Float32frombits(swap32(math.Float32bits(x)))
		}
	}
	_, err := w.Write(floatBytes(v))
	return err
}

// floatBytes is the memory of v as bytes.
func floatBytes(v []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func swap32(x uint32) uint32 { return x>>24 | x>>8&0xff00 | x<<8&0xff0000 | x<<24 }
