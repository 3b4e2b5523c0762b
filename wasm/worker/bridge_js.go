//go:build js && wasm

package main

// The Workers runtime objects the handler uses, as Go interfaces: streams
// (shards, request and response bodies) as io.Readers that copy straight
// into the caller's slice, the Service Binding to the next stage as an
// http.RoundTripper, and the rate-limiting binding as a Limiter.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall/js"
)

// readChunk is the most a single read asks for (and the largest chunk of a
// body sent to the next stage): the only JavaScript copy of the bytes that
// exists at a time.
const readChunk = 1 << 20

var uint8Array = js.Global().Get("Uint8Array")

// awaitCtx waits for the promise p to settle or ctx to end (then abort, if
// set, is called, and ctx's error returned). The callbacks release
// themselves when the promise settles, even after ctx ended.
func awaitCtx(ctx context.Context, p js.Value, abort func()) (js.Value, error) {
	type outcome struct {
		v   js.Value
		err error
	}
	ch := make(chan outcome, 1)
	var onOK, onErr js.Func
	release := func() { onOK.Release(); onErr.Release() }
	onOK = js.FuncOf(func(_ js.Value, args []js.Value) any {
		var v js.Value
		if len(args) > 0 {
			v = args[0]
		}
		ch <- outcome{v: v}
		release()
		return nil
	})
	onErr = js.FuncOf(func(_ js.Value, args []js.Value) any {
		reason := js.Undefined()
		if len(args) > 0 {
			reason = args[0]
		}
		ch <- outcome{err: fmt.Errorf("%s", js.Global().Call("String", reason).String())}
		release()
		return nil
	})
	p.Call("then", onOK, onErr)
	select {
	case o := <-ch:
		return o.v, o.err
	case <-ctx.Done():
		if abort != nil {
			abort()
		}
		return js.Value{}, ctx.Err()
	}
}

// jsReader reads a ReadableStream: through a BYOB reader when it is a byte
// stream (readAtLeast, a Workers extension, or read(view, {min})), copying
// each chunk into the caller's slice through one reused transfer buffer of
// at most readChunk bytes; otherwise chunk by chunk with the default reader.
type jsReader struct {
	ctx    context.Context
	what   string
	reader js.Value
	byob   bool
	view   js.Value // BYOB: the transfer buffer (its ArrayBuffer moves with each read)
	rest   js.Value // default reader: the part of the last chunk not yet returned
	off    int
	done   bool
}

func newJSReader(ctx context.Context, stream js.Value, what string) *jsReader {
	r := &jsReader{ctx: ctx, what: what}
	if stream.IsNull() || stream.IsUndefined() {
		r.done = true
		return r
	}
	r.reader, r.byob = tryByob(stream)
	return r
}

// tryByob returns a BYOB reader of body when body is a byte stream, else
// its default reader.
func tryByob(body js.Value) (reader js.Value, byob bool) {
	defer func() {
		if recover() != nil { // not a byte stream: getReader threw a TypeError
			reader, byob = body.Call("getReader"), false
		}
	}()
	return body.Call("getReader", map[string]any{"mode": "byob"}), true
}

func (r *jsReader) Read(p []byte) (n int, err error) {
	defer func() {
		// A JavaScript exception thrown by a call below is this read's error.
		if v := recover(); v != nil {
			if jerr, ok := v.(js.Error); ok {
				n, err = 0, fmt.Errorf("reading %s: %w", r.what, jerr)
				return
			}
			panic(v)
		}
	}()
	if len(p) == 0 {
		return 0, nil
	}
	if !r.byob && r.rest.Type() == js.TypeObject {
		return r.fromRest(p), nil
	}
	if r.done {
		return 0, io.EOF
	}
	var res js.Value
	if r.byob {
		want := min(len(p), readChunk)
		if r.view.IsUndefined() || r.view.Get("buffer").Get("byteLength").Int() < want {
			r.view = uint8Array.New(readChunk)
		}
		v := uint8Array.New(r.view.Get("buffer"), 0, want)
		if r.reader.Get("readAtLeast").Type() == js.TypeFunction {
			res, err = awaitCtx(r.ctx, r.reader.Call("readAtLeast", want, v), r.cancel)
		} else {
			res, err = awaitCtx(r.ctx, r.reader.Call("read", v, map[string]any{"min": want}), r.cancel)
		}
	} else {
		res, err = awaitCtx(r.ctx, r.reader.Call("read"), r.cancel)
	}
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", r.what, err)
	}
	chunk := res.Get("value")
	if res.Get("done").Bool() {
		r.done = true
	}
	if chunk.Type() != js.TypeObject {
		if r.done {
			return 0, io.EOF
		}
		return 0, nil
	}
	if r.byob {
		r.view = uint8Array.New(chunk.Get("buffer")) // the transferred buffer, reused next time
		n = chunk.Get("byteLength").Int()
		js.CopyBytesToGo(p[:n], chunk)
		return n, nil
	}
	r.rest, r.off = chunk, 0
	return r.fromRest(p), nil
}

