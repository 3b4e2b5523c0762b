//go:build js && wasm

package jsbridge

import (
	"sync"
	"syscall/js"
)

// Method is the Go side of a JavaScript method: this and the call's
// arguments in, a value (converted by ValueOf) or an error out.
type Method func(this js.Value, args []js.Value) (any, error)

// Object is a plain JavaScript object whose methods are Go functions that
// return Promises. It owns the js.Func values behind its methods; Release
// frees them all and removes the methods, so a late call fails with a
// TypeError ("... is not a function") instead of reaching freed Go code.
type Object struct {
	js.Value
	mu    sync.Mutex
	funcs map[string]js.Func
}

// NewObject returns an empty object.
func NewObject() *Object {
	return &Object{Value: js.Global().Get("Object").New(), funcs: make(map[string]js.Func)}
}

// Sync adds a method that runs fn during the call and returns a settled
// Promise (see Sync). Use it when fn is quick or must read its arguments
// before the call returns (typed arrays may be reused by the caller).
func (o *Object) Sync(name string, fn Method) {
	o.add(name, js.FuncOf(func(this js.Value, args []js.Value) any {
		return Sync(func() (any, error) { return fn(this, args) })
	}))
}

// Async adds a method that returns a pending Promise and runs fn on its own
// goroutine (see Async). fn must copy what it needs out of args before it
// blocks; typically it is a closure created by a Sync-style prologue.
func (o *Object) Async(name string, fn Method) {
	o.add(name, js.FuncOf(func(this js.Value, args []js.Value) any {
		return Async(func() (any, error) { return fn(this, args) })
	}))
}

// Prepared adds a method whose Go function runs in two parts: prepare runs
// during the call (to validate and copy arguments; a failure rejects at once),
// and the func it returns runs on its own goroutine to settle the Promise.
func (o *Object) Prepared(name string, prepare func(this js.Value, args []js.Value) (func() (any, error), error)) {
	o.add(name, js.FuncOf(func(this js.Value, args []js.Value) any {
		var run func() (any, error)
		p := Sync(func() (any, error) {
			var err error
			run, err = prepare(this, args)
			return nil, err
		})
		if run == nil {
			return p // rejected (or prepare returned no work)
		}
		return Async(run)
	}))
}

func (o *Object) add(name string, f js.Func) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if old, ok := o.funcs[name]; ok {
		old.Release()
	}
	o.funcs[name] = f
	o.Set(name, f)
}

// Release frees every method's js.Func and deletes the methods. It is safe
// to call more than once, including from inside one of the methods.
func (o *Object) Release() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for name, f := range o.funcs {
		o.Delete(name)
		f.Release()
	}
	clear(o.funcs)
}

// Len is the number of live methods (for tests and leak checks).
func (o *Object) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.funcs)
}
