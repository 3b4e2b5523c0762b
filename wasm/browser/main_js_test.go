//go:build js && wasm

package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"strings"
	"syscall/js"
	"testing"
	"unsafe"

	"github.com/x448/float16"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/backendtest"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/wasm/jsbridge"
)

// tinyModel is a two-class model over a 3x2x2 BGR input: class 0 sums the
// blue channel, class 1 the red one, each times w, plus a bias; then softmax.
// Small enough to compute by hand, real enough to go through core.Open's
// checks and core's executor.
type tinyModel struct {
	manifest []byte
	shard    []byte
	w, b0    float64 // the float16-rounded weight and class 0's bias
}

func newTinyModel(t *testing.T) tinyModel {
	t.Helper()
	h := func(f float32) (uint16, float64) {
		v := float16.Fromfloat32(f)
		return v.Bits(), float64(v.Float32())
	}
	wBits, w := h(0.01)
	bBits, b0 := h(0.5)
	shard := make([]byte, 128)
	// fc_w is 2 x 12 (class x C*H*W, BGR planes of 4 pixels); fc_b at offset 64.
	for i := 0; i < 4; i++ {
		putU16(shard[2*(0*12+0*4+i):], wBits) // class 0: blue plane
		putU16(shard[2*(1*12+2*4+i):], wBits) // class 1: red plane
	}
	putU16(shard[64:], bBits)
	sum := sha256.Sum256(shard)
	m := weights.Manifest{
		Format: weights.FormatName, Version: weights.FormatVersion, Model: "Tiny", Synthetic: true,
		Input:      weights.Input{Name: "data", Channels: 3, Height: 2, Width: 2},
		Preprocess: weights.Preprocess{ChannelOrder: "BGR", Resize: 2, Scale: 1},
		Output:     "prob",
		Labels:     []string{"blue", "red"},
		Ops: []weights.Op{
			{Name: "fc", Type: weights.OpInnerProduct, Inputs: []string{"data"}, Output: "fc", OutShape: [3]int{2, 1, 1}, Weight: "fc_w", Bias: "fc_b"},
			{Name: "prob", Type: weights.OpSoftmax, Inputs: []string{"fc"}, Output: "prob", OutShape: [3]int{2, 1, 1}},
		},
		Tensors: []weights.Tensor{
			{Name: "fc_w", Shape: []int{2, 12}, DType: weights.DTypeF16, Offset: 0, Length: 48},
			{Name: "fc_b", Shape: []int{2}, DType: weights.DTypeF16, Offset: 64, Length: 4},
		},
		Shards: []weights.Shard{{File: "shard-000.bin", Size: int64(len(shard)), SHA256: hex.EncodeToString(sum[:])}},
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return tinyModel{manifest: data, shard: shard, w: w, b0: b0}
}

func putU16(b []byte, v uint16) { b[0], b[1] = byte(v), byte(v>>8) }

// pngOf encodes a 2x2 image of one color.
func pngOf(t *testing.T, c color.RGBA) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 2, 2))
	for y := 0; y < 2; y++ {
		for x := 0; x < 2; x++ {
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func u8(b []byte) js.Value { return jsbridge.BytesToJS(b) }

// await settles p; a rejection is returned as (name, message).
func await(t *testing.T, p js.Value) (v js.Value, name, msg string) {
	t.Helper()
	v, err := jsbridge.Await(p)
	if err != nil {
		var jerr js.Error
		if !errors.As(err, &jerr) {
			t.Fatalf("rejection %v is not a JS error", err)
		}
		return js.Undefined(), jerr.Value.Get("name").String(), jerr.Value.Get("message").String()
	}
	return v, "", ""
}

// navigatorGPU says whether this node has WebGPU (Dawn preloaded).
func navigatorGPU() bool {
	nav := js.Global().Get("navigator")
	return nav.Type() == js.TypeObject && nav.Get("gpu").Type() == js.TypeObject
}

func mustAwait(t *testing.T, p js.Value) js.Value {
	t.Helper()
	v, name, msg := await(t, p)
	if name != "" {
		t.Fatalf("rejected: %s: %s", name, msg)
	}
	return v
}

// load streams the shard into a new loader in chunks of the given size and opens it.
func load(t *testing.T, api js.Value, tm tinyModel, chunk int) (js.Value, int) {
	return loadWith(t, api, tm, chunk, false)
}

func loadWith(t *testing.T, api js.Value, tm tinyModel, chunk int, f32 bool) (js.Value, int) {
	t.Helper()
	ld := mustAwait(t, api.Call("newLoader", u8(tm.manifest)))
	shards := ld.Get("shards")
	if shards.Length() != 1 || shards.Index(0).Get("file").String() != "shard-000.bin" ||
		shards.Index(0).Get("size").Int() != len(tm.shard) {
		t.Fatalf("loader.shards = %s", js.Global().Get("JSON").Call("stringify", shards))
	}
	for off := 0; off < len(tm.shard); off += chunk {
		mustAwait(t, ld.Call("write", "shard-000.bin", u8(tm.shard[off:min(off+chunk, len(tm.shard))])))
	}
	calls := 0
	onProgress := js.FuncOf(func(js.Value, []js.Value) any { calls++; return nil })
	defer onProgress.Release()
	opts := js.Global().Get("Object").New()
	opts.Set("onProgress", onProgress)
	opts.Set("float32Weights", f32)
	return mustAwait(t, ld.Call("open", opts)), calls
}

func TestLoadAndClassify(t *testing.T) {
	for _, mode := range []struct {
		name string
		f32  bool
	}{{"f16", false}, {"f32", true}} {
		t.Run(mode.name, func(t *testing.T) { testLoadAndClassify(t, mode.name, mode.f32) })
	}
}

func testLoadAndClassify(t *testing.T, weightMode string, f32 bool) {
	api := newAPI()
	tm := newTinyModel(t)
	model, progressCalls := loadWith(t, api.Value, tm, 50, f32)
	defer model.Call("close")
	if got := model.Get("info").Get("weight_mode").String(); got != weightMode {
		t.Errorf("info.weight_mode = %q, want %q", got, weightMode)
	}
	if progressCalls == 0 {
		t.Error("open never called onProgress")
	}
	info := model.Get("info")
	if info.Get("model").String() != "Tiny" || !info.Get("synthetic").Bool() || info.Get("classes").Int() != 2 {
		t.Errorf("info = %s", js.Global().Get("JSON").Call("stringify", info))
	}
	if k := info.Get("kernels").String(); k != api.Get("kernels").String() {
		t.Errorf("info.kernels %q differs from api.kernels %q", k, api.Get("kernels").String())
	}
	// No navigator.gpu in node without Dawn: the automatic choice is the
	// CPU, with the reason.
	be := model.Get("backend")
	if navigatorGPU() {
		t.Logf("navigator.gpu is present: model.backend = %s", js.Global().Get("JSON").Call("stringify", be))
	} else if be.Get("backend").String() != "cpu" || !strings.Contains(be.Get("reason").String(), "navigator.gpu") {
		t.Errorf("model.backend = %s", js.Global().Get("JSON").Call("stringify", be))
	}
	if h := model.Get("heapBytes"); h.Type() != js.TypeNumber || h.Float() <= 0 {
		t.Errorf("model.heapBytes = %v", h)
	}

	// By hand: a pure red 2x2 image is B=0, G=0, R=255 in BGR planes, so
	// logit0 = b0 and logit1 = 4*255*w.
	l0, l1 := tm.b0, 4*255*tm.w
	p1 := 1 / (1 + math.Exp(l0-l1))
	tests := []struct {
		name      string
		img       color.RGBA
		wantFirst int
		wantProb  float64
	}{
		{"red", color.RGBA{255, 0, 0, 255}, 1, p1},
		{"blue", color.RGBA{0, 0, 255, 255}, 0, 1 / (1 + math.Exp(-(4*255*tm.w + tm.b0)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := js.Global().Get("Object").New()
			opts.Set("top", 2)
			r := mustAwait(t, model.Call("classify", u8(pngOf(t, tt.img)), opts))
			top := r.Get("top")
			if top.Length() != 2 {
				t.Fatalf("top has %d entries, want 2", top.Length())
			}
			first := top.Index(0)
			if first.Get("index").Int() != tt.wantFirst || first.Get("label").String() != []string{"blue", "red"}[tt.wantFirst] {
				t.Errorf("first = %s, want class %d", js.Global().Get("JSON").Call("stringify", first), tt.wantFirst)
			}
			if got := first.Get("prob").Float(); math.Abs(got-tt.wantProb) > 1e-5 {
				t.Errorf("prob %v, want %v (computed by hand)", got, tt.wantProb)
			}
			if sum := first.Get("prob").Float() + top.Index(1).Get("prob").Float(); math.Abs(sum-1) > 1e-6 {
				t.Errorf("probabilities sum to %v", sum)
			}
			if ms := r.Get("ms"); ms.Type() != js.TypeNumber || ms.Float() < 0 {
				t.Errorf("ms = %v", ms)
			}
			if b := r.Get("backend").String(); b != model.Get("backend").Get("backend").String() {
				t.Errorf("classify ran on %q, the model on %q", b, model.Get("backend").Get("backend").String())
			}
		})
	}
}

func TestErrors(t *testing.T) {
	api := newAPI()
	tm := newTinyModel(t)
	model, _ := load(t, api.Value, tm, 128)
	defer model.Call("close")
	red := pngOf(t, color.RGBA{255, 0, 0, 255})
	opts := func(kv ...any) js.Value {
		o := js.Global().Get("Object").New()
		for i := 0; i < len(kv); i += 2 {
			o.Set(kv[i].(string), kv[i+1])
		}
		return o
	}
	truncated := red[:len(red)/2]

	tests := []struct {
		name     string
		call     func() js.Value
		wantName string
		wantMsg  string
	}{
		{"not an image", func() js.Value { return model.Call("classify", u8([]byte("hello, world"))) }, "ImageError", "preprocess:"},
		{"truncated png", func() js.Value { return model.Call("classify", u8(truncated)) }, "ImageError", "PNG"},
		{"empty", func() js.Value { return model.Call("classify", u8(nil)) }, "ImageError", "empty"},
		{"string instead of bytes", func() js.Value { return model.Call("classify", "red.png") }, "Error", "classify: image bytes: want a Uint8Array or ArrayBuffer, got string"},
		{"bad top", func() js.Value { return model.Call("classify", u8(red), opts("top", 0)) }, "OptionError", "option top: 0"},
		{"bad crops", func() js.Value { return model.Call("classify", u8(red), opts("crops", 3)) }, "OptionError", "option crops: 3"},
		{"bad manifest", func() js.Value { return api.Call("newLoader", u8([]byte(`{"format":"nope"}`))) }, "FormatError", "not a residual model manifest"},
		{"manifest not bytes", func() js.Value { return api.Call("newLoader") }, "Error", "newLoader: manifest: want a Uint8Array"},
		{"chunk past the size", func() js.Value {
			ld := mustAwait(t, api.Call("newLoader", u8(tm.manifest)))
			defer ld.Call("discard")
			return ld.Call("write", "shard-000.bin", u8(make([]byte, 129)))
		}, "ShardError", "129 more bytes would exceed its size of 128 bytes"},
		{"unknown shard", func() js.Value {
			ld := mustAwait(t, api.Call("newLoader", u8(tm.manifest)))
			defer ld.Call("discard")
			return ld.Call("write", "shard-009.bin", u8([]byte{1}))
		}, "ShardError", "no such file"},
		{"missing bytes", func() js.Value {
			ld := mustAwait(t, api.Call("newLoader", u8(tm.manifest)))
			mustAwait(t, ld.Call("write", "shard-000.bin", u8(tm.shard[:100])))
			return ld.Call("open")
		}, "ShardError", "only 100 of its 128 bytes"},
		{"corrupt shard", func() js.Value {
			bad := bytes.Clone(tm.shard)
			bad[3] ^= 1
			ld := mustAwait(t, api.Call("newLoader", u8(tm.manifest)))
			mustAwait(t, ld.Call("write", "shard-000.bin", u8(bad)))
			return ld.Call("open")
		}, "ShardError", "sha256"},
		{"unknown backend", func() js.Value {
			ld := mustAwait(t, api.Call("newLoader", u8(tm.manifest)))
			defer ld.Call("discard")
			mustAwait(t, ld.Call("write", "shard-000.bin", u8(tm.shard)))
			return ld.Call("open", opts("backend", "cuda"))
		}, "Error", `backend "cuda": use "auto", "webgpu" or "cpu"`},
		{"cpu backend", func() js.Value {
			ld := mustAwait(t, api.Call("newLoader", u8(tm.manifest)))
			mustAwait(t, ld.Call("write", "shard-000.bin", u8(tm.shard)))
			return ld.Call("open", opts("backend", "cpu"))
		}, "", ""},
		{"rewind then refill", func() js.Value {
			ld := mustAwait(t, api.Call("newLoader", u8(tm.manifest)))
			mustAwait(t, ld.Call("write", "shard-000.bin", u8(tm.shard[:60])))
			mustAwait(t, ld.Call("rewind", "shard-000.bin"))
			mustAwait(t, ld.Call("write", "shard-000.bin", u8(tm.shard)))
			return ld.Call("open")
		}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, name, msg := await(t, tt.call())
			if tt.wantName == "" {
				if name != "" {
					t.Fatalf("rejected: %s: %s", name, msg)
				}
				if v.Get("close").Type() == js.TypeFunction {
					v.Call("close")
				}
				return
			}
			if name != tt.wantName || !strings.Contains(msg, tt.wantMsg) {
				t.Fatalf("rejection %s: %q, want %s containing %q", name, msg, tt.wantName, tt.wantMsg)
			}
			// Every failure leaves the model usable.
			r := mustAwait(t, model.Call("classify", u8(red)))
			if r.Get("top").Index(0).Get("index").Int() != 1 {
				t.Fatal("classify after a failure gave a different answer")
			}
		})
	}
}

func TestLoaderAndModelRelease(t *testing.T) {
	api := newAPI()
	tm := newTinyModel(t)
	ld := mustAwait(t, api.Call("newLoader", u8(tm.manifest)))
	mustAwait(t, ld.Call("write", "shard-000.bin", u8(tm.shard)))
	model := mustAwait(t, ld.Call("open"))
	// The loader is spent: its methods are gone (their js.Funcs released).
	for _, m := range []string{"write", "rewind", "bytesAt", "setSHA256", "open", "discard"} {
		if ld.Get(m).Type() != js.TypeUndefined {
			t.Errorf("loader.%s survives open", m)
		}
	}
	mustAwait(t, model.Call("close"))
	for _, m := range []string{"classify", "close"} {
		if model.Get(m).Type() != js.TypeUndefined {
			t.Errorf("model.%s survives close", m)
		}
	}
	// The API itself still works after all that.
	ld2 := mustAwait(t, api.Call("newLoader", u8(tm.manifest)))
	mustAwait(t, ld2.Call("discard"))
	if ld2.Get("write").Type() != js.TypeUndefined {
		t.Error("loader.write survives discard")
	}
}

// TestDigestFromJavaScript: loader.bytesAt shows where a shard's bytes lie
// (JavaScript hashes them there with WebCrypto) and loader.setSHA256 hands
// the digest in; open compares it with the manifest instead of hashing.
func TestDigestFromJavaScript(t *testing.T) {
	api := newAPI()
	tm := newTinyModel(t)
	good := sha256.Sum256(tm.shard)
	newFilled := func(shard []byte) js.Value {
		ld := mustAwait(t, api.Call("newLoader", u8(tm.manifest)))
		mustAwait(t, ld.Call("write", "shard-000.bin", u8(shard)))
		return ld
	}

	t.Run("bytesAt", func(t *testing.T) {
		ld := newFilled(tm.shard)
		defer ld.Call("discard")
		at := mustAwait(t, ld.Call("bytesAt", "shard-000.bin"))
		off, n := at.Get("offset").Int(), at.Get("length").Int()
		if n != len(tm.shard) || off <= 0 {
			t.Fatalf("bytesAt = {offset: %d, length: %d}", off, n)
		}
		// In js/wasm a pointer is an offset into the instance's memory.
		got := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), off)), n)
		if !bytes.Equal(got, tm.shard) {
			t.Fatal("the bytes at bytesAt's offset are not the shard")
		}
	})

	tests := []struct {
		name     string
		shard    []byte
		digest   []byte
		wantName string
		wantMsg  string
	}{
		{"right digest", tm.shard, good[:], "", ""},
		{"wrong digest", tm.shard, bytes.Repeat([]byte{7}, 32), "ShardError", "sha256"},
		{"short digest", tm.shard, good[:31], "Error", "32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ld := newFilled(tt.shard)
			_, name, msg := await(t, ld.Call("setSHA256", "shard-000.bin", u8(tt.digest)))
			if name == "" {
				var model js.Value
				model, name, msg = await(t, ld.Call("open"))
				if name == "" {
					defer model.Call("close")
					r := mustAwait(t, model.Call("classify", u8(pngOf(t, color.RGBA{255, 0, 0, 255}))))
					if r.Get("top").Index(0).Get("index").Int() != 1 {
						t.Error("a model opened with a digest from JavaScript classifies differently")
					}
				}
			} else {
				ld.Call("discard")
			}
			if name != tt.wantName || !strings.Contains(msg, tt.wantMsg) {
				t.Fatalf("got %s: %q, want %s containing %q", name, msg, tt.wantName, tt.wantMsg)
			}
		})
	}

	t.Run("incomplete", func(t *testing.T) {
		ld := mustAwait(t, api.Call("newLoader", u8(tm.manifest)))
		defer ld.Call("discard")
		mustAwait(t, ld.Call("write", "shard-000.bin", u8(tm.shard[:10])))
		for _, call := range []js.Value{ld.Call("bytesAt", "shard-000.bin"), ld.Call("setSHA256", "shard-000.bin", u8(good[:]))} {
			if _, name, msg := await(t, call); name == "" || !strings.Contains(msg, "only 10 of its 128 bytes") {
				t.Errorf("on a partial shard: %s: %q", name, msg)
			}
		}
	})

	t.Run("rewind forgets the digest", func(t *testing.T) {
		bad := bytes.Clone(tm.shard)
		bad[5] ^= 1
		ld := newFilled(tm.shard)
		mustAwait(t, ld.Call("setSHA256", "shard-000.bin", u8(good[:])))
		mustAwait(t, ld.Call("rewind", "shard-000.bin"))
		mustAwait(t, ld.Call("write", "shard-000.bin", u8(bad)))
		if _, name, msg := await(t, ld.Call("open")); name != "ShardError" || !strings.Contains(msg, "sha256") {
			t.Fatalf("tampered bytes after a rewind: %s: %q, want a ShardError (Go hashes them)", name, msg)
		}
	})
}

