package reference

import "fmt"

// UnsupportedLayerError reports a layer type (or a parameter of it) the
// reference does not implement.
type UnsupportedLayerError struct {
	Layer, Type string
	What        string // "" for the whole type, else the unsupported parameter
}

func (e *UnsupportedLayerError) Error() string {
	if e.What == "" {
		return fmt.Sprintf("reference: layer %q: type %s is not supported", e.Layer, e.Type)
	}
	return fmt.Sprintf("reference: layer %q (%s): %s is not supported", e.Layer, e.Type, e.What)
}

// LayerError reports a layer that cannot run: wrong bottoms, blobs of the
// wrong size, parameters that give an empty output, and the like.
type LayerError struct {
	Layer, Type string
	Msg         string
}

func (e *LayerError) Error() string {
	return fmt.Sprintf("reference: layer %q (%s): %s", e.Layer, e.Type, e.Msg)
}

func layerErr(l layerInfo, format string, args ...any) error {
	return &LayerError{Layer: l.name, Type: l.typ, Msg: fmt.Sprintf(format, args...)}
}

// layerInfo names a layer in errors.
type layerInfo struct{ name, typ string }
