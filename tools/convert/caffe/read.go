package caffe

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// stream reads top-level protobuf fields from a file one at a time, so a
// caffemodel never has to be in memory as a whole. It tracks the offset for
// errors and, when the size is known, refuses lengths the file cannot hold.
type stream struct {
	r    *bufio.Reader
	off  int64
	size int64 // -1 if unknown
	kind string
}

// growChunk is the first allocation for a message of unknown size: a length
// prefix is trusted only as far as bytes actually arrive.
const growChunk = 1 << 20

func newStream(r io.Reader, size int64, kind string) *stream {
	br, ok := r.(*bufio.Reader)
	if !ok {
		n := int64(64 << 10)
		if size >= 0 {
			n = min(n, size+1) // +1 so that a file longer than size is noticed
		}
		br = bufio.NewReaderSize(r, int(n))
	}
	return &stream{r: br, size: size, kind: kind}
}

func (s *stream) errorf(off int64, format string, args ...any) error {
	return &FormatError{Kind: s.kind, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// truncated turns an I/O error in the middle of a field into a clear error.
func (s *stream) truncated(err error, off int64, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return s.errorf(off, "the file ends in the middle of %s: it is truncated", what)
	}
	return fmt.Errorf("caffe: reading %s: %w", s.kind, err)
}

// uvarint reads a varint. With eofOK, a clean end of input before it is
// reported by atEOF; otherwise it is a truncation error.
func (s *stream) uvarint(what string, eofOK bool) (v uint64, atEOF bool, err error) {
	start := s.off
	for shift := uint(0); ; shift += 7 {
		c, err := s.r.ReadByte()
		if err != nil {
			if err == io.EOF && s.off == start && eofOK {
				return 0, true, nil
			}
			return 0, false, s.truncated(err, start, what)
		}
		s.off++
		if shift == 63 && c > 1 {
			return 0, false, s.errorf(start, "%s: varint overflows 64 bits", what)
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, false, nil
		}
		if shift == 63 {
			return 0, false, s.errorf(start, "%s: varint overflows 64 bits", what)
		}
	}
}

// tag reads the next field tag; ok is false at a clean end of input.
func (s *stream) tag() (num protowire.Number, typ protowire.Type, start int64, ok bool, err error) {
	start = s.off
	if s.size >= 0 && s.off >= s.size {
		if _, err := s.r.Peek(1); err == nil {
			return 0, 0, start, false, s.errorf(start, "the file is longer than the %d bytes it was said to have", s.size)
		}
	}
	v, eof, err := s.uvarint("field tag", true)
	if err != nil {
		return 0, 0, start, false, err
	}
	if eof {
		if s.size >= 0 && s.off < s.size {
			return 0, 0, start, false, s.errorf(start, "the file ends after %d of its %d bytes: it is truncated", s.off, s.size)
		}
		return 0, 0, start, false, nil
	}
	if v>>3 < uint64(protowire.MinValidNumber) || v>>3 > uint64(protowire.MaxValidNumber) {
		return 0, 0, start, false, s.errorf(start, "invalid field number %d (not a %s?)", v>>3, s.kind)
	}
	num, typ = protowire.DecodeTag(v)
	return num, typ, start, true, nil
}

// length reads a length prefix and checks it against the bytes left.
func (s *stream) length(what string) (int, error) {
	start := s.off
	v, _, err := s.uvarint(what+" length", false)
	if err != nil {
		return 0, err
	}
	if s.size >= 0 && v > uint64(s.size-s.off) {
		return 0, s.errorf(start, "%s claims %d bytes but only %d remain: the file is truncated or corrupt",
			what, v, s.size-s.off)
	}
	if v > 1<<40 || int64(v) < 0 {
		return 0, s.errorf(start, "%s claims %d bytes", what, v)
	}
	return int(v), nil
}

// readInto reads n bytes into buf (reused when large enough). With an
// unknown size the buffer grows as data arrives, so a lying length prefix
// cannot force a huge allocation.
func (s *stream) readInto(buf []byte, n int, what string) ([]byte, error) {
	start := s.off
	if s.size >= 0 || n <= growChunk {
		if cap(buf) < n {
			// Grow geometrically so layers of rising size do not each
			// allocate anew, but never beyond what the file can still hold.
			c := max(n, 2*cap(buf))
			if s.size >= 0 {
				c = int(min(int64(c), max(int64(n), s.size-s.off)))
			}
			buf = make([]byte, n, c)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(s.r, buf); err != nil {
			return buf, s.truncated(err, start, what)
		}
		s.off += int64(n)
		return buf, nil
	}
	buf = buf[:0]
	for len(buf) < n {
		chunk := min(n-len(buf), max(len(buf), growChunk))
		if cap(buf)-len(buf) < chunk {
			nb := make([]byte, len(buf), len(buf)+chunk)
			copy(nb, buf)
			buf = nb
		}
		got, err := io.ReadFull(s.r, buf[len(buf):len(buf)+chunk])
		buf = buf[:len(buf)+got]
		s.off += int64(got)
		if err != nil {
			return buf, s.truncated(err, start, what)
		}
	}
	return buf, nil
}

// skip discards the value of a field of the given wire type.
func (s *stream) skip(num protowire.Number, typ protowire.Type, start int64) error {
	var n int
	switch typ {
	case protowire.VarintType:
		_, _, err := s.uvarint(fmt.Sprintf("field %d", num), false)
		return err
	case protowire.Fixed32Type:
		n = 4
	case protowire.Fixed64Type:
		n = 8
	case protowire.BytesType:
		var err error
		if n, err = s.length(fmt.Sprintf("field %d", num)); err != nil {
			return err
		}
	default:
		return s.errorf(start, "field %d has wire type %d, which a %s does not use (not a %s?)", num, typ, s.kind, s.kind)
	}
	got, err := s.r.Discard(n)
	s.off += int64(got)
	if err != nil {
		return s.truncated(err, start, fmt.Sprintf("field %d", num))
	}
	return nil
}

// checkNotText refuses input whose first bytes are plain text: a prototxt
// (or any text file) given where a binary file was expected.
func (s *stream) checkNotText(expected string) error {
	head, _ := s.r.Peek(512)
	if len(head) == 0 {
		return s.errorf(0, "the file is empty: not a %s", expected)
	}
	if looksLikeText(head) {
		return s.errorf(0, "not a %s: it looks like a text prototxt (give the text file as the prototxt, "+
			"and the binary file Caffe wrote as the %s)", expected, expected)
	}
	return nil
}

// looksLikeText reports whether b is printable UTF-8 text. Binary protobuf
// holds length bytes and tags (a layer's tag is 0xa2 0x06) that are not.
func looksLikeText(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			return len(b) < utf8.UTFMax && !utf8.FullRune(b) // a rune cut by Peek
		}
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' || r == 0x7f {
			return false
		}
		b = b[n:]
	}
	return true
}

