//go:build js && wasm

// Command browser is residual's classifier for the demo page, compiled to
// WebAssembly twice (residual-simd.wasm with GOEXPERIMENT=simd, and
// residual-scalar.wasm without it) and started by web/js/worker.js inside a
// dedicated Web Worker, never on the page's main thread.
//
// It only marshals: JavaScript fetches the manifest and the shards (from the
// network or the Cache API) and streams their bytes in; package core
// verifies each shard's size and sha256 against the manifest, builds the
// network and classifies. The SHA-256 itself may be computed by the browser
// (WebCrypto, over the shard's bytes where they lie in Go's memory) and
// handed in with loader.setSHA256: core still compares it with the manifest
// before any byte is used (see web/README.md for the trust model). Every
// method returns a Promise; Go errors reject it with an Error whose message
// says what went wrong, and a panic is recovered by jsbridge and rejects that
// one call (later calls still work).
//
// The JavaScript API, handed to globalThis.residualReady(api) once main starts:
//
//	api.kernels                      "simd" or "scalar" (the build that runs)
//	api.goVersion                    the Go release that built it
//	api.newLoader(manifestBytes)     -> Promise<loader>
//	  loader.shards                  [{file, size, sha256}] in manifest order
//	  loader.write(file, chunk)      -> Promise: appends chunk (Uint8Array) to file
//	  loader.rewind(file)            -> Promise: forget a partial file, to refill it
//	  loader.bytesAt(file)           -> Promise<{offset, length}>: where a complete file's
//	                                    bytes lie in the instance's memory (they never move)
//	  loader.setSHA256(file, digest) -> Promise: the file's SHA-256 (32 bytes), computed by
//	                                    crypto.subtle.digest over those bytes; open then
//	                                    compares it with the manifest instead of hashing in Go
//	  loader.open({onProgress, float32Weights, backend}) -> Promise<model>; the loader is spent after it
//	                                 backend: "auto" (default: WebGPU on a real GPU, else the CPU),
//	                                 "webgpu" (also on a software adapter) or "cpu"
//	  loader.discard()               -> Promise: drop the bytes received so far
//	  model.info                     core.Info as an object (model, synthetic, kernels, ...)
//	  model.backend                  {backend: "webgpu"|"cpu", adapter, reason}: what runs the
//	                                 network, on which GPU adapter, and why the CPU when it is
//	  model.heapBytes                the Go heap in use after the load (shards released or not)
//	  model.classify(bytes, {top, crops, cam}) -> Promise<{top: [{index, label, prob}], ms, backend, cam}>
//	                                 options as core.ParseClassifyOptions reads them; with cam
//	                                 (info.cam models), cam is {index, grid (the raw center-crop
//	                                 map, rows), width, height, rgba: the map over the image}
//	  model.close()                  -> Promise: free the model and its methods
//
// Rejections carry a name JavaScript can branch on, from core.KindOf: "ImageError" for an
// image that cannot be decoded (or is too large), "ShardError" for shard bytes that do not
// match the manifest (size or sha256: fetch them again), "FormatError" for a
// manifest this build cannot read, "OptionError" for a bad option, "DeviceLostError" when the GPU device was
// lost (load the model again: the ladder then picks the CPU), "PanicError"
// for a bug, "Error" otherwise.
package main

import (
	"errors"
	"fmt"
	"image"
	"runtime"
	"runtime/debug"
	"syscall/js"
	"time"
	"unsafe"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/heatmap"
	"github.com/residual-go/residual/core/kernels"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/wasm/jsbridge"
	"github.com/residual-go/residual/wasm/webgpu"
)

func main() {
	ready := js.Global().Get("residualReady")
	if ready.Type() != js.TypeFunction {
		println("residual: globalThis.residualReady is not a function; this module is started by web/js/worker.js")
		return
	}
	ready.Invoke(newAPI().Value)
	select {} // serve calls until the worker is terminated
}

// newAPI builds the object handed to JavaScript. It lives as long as the
// instance, so its methods are never released.
func newAPI() *jsbridge.Object {
	api := jsbridge.NewObject()
	api.Set("kernels", kernels.Impl())
	api.Set("goVersion", runtime.Version())
	api.Sync("newLoader", func(_ js.Value, args []js.Value) (any, error) {
		manifest, err := jsbridge.Bytes(jsbridge.Arg(args, 0), "newLoader: manifest")
		if err != nil {
			return nil, err
		}
		return newLoader(manifest)
	})
	return api
}

