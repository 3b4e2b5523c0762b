package caffe

import (
	"fmt"
	"strings"
)

// FormatError reports bytes that are not the binary file kind that was
// expected: a truncated, corrupt or mismatched .caffemodel or .binaryproto.
type FormatError struct {
	Kind   string // "caffemodel" or "binaryproto"
	Offset int64  // byte offset in the file where the problem was found
	Msg    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("caffe: bad %s at byte %d: %s", e.Kind, e.Offset, e.Msg)
}

// SyntaxError reports a problem in a .prototxt file, with its 1-based line
// and column.
type SyntaxError struct {
	Line, Col int
	Msg       string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("caffe: prototxt %d:%d: %s", e.Line, e.Col, e.Msg)
}

// LegacyFormatError is returned for nets in Caffe's legacy V1 format (the
// `layers` field, NetParameter field 2), which residual does not read.
type LegacyFormatError struct {
	Kind string // "caffemodel" or "prototxt"
}

func (e *LegacyFormatError) Error() string {
	tool := "upgrade_net_proto_binary"
	if e.Kind == "prototxt" {
		tool = "upgrade_net_proto_text"
	}
	return fmt.Sprintf("caffe: this %s is in Caffe's legacy V1 format (`layers` instead of `layer`); "+
		"upgrade it with Caffe's %s tool (build/tools/%s OLD NEW) and convert the result", e.Kind, tool, tool)
}

// BlobSizeError reports a blob whose number of values differs from the
// product of its shape.
type BlobSizeError struct {
	Layer  string // layer name, "" for a stand-alone .binaryproto
	Index  int    // blob index within the layer
	Shape  []int
	Values int
}

func (e *BlobSizeError) Error() string {
	dims := make([]string, len(e.Shape))
	for i, d := range e.Shape {
		dims[i] = fmt.Sprint(d)
	}
	where := "blob"
	if e.Layer != "" {
		where = fmt.Sprintf("layer %q blob %d", e.Layer, e.Index)
	}
	return fmt.Sprintf("caffe: %s has shape [%s] but carries %d values: the file is corrupt or truncated",
		where, strings.Join(dims, " "), e.Values)
}

// MissingLayerError is returned by [Merge] when a deploy layer that needs
// trained blobs has no layer of the same name in the trained net.
type MissingLayerError struct {
	Layer, Type string
}

func (e *MissingLayerError) Error() string {
	return fmt.Sprintf("caffe: deploy layer %q (%s) needs trained blobs but the caffemodel has no layer named %q: "+
		"check that the prototxt and the caffemodel belong together", e.Layer, e.Type, e.Layer)
}