// ReadModel reads a binary NetParameter (.caffemodel) as Caffe writes it.
// size is the file's total size, or -1 if unknown; with a known size no
// allocation exceeds what the file can hold. Layers are read one at a time
// into a reused buffer, so the peak memory is about the file's size (the
// decoded blobs) plus its largest layer.
//
// Files in Caffe's legacy V1 format (`layers`) are refused with a
// [*LegacyFormatError]; other problems are [*FormatError] and
// [*BlobSizeError].
func ReadModel(r io.Reader, size int64) (*Net, error) {
	s := newStream(r, size, "caffemodel")
	if err := s.checkNotText("binary caffemodel"); err != nil {
		return nil, err
	}
	n := &Net{}
	var inputs []string
	var inputDims []int
	var inputShapes [][]int
	var buf []byte
	for {
		num, typ, start, ok, err := s.tag()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		switch num {
		case netLayersV1:
			return nil, &LegacyFormatError{Kind: "caffemodel"}
		case netName, netInput, netInputShape, netLayer:
			if typ != protowire.BytesType {
				return nil, s.errorf(start, "NetParameter field %d has wire type %d, not length-delimited (not a caffemodel?)", num, typ)
			}
			what := fmt.Sprintf("layer %d", len(n.Layers))
			switch num {
			case netName:
				what = "the net name"
			case netInput:
				what = "an input name"
			case netInputShape:
				what = "an input_shape"
			}
			ln, err := s.length(what)
			if err != nil {
				return nil, err
			}
			body := s.off
			if buf, err = s.readInto(buf, ln, what); err != nil {
				return nil, err
			}
			m := &msg{b: buf, base: body, kind: s.kind}
			switch num {
			case netName:
				n.Name = string(buf)
			case netInput:
				inputs = append(inputs, string(buf))
			case netInputShape:
				shape, err := decodeShape(m)
				if err != nil {
					return nil, err
				}
				inputShapes = append(inputShapes, shape)
			case netLayer:
				l, err := decodeLayer(m)
				if err != nil {
					return nil, inLayer(err, len(n.Layers), buf)
				}
				n.Layers = append(n.Layers, l)
			}
		case netInputDim:
			if typ == protowire.BytesType {
				ln, err := s.length("input_dim")
				if err != nil {
					return nil, err
				}
				body := s.off
				if buf, err = s.readInto(buf, ln, "input_dim"); err != nil {
					return nil, err
				}
				m := &msg{b: buf, base: body, kind: s.kind}
				if inputDims, err = m.packedDims(inputDims, buf, "input_dim"); err != nil {
					return nil, err
				}
				break
			}
			if typ != protowire.VarintType {
				return nil, s.errorf(start, "input_dim has wire type %d (not a caffemodel?)", typ)
			}
			v, _, err := s.uvarint("input_dim", false)
			if err != nil {
				return nil, err
			}
			if d := int64(v); d < 0 || d > maxDim {
				return nil, s.errorf(start, "input_dim %d is out of range", d)
			}
			inputDims = append(inputDims, int(v))
		default:
			if err := s.skip(num, typ, start); err != nil {
				return nil, err
			}
		}
	}
	var err error
	if n.Inputs, err = netInputs(inputs, inputDims, inputShapes); err != nil {
		return nil, &FormatError{Kind: s.kind, Offset: s.off, Msg: err.Error()}
	}
	if len(n.Layers) == 0 {
		return nil, s.errorf(s.off, "no layers: this is not a Caffe NetParameter (a .binaryproto mean file, or another kind of file?)")
	}
	return n, nil
}

