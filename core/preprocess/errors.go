package preprocess

import (
	"errors"
	"strings"
)

// Kinds of image errors. An *ImageError wraps exactly one of them, so callers
// can branch with errors.Is (for example to answer HTTP 413 for ErrTooLarge and
// 400 for the others).
var (
	// ErrEmpty: the input has no bytes.
	ErrEmpty = errors.New("empty image")
	// ErrUnsupported: the bytes are not one of the supported formats, or use a
	// feature of a supported format that its decoder does not implement.
	ErrUnsupported = errors.New("unsupported image")
	// ErrTooLarge: the header declares more pixels than allowed.
	ErrTooLarge = errors.New("image too large")
	// ErrCorrupt: the header or the pixel data cannot be decoded (truncated,
	// malformed, or the decoder failed).
	ErrCorrupt = errors.New("corrupt image")
)

// SupportedFormats lists the formats Decode accepts, in the order the sniffer
// tries them.
var SupportedFormats = []string{"JPEG", "PNG", "GIF", "WebP", "BMP", "TIFF"}

// ImageError is the error Decode returns for input it refuses.
type ImageError struct {
	Kind   error  // ErrEmpty, ErrUnsupported, ErrTooLarge or ErrCorrupt
	Format string // the sniffed format ("JPEG", ...), or "" when unknown
	Reason string // what is wrong and, where possible, what to do
	Err    error  // the decoder's own error, when there is one
}

func (e *ImageError) Error() string {
	var b strings.Builder
	b.WriteString("preprocess: ")
	switch {
	case e.Kind == ErrCorrupt && e.Format != "":
		b.WriteString("corrupt " + e.Format + ": ")
	case e.Kind == ErrUnsupported && e.Format != "":
		b.WriteString("unsupported " + e.Format + ": ")
	case e.Kind != nil:
		b.WriteString(e.Kind.Error() + ": ")
	}
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap exposes both the kind and the decoder's error to errors.Is / errors.As.
func (e *ImageError) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// SpecError reports a Spec, crop count or destination that Crops cannot use.
// It is a programming or model-manifest error, not a problem with the image.
type SpecError struct {
	Reason string
}

func (e *SpecError) Error() string { return "preprocess: invalid input spec: " + e.Reason }

// GeometryError reports an image that cannot yield the requested crop, for
// example when the resized image is smaller than the crop.
type GeometryError struct {
	Reason string
}

func (e *GeometryError) Error() string { return "preprocess: " + e.Reason }
