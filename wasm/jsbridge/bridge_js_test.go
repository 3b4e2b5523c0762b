//go:build js && wasm

package jsbridge

import (
	"errors"
	"fmt"
	"strings"
	"syscall/js"
	"testing"
)

// settle awaits p and returns its value or its rejection's JS name and message.
func settle(t *testing.T, p js.Value) (v js.Value, name, msg string) {
	t.Helper()
	if !p.InstanceOf(js.Global().Get("Promise")) {
		t.Fatalf("got %v, want a Promise", p)
	}
	v, err := Await(p)
	if err != nil {
		var jerr js.Error
		if !errors.As(err, &jerr) {
			t.Fatalf("Await error %T is not a js.Error", err)
		}
		return js.Undefined(), jerr.Value.Get("name").String(), jerr.Value.Get("message").String()
	}
	return v, "", ""
}

func TestPromises(t *testing.T) {
	quietPanics(t)
	type result struct {
		Index int     `json:"index"`
		Prob  float64 `json:"prob"`
	}
	tests := []struct {
		name     string
		fn       func() (any, error)
		wantJSON string // JSON.stringify of the resolved value
		wantErr  string // rejection "name: message"
	}{
		{"number", func() (any, error) { return 42, nil }, "42", ""},
		{"string", func() (any, error) { return "hi", nil }, `"hi"`, ""},
		{"struct via json tags", func() (any, error) { return []result{{281, 0.5}}, nil }, `[{"index":281,"prob":0.5}]`, ""},
		{"nil is undefined", func() (any, error) { return nil, nil }, "undefined", ""},
		{"error", func() (any, error) { return nil, errors.New("bad image: not a JPEG") }, "", "Error: bad image: not a JPEG"},
		{"named error", func() (any, error) {
			return nil, fmt.Errorf("classify: %w", Named("ImageError", errors.New("not an image")))
		}, "", "ImageError: classify: not an image"},
		{"panic", func() (any, error) { panic("boom") }, "", "PanicError: internal error"},
		{"runtime panic", func() (any, error) {
			var m map[string]int
			m["x"] = 1
			return nil, nil
		}, "", "PanicError: internal error"},
		{"unconvertible", func() (any, error) { return make(chan int), nil }, "", "Error: jsbridge: cannot convert chan int"},
		{"js exception", func() (any, error) {
			js.Global().Get("JSON").Call("parse", "{")
			return nil, nil
		}, "", "SyntaxError:"},
	}
	for _, mode := range []struct {
		name string
		run  func(func() (any, error)) js.Value
	}{{"Sync", Sync}, {"Async", Async}} {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				v, name, msg := settle(t, mode.run(tt.fn))
				if tt.wantErr != "" {
					if got := name + ": " + msg; !strings.HasPrefix(got, tt.wantErr) {
						t.Fatalf("rejection %q, want prefix %q", got, tt.wantErr)
					}
					return
				}
				if name != "" {
					t.Fatalf("rejected with %s: %s", name, msg)
				}
				got := "undefined"
				if !v.IsUndefined() {
					got = js.Global().Get("JSON").Call("stringify", v).String()
				}
				if got != tt.wantJSON {
					t.Fatalf("resolved %s, want %s", got, tt.wantJSON)
				}
			})
		}
	}
}

// quietPanics replaces OnPanic for one test, collecting what it sees.
func quietPanics(t *testing.T) *[]*PanicError {
	var seen []*PanicError
	old := OnPanic
	OnPanic = func(pe *PanicError) { seen = append(seen, pe) }
	t.Cleanup(func() { OnPanic = old })
	return &seen
}

// TestPanicDoesNotKillInstance calls a method that panics and then calls
// methods again, through JavaScript, as a page would.
func TestPanicDoesNotKillInstance(t *testing.T) {
	seen := quietPanics(t)
	o := NewObject()
	defer o.Release()
	calls := 0
	o.Sync("count", func(js.Value, []js.Value) (any, error) { calls++; return calls, nil })
	o.Async("explode", func(js.Value, []js.Value) (any, error) { panic(errors.New("kaboom")) })
	for round := 1; round <= 3; round++ {
		_, name, msg := settle(t, o.Call("explode"))
		if name != "PanicError" || !strings.Contains(msg, "kaboom") {
			t.Fatalf("round %d: rejection %s: %s, want PanicError mentioning kaboom", round, name, msg)
		}
		v, name, msg := settle(t, o.Call("count"))
		if name != "" || v.Int() != round {
			t.Fatalf("round %d: count after a panic = %v (%s %s), want %d", round, v, name, msg, round)
		}
	}
	if len(*seen) != 3 {
		t.Fatalf("OnPanic saw %d panics, want 3", len(*seen))
	}
	if pe := (*seen)[0]; !strings.Contains(string(pe.Stack), "TestPanicDoesNotKillInstance") {
		t.Errorf("the recorded stack does not show where the panic happened:\n%s", pe.Stack)
	}
}

func TestAsyncAwaitsJavaScript(t *testing.T) {
	// An Async method may await a JS promise (e.g. fetch) before it settles.
	p := Async(func() (any, error) {
		v, err := Await(js.Global().Get("Promise").Call("resolve", 20))
		if err != nil {
			return nil, err
		}
		_, err = Await(js.Global().Get("Promise").Call("reject", "plain string reason"))
		if err == nil || !strings.Contains(err.Error(), "plain string reason") {
			return nil, errors.New("a rejection with a string reason was not turned into an error naming it")
		}
		return v.Int() + 1, nil
	})
	v, name, msg := settle(t, p)
	if name != "" || v.Int() != 21 {
		t.Fatalf("got %v (%s %s), want 21", v, name, msg)
	}
}