// shardInfo is one entry of loader.shards.
type shardInfo struct {
	File   string `json:"file"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// newLoader parses the manifest and reserves Go memory for every shard, so
// each chunk JavaScript writes is copied once, straight to its final place.
func newLoader(manifest []byte) (*jsbridge.Object, error) {
	m, err := weights.ParseManifest(manifest)
	if err != nil {
		return nil, jsbridge.Named("FormatError", err)
	}
	fsys := jsbridge.NewMemFS()
	if err := fsys.Add(weights.ManifestFile, manifest); err != nil {
		return nil, err
	}
	shards := make([]any, len(m.Shards))
	for i, s := range m.Shards {
		if err := fsys.Alloc(s.File, s.Size); err != nil {
			return nil, jsbridge.Named("FormatError", err)
		}
		shards[i] = map[string]any{"file": s.File, "size": s.Size, "sha256": s.SHA256}
	}

	ld := jsbridge.NewObject()
	ld.Set("shards", shards)
	spent := func() error {
		if fsys == nil {
			return errors.New("loader: already opened or discarded; create a new loader")
		}
		return nil
	}
	ld.Sync("write", func(_ js.Value, args []js.Value) (any, error) {
		if err := spent(); err != nil {
			return nil, err
		}
		name, err := jsbridge.String(jsbridge.Arg(args, 0), "write: file")
		if err != nil {
			return nil, err
		}
		chunk := jsbridge.Arg(args, 1)
		n, err := jsbridge.ByteLength(chunk, "write: chunk")
		if err != nil {
			return nil, err
		}
		dst, err := fsys.Next(name, n)
		if err != nil {
			return nil, jsbridge.Named("ShardError", err)
		}
		return nil, jsbridge.CopyInto(dst, chunk, "write: chunk")
	})
	ld.Sync("rewind", func(_ js.Value, args []js.Value) (any, error) {
		if err := spent(); err != nil {
			return nil, err
		}
		name, err := jsbridge.String(jsbridge.Arg(args, 0), "rewind: file")
		if err != nil {
			return nil, err
		}
		return nil, fsys.Rewind(name)
	})
	ld.Sync("bytesAt", func(_ js.Value, args []js.Value) (any, error) {
		if err := spent(); err != nil {
			return nil, err
		}
		name, err := jsbridge.String(jsbridge.Arg(args, 0), "bytesAt: file")
		if err != nil {
			return nil, err
		}
		data, err := fsys.ReadFile(name) // the file's own bytes, no copy
		if err != nil {
			return nil, jsbridge.Named("ShardError", err)
		}
		// In js/wasm a pointer is an offset into the instance's memory,
		// and Go's heap never moves an object; fsys keeps data alive.
		return map[string]any{"offset": int(uintptr(unsafe.Pointer(unsafe.SliceData(data)))), "length": len(data)}, nil
	})
	ld.Sync("setSHA256", func(_ js.Value, args []js.Value) (any, error) {
		if err := spent(); err != nil {
			return nil, err
		}
		name, err := jsbridge.String(jsbridge.Arg(args, 0), "setSHA256: file")
		if err != nil {
			return nil, err
		}
		sum, err := jsbridge.Bytes(jsbridge.Arg(args, 1), "setSHA256: digest")
		if err != nil {
			return nil, err
		}
		return nil, fsys.SetSHA256(name, sum)
	})
	ld.Sync("discard", func(js.Value, []js.Value) (any, error) {
		fsys = nil
		ld.Release()
		return nil, nil
	})
	ld.Prepared("open", func(_ js.Value, args []js.Value) (func() (any, error), error) {
		if err := spent(); err != nil {
			return nil, err
		}
		// Maps cost only their features' memory; the page shows one on
		// every card (when the model has them: Info.CAM).
		opts := core.Options{CAM: true}
		mode := webgpu.ModeAuto
		if o := jsbridge.Arg(args, 0); o.Type() == js.TypeObject {
			if cb := o.Get("onProgress"); cb.Type() == js.TypeFunction {
				opts.Progress = func(done, total int64) { cb.Invoke(done, total) }
			}
			opts.Float32Weights = o.Get("float32Weights").Truthy()
			if b := o.Get("backend"); b.Type() == js.TypeString {
				mode = b.String()
			}
		}
		switch mode {
		case webgpu.ModeAuto, webgpu.ModeWebGPU, webgpu.ModeCPU:
		default:
			return nil, fmt.Errorf("open: backend %q: use \"auto\", \"webgpu\" or \"cpu\"", mode)
		}
		var choice webgpu.Choice
		opts.Backend = func(p *core.Program, w *weights.Weights, o core.Options) (core.Backend, error) {
			// The page classifies one crop or ten: plan both at load.
			b, c, err := webgpu.Select(p, w, o, webgpu.SelectOptions{Mode: mode, Backend: webgpu.Options{Batches: []int{10}}})
			choice = c
			return b, err
		}
		src := fsys
		fsys = nil // the loader is spent: core owns the shard bytes now
		ld.Release()
		return func() (any, error) {
			m, err := core.Open(src, opts)
			src = nil // core holds the shard bytes it still needs (none once they are on the GPU)
			if err != nil {
				return nil, classifyError(err)
			}
			return newModel(m, choice), nil
		}, nil
	})
	return ld, nil
}

// classifyError names the kinds of error JavaScript acts on differently,
// from core's taxonomy (core.KindOf) plus the two errors of this side of
// the bridge: shard bytes that never fully arrived, and a lost GPU.
func classifyError(err error) error {
	switch {
	case errors.As(err, new(*webgpu.DeviceLostError)):
		return jsbridge.Named("DeviceLostError", err)
	case errors.As(err, new(*jsbridge.IncompleteError)):
		return jsbridge.Named("ShardError", err)
	}
	switch core.KindOf(err) {
	case core.KindImage, core.KindTooLarge:
		return jsbridge.Named("ImageError", err)
	case core.KindShard:
		return jsbridge.Named("ShardError", err)
	case core.KindModel:
		return jsbridge.Named("FormatError", err)
	case core.KindOption:
		return jsbridge.Named("OptionError", err)
	}
	return err
}

// camSide bounds the longer side of the map overlay model.classify draws:
// enough for the page's larger view, small enough to draw in a few ms.
const camSide = 640

// camResult is the "cam" object of model.classify: the raw center-crop grid
// and the map drawn over the image (core/heatmap), at most camSide pixels
// on its longer side, as RGBA bytes for an ImageData.
func camResult(img image.Image, cm *core.ClassMap) map[string]any {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if s := max(w, h); s > camSide {
		w, h = max(1, w*camSide/s), max(1, h*camSide/s)
	}
	over := heatmap.Overlay(img, cm, w, h)
	grid := make([]any, cm.GridH)
	for y, row := range cm.Grid() {
		r := make([]any, len(row))
		for x, v := range row {
			r[x] = float64(v)
		}
		grid[y] = r
	}
	return map[string]any{"index": cm.Class, "grid": grid, "width": w, "height": h, "rgba": jsbridge.BytesToJS(over.Pix)}
}

// heapInUse is the Go heap in use once garbage is collected.
func heapInUse() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// newModel wraps a loaded model for JavaScript.
func newModel(m *core.Model, choice webgpu.Choice) *jsbridge.Object {
	info := m.Info()
	obj := jsbridge.NewObject()
	infoJS, err := jsbridge.ValueOf(info)
	if err != nil { // a plain struct of numbers and strings always converts
		panic(err)
	}
	obj.Set("info", infoJS)
	backendJS, err := jsbridge.ValueOf(choice)
	if err != nil {
		panic(err)
	}
	obj.Set("backend", backendJS)
	obj.Set("heapBytes", heapInUse())
	obj.Prepared("classify", func(_ js.Value, args []js.Value) (func() (any, error), error) {
		data, err := jsbridge.Bytes(jsbridge.Arg(args, 0), "classify: image bytes")
		if err != nil {
			return nil, err
		}
		get, err := jsbridge.Options(jsbridge.Arg(args, 1))
		if err != nil {
			return nil, fmt.Errorf("classify: %w", err)
		}
		o, err := core.ParseClassifyOptions(get)
		if err != nil {
			return nil, classifyError(err)
		}
		return func() (any, error) {
			start := time.Now()
			img, err := m.Decode(data)
			if err != nil {
				return nil, classifyError(err)
			}
			res, err := m.ClassifyImage(img, o)
			if err != nil {
				return nil, classifyError(err)
			}
			top, err := jsbridge.ValueOf(res.Top)
			if err != nil {
				return nil, err
			}
			out := map[string]any{"top": top, "backend": choice.Backend}
			if o.CAM {
				out["cam"] = camResult(img, &res.Maps[0])
			}
			// core's own timing and the map: decode, preprocessing, the network, the overlay.
			out["ms"] = float64(time.Since(start).Microseconds()) / 1000
			return out, nil
		}, nil
	})
	obj.Sync("close", func(js.Value, []js.Value) (any, error) {
		obj.Release()
		m.Close()
		return nil, nil
	})
	return obj
}
