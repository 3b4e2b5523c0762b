package core

import (
	"errors"
	"fmt"

	"github.com/residual-go/residual/core/preprocess"
	"github.com/residual-go/residual/core/weights"
)

// ErrClosed is returned by the Classify methods of a closed Model.
var ErrClosed = errors.New("core: model is closed")

// OptionError reports an Options or ClassifyOptions value out of range: a
// mistake of the caller, not of the image or the model.
type OptionError struct {
	Option string // the option's name as front ends spell it: "top", "crops", "cam", ...
	Msg    string
}

func (e *OptionError) Error() string { return "core: option " + e.Option + ": " + e.Msg }

// InternalError reports a panic caught inside Classify: a broken invariant
// in this package or in the kernels (a bug to report), never the caller's or
// the image's fault. The Model stays usable.
type InternalError struct {
	Value any    // the panic value
	Stack string // the goroutine's stack at the panic
}

func (e *InternalError) Error() string {
	return fmt.Sprintf("core: internal error (please report it): %v", e.Value)
}

// Unwrap returns the panic value when it is an error (a runtime error, say).
func (e *InternalError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Kind sorts the errors of core and its packages by what a front end does
// about them: the command line's message and exit status, the page's error
// name, the Worker's HTTP status. Every front end asks KindOf instead of
// inspecting error types itself.
type Kind string

const (
	// KindImage: the image cannot be classified: no bytes, a format or
	// feature not supported, corrupt or truncated data, or a shape that
	// yields no crop. The caller sends another image (HTTP 400).
	KindImage Kind = "image"
	// KindTooLarge: the image has more pixels than the limit (HTTP 413).
	KindTooLarge Kind = "too_large"
	// KindOption: an option is malformed or out of range (HTTP 400).
	KindOption Kind = "option"
	// KindModel: the model's manifest is malformed, of another format
	// version, or inconsistent: convert the model again.
	KindModel Kind = "model"
	// KindShard: a shard is missing, of the wrong size or fails its
	// sha256: fetch or copy it again (a cache may hold a bad copy).
	KindShard Kind = "shard"
	// KindClosed: the Model was closed.
	KindClosed Kind = "closed"
	// KindInternal: a bug (a recovered panic, or an error none of the
	// above explains): report it (HTTP 500).
	KindInternal Kind = "internal"
)

// KindOf returns the Kind of err ("" for nil).
func KindOf(err error) Kind {
	var (
		ie *preprocess.ImageError
		ge *preprocess.GeometryError
		oe *OptionError
		fe *weights.FormatError
		se *weights.ShardError
		ce *weights.ChecksumError
	)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, preprocess.ErrTooLarge):
		return KindTooLarge
	case errors.As(err, &ie), errors.As(err, &ge):
		return KindImage
	case errors.As(err, &oe):
		return KindOption
	case errors.As(err, &se), errors.As(err, &ce):
		return KindShard
	case errors.As(err, &fe):
		return KindModel
	case errors.Is(err, ErrClosed):
		return KindClosed
	}
	return KindInternal
}

// HTTPStatus is the status an HTTP front end answers an error of kind k
// with: 400 for a bad image or option, 413 for a too large image, 503 for a
// model that cannot be loaded (the service is not ready), 500 otherwise.
func (k Kind) HTTPStatus() int {
	switch k {
	case KindImage, KindOption:
		return 400
	case KindTooLarge:
		return 413
	case KindModel, KindShard, KindClosed:
		return 503
	}
	return 500
}