// TestCAM: a model ending in global average pooling and an inner product
// returns, with {cam: true}, the map of its top-1 class: the raw 8 x 8 grid
// of the center crop (equal to what core computes natively) and the map
// drawn over the image at the image's size (under camSide) as RGBA bytes. A
// model without maps refuses the option.
func TestCAM(t *testing.T) {
	files, err := backendtest.SmallResNet(3).Files()
	if err != nil {
		t.Fatal(err)
	}
	api := newAPI().Value
	ld := mustAwait(t, api.Call("newLoader", u8(files[weights.ManifestFile])))
	for i := range ld.Get("shards").Length() {
		name := ld.Get("shards").Index(i).Get("file").String()
		mustAwait(t, ld.Call("write", name, u8(files[name])))
	}
	opts := js.Global().Get("Object").New()
	opts.Set("backend", "cpu")
	model := mustAwait(t, ld.Call("open", opts))
	if !model.Get("info").Get("cam").Bool() {
		t.Fatal("info.cam is false for a network that ends in global average pooling and an inner product")
	}
	img := image.NewRGBA(image.Rect(0, 0, 80, 70))
	for y := range 70 {
		for x := range 80 {
			img.SetRGBA(x, y, color.RGBA{uint8(3 * x), uint8(3 * y), 90, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	o := js.Global().Get("Object").New()
	o.Set("cam", true)
	r := mustAwait(t, model.Call("classify", u8(buf.Bytes()), o))
	cam := r.Get("cam")
	if cam.Get("index").Int() != r.Get("top").Index(0).Get("index").Int() {
		t.Errorf("map of class %d, top-1 %d", cam.Get("index").Int(), r.Get("top").Index(0).Get("index").Int())
	}
	if w, h := cam.Get("width").Int(), cam.Get("height").Int(); w != 80 || h != 70 || cam.Get("rgba").Length() != 80*70*4 {
		t.Errorf("overlay %dx%d with %d bytes, want 80x70 with %d", w, h, cam.Get("rgba").Length(), 80*70*4)
	}
	fsys, err := backendtest.SmallResNet(3).MapFS()
	if err != nil {
		t.Fatal(err)
	}
	native, err := core.Open(fsys, core.Options{CAM: true})
	if err != nil {
		t.Fatal(err)
	}
	defer native.Close()
	res, err := native.ClassifyImage(img, core.ClassifyOptions{CAM: true})
	if err != nil {
		t.Fatal(err)
	}
	grid := cam.Get("grid")
	if grid.Length() != 8 {
		t.Fatalf("grid has %d rows, want 8", grid.Length())
	}
	for y, row := range res.Maps[0].Grid() {
		for x, v := range row {
			if got := grid.Index(y).Index(x).Float(); got != float64(v) {
				t.Fatalf("grid[%d][%d] = %v, core computes %v", y, x, got, v)
			}
		}
	}

	tiny, _ := load(t, api, newTinyModel(t), 128)
	if _, name, msg := await(t, tiny.Call("classify", u8(pngOf(t, color.RGBA{255, 0, 0, 255})), o)); name != "OptionError" || !strings.Contains(msg, "no class activation maps") {
		t.Errorf("cam on a model without maps: %s %q", name, msg)
	}
}
