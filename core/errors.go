package core

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by the Classify methods of a closed Model.
var ErrClosed = errors.New("core: model is closed")

// OptionError reports an Options or ClassifyOptions value out of range: a
// mistake of the caller, not of the image or the model.
type OptionError struct {
	Option string // the field, e.g. "Crops"
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
