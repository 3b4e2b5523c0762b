//go:build js && wasm

package jsbridge

import (
	"errors"
	"fmt"
	"runtime/debug"
	"syscall/js"
)

// PanicError is a panic recovered at the bridge. It becomes a rejected
// Promise instead of crashing the wasm instance, so later calls still work.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // the goroutine's stack when it was recovered
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("internal error (a bug in residual; please report it with the browser console output): panic: %v", e.Value)
}

// Unwrap exposes a panic value that is itself an error (e.g. a js.Error).
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// recovered turns a recovered panic value into an error. A js.Error (an
// exception thrown by JavaScript that Go called, such as a callback) is
// returned as is; anything else is a bug: a *PanicError, whose stack is
// printed to the console (os.Stderr is the console in js/wasm).
func recovered(v any) error {
	if jerr, ok := v.(js.Error); ok {
		return jerr
	}
	pe := &PanicError{Value: v, Stack: debug.Stack()}
	if OnPanic != nil {
		OnPanic(pe)
	}
	return pe
}

// OnPanic, when not nil, sees every panic recovered at the bridge before it
// becomes a rejection. The default prints the message and the stack to the
// console, where a bug report can pick them up.
var OnPanic = func(pe *PanicError) {
	println("jsbridge: recovered", pe.Error(), "\n", string(pe.Stack))
}

// Error converts err to a JavaScript Error whose message is err.Error().
// Its name is "PanicError" for a recovered panic and "Error" otherwise; a
// js.Error (a JavaScript exception that reached Go) is passed through as the
// original exception. A nil err gives undefined.
func Error(err error) js.Value {
	if err == nil {
		return js.Undefined()
	}
	if jerr, ok := err.(js.Error); ok {
		return jerr.Value
	}
	e := js.Global().Get("Error").New(err.Error())
	var pe *PanicError
	var ne *namedError
	switch {
	case errors.As(err, &pe):
		e.Set("name", "PanicError")
	case errors.As(err, &ne):
		e.Set("name", ne.name)
	}
	return e
}

// Named wraps err so that Error gives the JavaScript Error the given name
// (for example "ImageError"), letting JavaScript tell kinds of failure apart
// without parsing messages. The message is unchanged. Named(name, nil) is nil.
func Named(name string, err error) error {
	if err == nil {
		return nil
	}
	return &namedError{name: name, err: err}
}

type namedError struct {
	name string
	err  error
}

func (e *namedError) Error() string { return e.err.Error() }
func (e *namedError) Unwrap() error { return e.err }

// call runs fn, turning a panic into an error and converting its result.
func call(fn func() (any, error)) (v js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = js.Undefined(), recovered(r)
		}
	}()
	res, err := fn()
	if err != nil {
		return js.Undefined(), err
	}
	return ValueOf(res)
}

var (
	promiseCtor = js.Global().Get("Promise")
)

// Sync runs fn now, on the calling goroutine, and returns a Promise already
// settled with its result: resolved with the value (converted by ValueOf) or
// rejected with Error(err). A panic in fn rejects with a *PanicError's message.
// Use it for quick work that must happen while the caller's arguments are
// still valid, such as copying a chunk of bytes.
func Sync(fn func() (any, error)) js.Value {
	v, err := call(fn)
	if err != nil {
		return promiseCtor.Call("reject", Error(err))
	}
	return promiseCtor.Call("resolve", v)
}

// Async returns a pending Promise and runs fn on a new goroutine, so the
// calling js.Func returns at once (blocking inside a js.Func deadlocks; see
// syscall/js.FuncOf). The Promise settles as with Sync. fn may call Await.
func Async(fn func() (any, error)) js.Value {
	var resolve, reject js.Value
	executor := js.FuncOf(func(_ js.Value, args []js.Value) any {
		resolve, reject = args[0], args[1]
		return nil
	})
	p := promiseCtor.New(executor) // the executor runs synchronously
	executor.Release()
	go func() {
		v, err := call(fn)
		if err != nil {
			reject.Invoke(Error(err))
			return
		}
		resolve.Invoke(v)
	}()
	return p
}

// Await blocks the calling goroutine until the thenable p settles and returns
// its value, or a js.Error holding the rejection reason. Call it only from a
// goroutine that may block (inside Async, never directly in a js.Func).
// A value that is not a thenable is returned as is.
func Await(p js.Value) (js.Value, error) {
	if p.Type() != js.TypeObject || p.Get("then").Type() != js.TypeFunction {
		return p, nil
	}
	type outcome struct {
		v   js.Value
		err error
	}
	ch := make(chan outcome, 1)
	onOK := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- outcome{v: argOrUndefined(args, 0)}
		return nil
	})
	onErr := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- outcome{err: rejectionError(argOrUndefined(args, 0))}
		return nil
	})
	defer onOK.Release()
	defer onErr.Release()
	p.Call("then", onOK, onErr)
	o := <-ch
	return o.v, o.err
}

// rejectionError wraps a rejection reason as a Go error.
func rejectionError(reason js.Value) error {
	if reason.Type() == js.TypeObject && reason.InstanceOf(js.Global().Get("Error")) {
		return js.Error{Value: reason}
	}
	return js.Error{Value: js.Global().Get("Error").New(js.Global().Call("String", reason))}
}

func argOrUndefined(args []js.Value, i int) js.Value {
	if i < len(args) {
		return args[i]
	}
	return js.Undefined()
}