func TestObjectRelease(t *testing.T) {
	o := NewObject()
	o.Sync("a", func(js.Value, []js.Value) (any, error) { return 1, nil })
	o.Async("b", func(js.Value, []js.Value) (any, error) { return 2, nil })
	o.Sync("a", func(js.Value, []js.Value) (any, error) { return 3, nil }) // replaces (and releases) the first a
	if o.Len() != 2 {
		t.Fatalf("Len = %d, want 2", o.Len())
	}
	if v, _, _ := settle(t, o.Call("a")); v.Int() != 3 {
		t.Fatalf("a() = %v, want 3 (the replacement)", v)
	}
	// A method may release its own object while it runs.
	o.Sync("close", func(js.Value, []js.Value) (any, error) { o.Release(); return "closed", nil })
	if v, _, _ := settle(t, o.Call("close")); v.String() != "closed" {
		t.Fatalf("close() = %v", v)
	}
	if o.Len() != 0 {
		t.Fatalf("Len after Release = %d, want 0", o.Len())
	}
	for _, name := range []string{"a", "b", "close"} {
		if typ := o.Get(name).Type(); typ != js.TypeUndefined {
			t.Errorf("method %s is still %s after Release", name, typ)
		}
	}
	o.Release() // twice is fine
}

func TestPrepared(t *testing.T) {
	o := NewObject()
	defer o.Release()
	o.Prepared("double", func(_ js.Value, args []js.Value) (func() (any, error), error) {
		b, err := Bytes(Arg(args, 0), "data")
		if err != nil {
			return nil, err
		}
		return func() (any, error) { return len(b) * 2, nil }, nil
	})
	u := js.Global().Get("Uint8Array").New(5)
	if v, name, msg := settle(t, o.Call("double", u)); name != "" || v.Int() != 10 {
		t.Fatalf("double(5 bytes) = %v (%s %s), want 10", v, name, msg)
	}
	if _, name, msg := settle(t, o.Call("double", "nope")); name != "Error" || !strings.Contains(msg, "data: want a Uint8Array or ArrayBuffer, got string") {
		t.Fatalf("double(string) rejected with %s: %s", name, msg)
	}
}

func TestBytes(t *testing.T) {
	eval := func(src string) js.Value { return js.Global().Get("Function").New("return " + src).Invoke() }
	tests := []struct {
		name    string
		src     string
		want    string
		wantErr string
	}{
		{"Uint8Array", "new Uint8Array([1,2,3])", "\x01\x02\x03", ""},
		{"ArrayBuffer", "new Uint8Array([4,5]).buffer", "\x04\x05", ""},
		{"subarray keeps offset", "new Uint8Array([9,8,7,6]).subarray(1,3)", "\x08\x07", ""},
		{"DataView window", "new DataView(new Uint8Array([1,2,3,4]).buffer, 2, 2)", "\x03\x04", ""},
		{"Int16Array as bytes", "new Int16Array([0x0201])", "\x01\x02", ""},
		{"empty", "new Uint8Array(0)", "", ""},
		{"string", "'abc'", "", "x: want a Uint8Array or ArrayBuffer, got string"},
		{"plain object", "({length: 3})", "", "x: want a Uint8Array or ArrayBuffer, got Object"},
		{"undefined", "undefined", "", "x: want a Uint8Array or ArrayBuffer, got undefined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := eval(tt.src)
			got, err := Bytes(v, "x")
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("Bytes = %q, %v; want %q", got, err, tt.want)
			}
			n, err := ByteLength(v, "x")
			if err != nil || n != len(tt.want) {
				t.Fatalf("ByteLength = %d, %v", n, err)
			}
			dst := make([]byte, len(tt.want))
			if err := CopyInto(dst, v, "x"); err != nil || string(dst) != tt.want {
				t.Fatalf("CopyInto = %q, %v", dst, err)
			}
			if err := CopyInto(make([]byte, len(tt.want)+1), v, "x"); err == nil {
				t.Fatal("CopyInto into a longer slice did not fail")
			}
			back := make([]byte, len(tt.want))
			js.CopyBytesToGo(back, BytesToJS(got))
			if string(back) != tt.want {
				t.Fatalf("BytesToJS round trip = %q", back)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	obj := func(src string) js.Value { return js.Global().Get("Function").New("return " + src).Invoke() }
	for _, tt := range []struct {
		src   string
		value string
		given bool
	}{
		{"undefined", "", false},
		{"null", "", false},
		{"({})", "", false},
		{"({top: null})", "", false},
		{"({top: 3})", "3", true},
		{"({top: 2.5})", "2.5", true},
		{"({top: '3'})", "3", true},
		{"({top: true})", "true", true},
		{"({top: [1]})", "[object]", true},
	} {
		get, err := Options(obj(tt.src))
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		if v, ok := get("top"); v != tt.value || ok != tt.given {
			t.Errorf("%s: top = %q, %v; want %q, %v", tt.src, v, ok, tt.value, tt.given)
		}
	}
	if _, err := Options(obj("7")); err == nil || err.Error() != "options: want an object, got number" {
		t.Errorf("a number as options: %v", err)
	}
}