func (r *jsReader) fromRest(p []byte) int {
	size := r.rest.Get("byteLength").Int()
	n := min(len(p), size-r.off)
	js.CopyBytesToGo(p[:n], r.rest.Call("subarray", r.off, r.off+n))
	r.off += n
	if r.off == size {
		r.rest = js.Undefined()
	}
	return n
}

func (r *jsReader) cancel() {
	if !r.done && r.reader.Type() == js.TypeObject {
		r.done = true
		r.reader.Call("cancel")
	}
}

// Close cancels the stream if it was not read to its end.
func (r *jsReader) Close() error {
	r.cancel()
	return nil
}

// rawBody reads a request's body: the runtime's own stream through a
// jsReader when syumai/workers exposes it (GetRawJSBody), else r.Body.
func rawBody(r *http.Request) io.Reader {
	if r.Body == nil {
		return strings.NewReader("")
	}
	if raw, ok := r.Body.(interface{ GetRawJSBody() js.Value }); ok {
		return newJSReader(r.Context(), raw.GetRawJSBody(), "the request body")
	}
	return r.Body
}

// goStream is a ReadableStream that pulls from src in chunks of at most
// readChunk bytes. src must never block (it is an in-memory message): the
// pull runs synchronously inside the runtime's callback.
func goStream(src io.Reader) js.Value {
	buf := make([]byte, readChunk)
	var pull, cancel js.Func
	release := func() { pull.Release(); cancel.Release() }
	pull = js.FuncOf(func(_ js.Value, args []js.Value) any {
		controller := args[0]
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			chunk := uint8Array.New(n)
			js.CopyBytesToJS(chunk, buf[:n])
			controller.Call("enqueue", chunk)
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				controller.Call("close")
			} else {
				controller.Call("error", js.Global().Get("Error").New(err.Error()))
			}
			release()
		}
		return nil
	})
	cancel = js.FuncOf(func(js.Value, []js.Value) any {
		release()
		return nil
	})
	return js.Global().Get("ReadableStream").New(map[string]any{"pull": pull, "cancel": cancel})
}

// bindingTransport sends requests through a Service Binding (env[binding]).
// A request's context ends it: the subrequest is aborted.
type bindingTransport struct{ binding string }

func (t bindingTransport) RoundTrip(req *http.Request) (resp *http.Response, err error) {
	defer func() {
		if v := recover(); v != nil {
			if jerr, ok := v.(js.Error); ok {
				resp, err = nil, jerr
				return
			}
			panic(v)
		}
	}()
	b := js.Global().Get("context").Get("env").Get(t.binding)
	if b.Type() != js.TypeObject || b.Get("fetch").Type() != js.TypeFunction {
		return nil, fmt.Errorf("the %s Service Binding is missing from the configuration (regenerate it: make worker-config)", t.binding)
	}
	headers := js.Global().Get("Headers").New()
	for k, vs := range req.Header {
		for _, v := range vs {
			headers.Call("append", k, v)
		}
	}
	ctrl := js.Global().Get("AbortController").New()
	init := map[string]any{"method": req.Method, "headers": headers, "signal": ctrl.Get("signal")}
	if req.Body != nil && req.Body != http.NoBody {
		init["body"] = goStream(req.Body)
	}
	ctx := req.Context()
	abort := func() { ctrl.Call("abort") }
	res, err := awaitCtx(ctx, b.Call("fetch", req.URL.String(), init), abort)
	if err != nil {
		return nil, err
	}
	resp = &http.Response{
		StatusCode: res.Get("status").Int(),
		Status:     res.Get("statusText").String(),
		Header:     http.Header{},
		Request:    req,
	}
	it := res.Get("headers").Call("entries")
	for {
		e := it.Call("next")
		if e.Get("done").Bool() {
			break
		}
		kv := e.Get("value")
		resp.Header.Add(kv.Index(0).String(), kv.Index(1).String())
	}
	resp.Body = newJSReader(ctx, res.Get("body"), "the answer of "+t.binding)
	return resp, nil
}

// jsLimiter is Cloudflare's rate-limiting binding (env[binding].limit).
type jsLimiter struct{ binding string }

func (l jsLimiter) Limit(ctx context.Context, key string) (bool, error) {
	b := js.Global().Get("context").Get("env").Get(l.binding)
	if b.Type() != js.TypeObject {
		return true, nil
	}
	res, err := awaitCtx(ctx, b.Call("limit", map[string]any{"key": key}), nil)
	if err != nil {
		return false, err
	}
	return res.Get("success").Bool(), nil
}
