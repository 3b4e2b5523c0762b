//go:build js && wasm

package jsbridge

import (
	"encoding/json"
	"fmt"
	"syscall/js"
)

var (
	uint8ArrayCtor  = js.Global().Get("Uint8Array")
	arrayBufferCtor = js.Global().Get("ArrayBuffer")
	jsonObj         = js.Global().Get("JSON")
)

// uint8View returns v as a Uint8Array: v itself, or a view of an ArrayBuffer
// or of any other ArrayBuffer view (DataView, Int8Array, ...).
func uint8View(v js.Value, what string) (js.Value, error) {
	switch {
	case v.Type() != js.TypeObject:
		return js.Value{}, fmt.Errorf("%s: want a Uint8Array or ArrayBuffer, got %s", what, v.Type())
	case v.InstanceOf(uint8ArrayCtor):
		return v, nil
	case v.InstanceOf(arrayBufferCtor):
		return uint8ArrayCtor.New(v), nil
	case js.Global().Get("ArrayBuffer").Call("isView", v).Bool():
		return uint8ArrayCtor.New(v.Get("buffer"), v.Get("byteOffset"), v.Get("byteLength")), nil
	}
	return js.Value{}, fmt.Errorf("%s: want a Uint8Array or ArrayBuffer, got %s", what,
		v.Get("constructor").Get("name").String())
}

// Bytes copies a Uint8Array, ArrayBuffer or other ArrayBuffer view into a
// new Go slice. what names the argument in errors.
func Bytes(v js.Value, what string) ([]byte, error) {
	u, err := uint8View(v, what)
	if err != nil {
		return nil, err
	}
	b := make([]byte, u.Get("byteLength").Int())
	js.CopyBytesToGo(b, u)
	return b, nil
}

// ByteLength is the length in bytes of a Uint8Array, ArrayBuffer or view.
func ByteLength(v js.Value, what string) (int, error) {
	u, err := uint8View(v, what)
	if err != nil {
		return 0, err
	}
	return u.Get("byteLength").Int(), nil
}

// CopyInto copies the typed array or buffer v into dst, which must have
// exactly its length, and returns nothing else: the one copy from JavaScript
// memory into Go memory.
func CopyInto(dst []byte, v js.Value, what string) error {
	u, err := uint8View(v, what)
	if err != nil {
		return err
	}
	if n := u.Get("byteLength").Int(); n != len(dst) {
		return fmt.Errorf("%s: %d bytes, want %d", what, n, len(dst))
	}
	js.CopyBytesToGo(dst, u)
	return nil
}

// BytesToJS returns a new Uint8Array holding a copy of b.
func BytesToJS(b []byte) js.Value {
	u := uint8ArrayCtor.New(len(b))
	js.CopyBytesToJS(u, b)
	return u
}

// ValueOf converts a Go result to JavaScript: nil is undefined; a js.Value
// (or js.Func) is passed through; bools, numbers, strings, []any and
// map[string]any go through js.ValueOf; anything else (structs, typed slices
// and maps) goes through encoding/json and JSON.parse, so json struct tags
// decide the field names.
func ValueOf(v any) (js.Value, error) {
	switch x := v.(type) {
	case nil:
		return js.Undefined(), nil
	case js.Value:
		return x, nil
	case js.Func:
		return x.Value, nil
	case *Object:
		return x.Value, nil
	case bool, float64, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr,
		float32, string, []any, map[string]any:
		return js.ValueOf(x), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return js.Undefined(), fmt.Errorf("jsbridge: cannot convert %T to JavaScript: %w", v, err)
	}
	return jsonObj.Call("parse", string(b)), nil
}

// Arg returns args[i], or undefined when the call had fewer arguments.
func Arg(args []js.Value, i int) js.Value { return argOrUndefined(args, i) }

// Options returns a reader of the options object opts for
// core.ParseClassifyOptions: a property that is undefined or null is not
// given; a string, number or boolean is given as its JavaScript text
// (String(v)), so that core parses and checks every front end's options the
// same way. undefined or null opts gives no options; anything else that is
// not an object is an error.
func Options(opts js.Value) (func(name string) (string, bool), error) {
	if opts.IsUndefined() || opts.IsNull() {
		return func(string) (string, bool) { return "", false }, nil
	}
	if opts.Type() != js.TypeObject {
		return nil, fmt.Errorf("options: want an object, got %s", opts.Type())
	}
	return func(name string) (string, bool) {
		v := opts.Get(name)
		switch v.Type() {
		case js.TypeUndefined, js.TypeNull:
			return "", false
		case js.TypeString, js.TypeNumber, js.TypeBoolean:
			return js.Global().Call("String", v).String(), true
		}
		return "[" + v.Type().String() + "]", true // refused by the parser with the option's name
	}, nil
}

// String reads a string argument.
func String(v js.Value, what string) (string, error) {
	if v.Type() != js.TypeString {
		return "", fmt.Errorf("%s: want a string, got %s", what, v.Type())
	}
	return v.String(), nil
}