// inLayer adds the index and, when it can be found, the name of the layer
// to a decoding error.
func inLayer(err error, index int, layer []byte) error {
	var fe *FormatError
	if !errors.As(err, &fe) {
		return err
	}
	where := fmt.Sprintf("layer %d", index)
	for b := layer; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		if num == layerName && typ == protowire.BytesType {
			if v, m := protowire.ConsumeBytes(b[n:]); m >= 0 {
				where = fmt.Sprintf("layer %d (%q)", index, v)
			}
			break
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			break
		}
		b = b[n+m:]
	}
	fe.Msg = where + ": " + fe.Msg
	return fe
}

// netInputs pairs the legacy input names with input_dim (4 per input) or
// input_shape (one per input), as Caffe's net upgrade does.
func netInputs(names []string, dims []int, shapes [][]int) ([]Input, error) {
	if len(names) == 0 {
		if len(dims) > 0 || len(shapes) > 0 {
			return nil, errors.New("input_dim or input_shape given without input names")
		}
		return nil, nil
	}
	in := make([]Input, len(names))
	switch {
	case len(shapes) > 0 && len(dims) > 0:
		return nil, errors.New("both input_dim and input_shape are given; use one")
	case len(shapes) > 0:
		if len(shapes) != len(names) {
			return nil, fmt.Errorf("%d inputs but %d input_shape entries", len(names), len(shapes))
		}
		for i := range in {
			in[i] = Input{Name: names[i], Shape: shapes[i]}
		}
	case len(dims) > 0:
		if len(dims) != 4*len(names) {
			return nil, fmt.Errorf("%d inputs need %d input_dim values (N, C, H, W each), got %d",
				len(names), 4*len(names), len(dims))
		}
		for i := range in {
			in[i] = Input{Name: names[i], Shape: append([]int(nil), dims[4*i:4*i+4]...)}
		}
	default:
		for i := range in {
			in[i] = Input{Name: names[i]}
		}
	}
	return in, nil
}

// ReadBlobProto reads a BlobProto (.binaryproto), such as a mean image
// written by Caffe's compute_image_mean: `shape` or the legacy
// num/channels/height/width, `data` or `double_data`. size is the file's
// size, or -1 if unknown.
func ReadBlobProto(r io.Reader, size int64) (*Blob, error) {
	s := newStream(r, size, "binaryproto")
	if err := s.checkNotText("binary .binaryproto"); err != nil {
		return nil, err
	}
	// The whole message is one BlobProto; its data dominates, so it is read
	// in one piece (growing with the bytes that arrive when size is unknown).
	var all []byte
	var err error
	if size >= 0 {
		if size > 1<<40 {
			return nil, s.errorf(0, "size %d is too large for a binaryproto", size)
		}
		all, err = s.readInto(nil, int(size), "the blob")
		if err != nil {
			return nil, err
		}
		if _, err := s.r.ReadByte(); err != io.EOF {
			return nil, s.errorf(size, "the file is longer than the %d bytes it was said to have", size)
		}
	} else if all, err = io.ReadAll(s.r); err != nil {
		return nil, fmt.Errorf("caffe: reading binaryproto: %w", err)
	}
	m := &msg{b: all, kind: s.kind}
	b, err := decodeBlob(m, "", 0)
	if err != nil {
		return nil, err
	}
	if b.Len() == 0 {
		return nil, s.errorf(0, "the blob holds no values: not a mean .binaryproto")
	}
	return b, nil
}
