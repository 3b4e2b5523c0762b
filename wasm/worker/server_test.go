//go:build !js

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/preprocess"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/core/weights/weightstest"
	"github.com/residual-go/residual/internal/testfiles"
	"github.com/residual-go/residual/wasm/worker/budget"
)

// tinyModel writes a small 3-channel model (conv, pool, inner product,
// softmax over 10 classes) into a temporary directory.
func tinyModel(t *testing.T) string {
	t.Helper()
	b := weightstest.New("tiny", 3, 16, 16, 7).Labels(10)
	b.M.Preprocess.MeanValues = []float64{104, 117, 123}
	b.Conv("data", "c1", 3, 4, 3, 1, 1, true, 0.05)
	b.Op(weights.Op{Type: weights.OpPool, Inputs: []string{"c1"}, Output: "p1", Pool: "max",
		Kernel: [2]int{2, 2}, Stride: [2]int{2, 2}, RoundMode: "ceil"})
	b.InnerProduct("p1", "fc", 4*8*8, 10, false, 0.05)
	b.Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"fc"}, Output: "prob"})
	b.M.Output = "prob"
	dir := t.TempDir()
	if err := b.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// photo encodes a deterministic gradient image.
func photo(t *testing.T, w, h int, format string) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x + y) % 256), 255})
		}
	}
	var buf bytes.Buffer
	var err error
	if format == "png" {
		err = png.Encode(&buf, img)
	} else {
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// countingSource counts fetches per file, can fail the first N manifest
// fetches, and can hold every fetch for a while (to overlap concurrent loads).
// noisePNG encodes seeded random pixels: incompressible, so the PNG is
// about 4*w*h bytes.
func noisePNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	x := uint32(12345)
	for i := range img.Pix {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		img.Pix[i] = uint8(x)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type countingSource struct {
	dir      dirSource
	delay    time.Duration
	failures atomic.Int32
	mu       sync.Mutex
	fetches  map[string]int
}

func (c *countingSource) Open(ctx context.Context, name string) (io.ReadCloser, int64, error) {
	c.mu.Lock()
	if c.fetches == nil {
		c.fetches = map[string]int{}
	}
	c.fetches[name]++
	c.mu.Unlock()
	time.Sleep(c.delay)
	if name == weights.ManifestFile && c.failures.Add(-1) >= 0 {
		return nil, 0, errors.New("assets temporarily unavailable")
	}
	return c.dir.Open(ctx, name)
}

func (c *countingSource) count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetches[name]
}

type response struct {
	code   int
	header http.Header
	body   map[string]any
	raw    []byte
}

func do(t *testing.T, h http.Handler, method, target string, body io.Reader, contentLength int64) response {
	t.Helper()
	r := httptest.NewRequest(method, target, body)
	if contentLength != 0 {
		r.ContentLength = contentLength
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := response{code: w.Code, header: w.Header(), raw: w.Body.Bytes()}
	if len(res.raw) > 0 {
		if err := json.Unmarshal(res.raw, &res.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v: %q", method, target, err, res.raw)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s %s: Content-Type %q", method, target, ct)
		}
	}
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("%s %s: Access-Control-Allow-Origin %q, want *", method, target, got)
	}
	return res
}

// wantTop compares a /classify answer with core's own result for the same bytes.
func wantTop(t *testing.T, res response, want *core.Result) {
	t.Helper()
	if res.code != http.StatusOK {
		t.Fatalf("status %d: %s", res.code, res.raw)
	}
	var got classifyResponse
	if err := json.Unmarshal(res.raw, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Top) != len(want.Top) {
		t.Fatalf("%d predictions, want %d", len(got.Top), len(want.Top))
	}
	for i := range want.Top {
		if got.Top[i] != want.Top[i] {
			t.Errorf("top[%d] = %+v, want %+v", i, got.Top[i], want.Top[i])
		}
	}
	if got.Ms < 0 {
		t.Errorf("ms = %v", got.Ms)
	}
}

func openDirect(t *testing.T, dir string) *core.Model {
	t.Helper()
	m, err := core.Open(os.DirFS(dir), core.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func TestClassifyMatchesCore(t *testing.T) {
	dir := tinyModel(t)
	ref := openDirect(t, dir)
	srv := NewServer(Config{Name: "tiny", Source: dirSource(dir)})
	for _, tt := range []struct {
		name, query, format string
		top, crops          int
	}{
		{"default top 5", "", "jpeg", 5, 1},
		{"top 3", "?top=3", "png", 3, 1},
		{"top above classes", "?top=1000", "jpeg", 10, 1},
		{"10 crops", "?top=4&crops=10", "png", 4, 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img := photo(t, 40, 30, tt.format)
			want, err := ref.ClassifyBytes(img, core.ClassifyOptions{Top: tt.top, Crops: tt.crops})
			if err != nil {
				t.Fatal(err)
			}
			res := do(t, srv, http.MethodPost, "/classify"+tt.query, bytes.NewReader(img), 0)
			wantTop(t, res, want)
			if res.body["model"] != "tiny" || res.body["synthetic"] != true {
				t.Errorf("model %v synthetic %v, want tiny true", res.body["model"], res.body["synthetic"])
			}
		})
	}
}

func TestErrors(t *testing.T) {
	dir := tinyModel(t)
	const limit = 64 << 10
	srv := NewServer(Config{Name: "tiny", Source: dirSource(dir), MaxBody: limit})
	good := photo(t, 40, 30, "jpeg")
	big := noisePNG(t, 200, 200)
	if len(big) <= limit {
		t.Fatalf("test image of %d bytes is not over the %d-byte limit", len(big), limit)
	}
	tests := []struct {
		name, method, target string
		body                 []byte
		contentLength        int64 // 0: len(body); -1: unknown (chunked)
		code                 int
		errHas               string
		allow                string
	}{
		{"empty body", "POST", "/classify", nil, 0, 400, "body is empty", ""},
		{"junk bytes", "POST", "/classify", []byte("this is not an image at all, just text"), 0, 400, "", ""},
		{"truncated JPEG", "POST", "/classify", good[:len(good)/2], 0, 400, "", ""},
		{"over the limit by Content-Length", "POST", "/classify", big, 0, 413, "65536 bytes", ""},
		{"over the limit while reading", "POST", "/classify", big, -1, 413, "65536 bytes", ""},
		{"GET /classify", "GET", "/classify", nil, 0, 405, "allowed: POST", "POST, OPTIONS"},
		{"PUT /classify", "PUT", "/classify", good, 0, 405, "PUT", "POST, OPTIONS"},
		{"POST /healthz", "POST", "/healthz", good, 0, 405, "", "GET, HEAD, OPTIONS"},
		{"top=0", "POST", "/classify?top=0", good, 0, 400, "option top: 0; ask for 1 or more", ""},
		{"top=abc", "POST", "/classify?top=abc", good, 0, 400, `option top: "abc" is not an integer`, ""},
		{"top empty", "POST", "/classify?top=", good, 0, 400, `option top: "" is not an integer`, ""},
		{"crops=3", "POST", "/classify?crops=3", good, 0, 400, "1 (center crop) or 10", ""},
		{"cam=maybe", "POST", "/classify?cam=maybe", good, 0, 400, "option cam", ""},
		{"cam_classes=x", "POST", "/classify?cam_classes=x", good, 0, 400, "option cam_classes", ""},
		{"unknown path", "GET", "/nope", nil, 0, 404, "POST /classify", ""},
		{"over the pixel limit", "POST", "/classify", grayPNG(t, 2100, 2100), 0, 413, "limit of 4194304 pixels", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(tt.body)
			if tt.contentLength == -1 {
				body = io.MultiReader(bytes.NewReader(tt.body)) // hides the length
			}
			res := do(t, srv, tt.method, tt.target, body, tt.contentLength)
			if res.code != tt.code {
				t.Fatalf("status %d, want %d: %s", res.code, tt.code, res.raw)
			}
			msg, _ := res.body["error"].(string)
			if msg == "" || !strings.Contains(msg, tt.errHas) {
				t.Errorf("error %q, want one containing %q", msg, tt.errHas)
			}
			if tt.code == 413 && res.body["limit"] != float64(limit) && res.body["max_pixels"] != float64(DefaultMaxPixels) {
				t.Errorf("413 without the limit it exceeded: %s", res.raw)
			}
			if got := res.header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
	// After all of that, a good request still works.
	want, err := openDirect(t, dir).ClassifyBytes(good, core.ClassifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantTop(t, do(t, srv, "POST", "/classify", bytes.NewReader(good), 0), want)
}

func TestPreflight(t *testing.T) {
	srv := NewServer(Config{Name: "tiny", Source: dirSource(t.TempDir())})
	for path, allow := range map[string]string{"/classify": "POST, OPTIONS", "/healthz": "GET, HEAD, OPTIONS"} {
		res := do(t, srv, http.MethodOptions, path, nil, 0)
		if res.code != http.StatusNoContent || res.header.Get("Access-Control-Allow-Methods") != allow ||
			res.header.Get("Access-Control-Allow-Headers") != "Content-Type, Authorization" {
			t.Errorf("OPTIONS %s: %d %v", path, res.code, res.header)
		}
	}
}

// TestConcurrentFirstRequests: 20 requests arrive before the model is
// loaded; they share one load and all get the right answer.
func TestConcurrentFirstRequests(t *testing.T) {
	dir := tinyModel(t)
	src := &countingSource{dir: dirSource(dir), delay: 20 * time.Millisecond}
	srv := NewServer(Config{Name: "tiny", Source: src})
	imgs := make([][]byte, 20)
	wants := make([]*core.Result, 20)
	ref := openDirect(t, dir)
	for i := range imgs {
		imgs[i] = photo(t, 20+i, 30, "png")
		var err error
		if wants[i], err = ref.ClassifyBytes(imgs[i], core.ClassifyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range imgs {
		wg.Go(func() {
			wantTop(t, do(t, srv, "POST", "/classify", bytes.NewReader(imgs[i]), 0), wants[i])
		})
	}
	wg.Wait()
	h := do(t, srv, "GET", "/healthz", nil, 0)
	if h.code != 200 || h.body["status"] != "ok" || h.body["loads"] != 1.0 || h.body["load_attempts"] != 1.0 || h.body["requests"] != 20.0 {
		t.Fatalf("healthz %d: %s", h.code, h.raw)
	}
	if n := src.count(weights.ManifestFile); n != 1 {
		t.Errorf("manifest fetched %d times, want 1", n)
	}
}

func TestLoadRetriedAfterFailure(t *testing.T) {
	dir := tinyModel(t)
	src := &countingSource{dir: dirSource(dir)}
	src.failures.Store(1)
	srv := NewServer(Config{Name: "tiny", Source: src})
	res := do(t, srv, "GET", "/healthz", nil, 0)
	if res.code != 503 || !strings.Contains(res.body["error"].(string), "temporarily unavailable") || res.body["loads"] != 0.0 {
		t.Fatalf("first healthz %d: %s", res.code, res.raw)
	}
	res = do(t, srv, "POST", "/classify", bytes.NewReader(photo(t, 30, 30, "png")), 0)
	if res.code != 200 {
		t.Fatalf("classify after a failed load: %d %s", res.code, res.raw)
	}
	res = do(t, srv, "GET", "/healthz", nil, 0)
	if res.body["loads"] != 1.0 || res.body["load_attempts"] != 2.0 {
		t.Fatalf("healthz after retry: %s", res.raw)
	}
}

// TestModelTooBig: with a budget below the estimate the worker answers 503
// naming the model and the reason, without fetching any shard, every time.
func TestModelTooBig(t *testing.T) {
	dir := tinyModel(t)
	src := &countingSource{dir: dirSource(dir)}
	srv := NewServer(Config{Name: "tiny", Source: src, Budget: 1000})
	for range 2 {
		for _, r := range []struct{ method, path string }{{"POST", "/classify"}, {"GET", "/healthz"}} {
			res := do(t, srv, r.method, r.path, bytes.NewReader(photo(t, 30, 30, "png")), 0)
			msg, _ := res.body["error"].(string)
			if res.code != 503 || !strings.Contains(msg, "model tiny") || !strings.Contains(msg, "needs about") ||
				!strings.Contains(msg, "128 MB") {
				t.Fatalf("%s %s: %d %s", r.method, r.path, res.code, res.raw)
			}
		}
	}
	if n := src.count(weights.ManifestFile); n != 1 {
		t.Errorf("manifest fetched %d times, want 1 (a model too big is not retried)", n)
	}
	for _, name := range []string{"shard-000.bin"} {
		if n := src.count(name); n != 0 {
			t.Errorf("%s fetched %d times for a model that does not fit", name, n)
		}
	}
}

// TestPanicRecovered: a panic inside the handler answers 500 JSON and the
// next requests are served.
func TestPanicRecovered(t *testing.T) {
	dir := tinyModel(t)
	var calls atomic.Int32
	srv := NewServer(Config{Name: "tiny", Source: dirSource(dir), WasmMemory: func() int64 {
		if calls.Add(1) == 2 { // the first reading is taken after the load
			panic("memory probe broke")
		}
		return 1 << 20
	}})
	res := do(t, srv, "GET", "/healthz", nil, 0)
	if res.code != 500 || !strings.Contains(res.body["error"].(string), "memory probe broke") {
		t.Fatalf("healthz with a panicking probe: %d %s", res.code, res.raw)
	}
	res = do(t, srv, "GET", "/healthz", nil, 0)
	if res.code != 200 {
		t.Fatalf("healthz after the panic: %d %s", res.code, res.raw)
	}
	mem := res.body["memory"].(map[string]any)
	if mem["now"].(map[string]any)["wasm_bytes"] != float64(1<<20) {
		t.Errorf("memory.now = %v, want wasm_bytes %d", mem["now"], 1<<20)
	}
	if res := do(t, srv, "POST", "/classify", bytes.NewReader(photo(t, 30, 30, "jpeg")), 0); res.code != 200 {
		t.Fatalf("classify after the panic: %d %s", res.code, res.raw)
	}
}

// bigModel writes a model with ResNet's input geometry (3x224x224, resize
// 256) but almost no weights, so that preprocessing dominates its memory.
func bigInputModel(t *testing.T) string {
	t.Helper()
	b := weightstest.New("wide-input", 3, 224, 224, 3).Labels(10)
	b.M.Preprocess.Resize = 256
	b.Conv("data", "c1", 3, 2, 1, 16, 0, true, 0.05)
	b.InnerProduct("c1", "fc", 2*14*14, 10, false, 0.05)
	b.Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"fc"}, Output: "prob"})
	b.M.Output = "prob"
	dir := t.TempDir()
	if err := b.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func grayPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRequestNeedBoundsAllocations: everything a model allocates to
// classify an image (garbage included, so a bound of the live peak too)
// stays within requestNeed's figure less the body, plus the crop tensors
// and the 10-crop sum a fresh model allocates on first use (which
// Estimate.Inputs counts as resident), for the geometries where each term
// of preprocess's bound dominates.
func TestRequestNeedBoundsAllocations(t *testing.T) {
	dir := bigInputModel(t)
	for _, tt := range []struct {
		name  string
		img   func(t *testing.T) []byte
		crops int
	}{
		{"tiny JPEG, upscaled", func(t *testing.T) []byte { return photo(t, 150, 103, "jpeg") }, 1},
		{"224x224 used as is", func(t *testing.T) []byte { return photo(t, 224, 224, "png") }, 10},
		{"square just below box reduction", func(t *testing.T) []byte { return photo(t, 1023, 1023, "png") }, 1},
		{"4:3 JPEG", func(t *testing.T) []byte { return photo(t, 1364, 1023, "jpeg") }, 10},
		{"1080p JPEG", func(t *testing.T) []byte { return photo(t, 1920, 1080, "jpeg") }, 1},
		{"progressive JPEG with Exif", func(t *testing.T) []byte {
			return testfiles.Read(t, testfiles.Photos+"/video-001.exif6.jpeg")
		}, 1},
		{"lossless WebP", func(t *testing.T) []byte {
			return testfiles.Read(t, testfiles.Photos+"/blue-purple-pink.lossless.webp")
		}, 1},
		{"2:1 PNG", func(t *testing.T) []byte { return photo(t, 2046, 1023, "png") }, 1},
		{"portrait gray PNG", func(t *testing.T) []byte { return grayPNG(t, 700, 1400) }, 1},
		{"noise PNG", func(t *testing.T) []byte { return noisePNG(t, 900, 700) }, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.img(t)
			h, err := preprocess.ReadHeader(data, DefaultMaxPixels)
			if err != nil {
				t.Fatal(err)
			}
			m := openDirect(t, dir) // fresh: nothing allocated for images yet
			n := budget.RequestNeed(h, int64(len(data)), m.Spec(), tt.crops)
			firstUse := int64(tt.crops*3*224*224*4) + 10*8 // the crop tensors, and the 10-crop sum of 10 classes
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			if _, err := m.ClassifyBytes(data, core.ClassifyOptions{Crops: tt.crops}); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			alloc := int64(after.TotalAlloc - before.TotalAlloc)
			bound := n.Total() - n.Body + firstUse + 64<<10 // and core's own small change: the result, the top list
			t.Logf("%dx%d %s: allocated %s, need %s (decode %s, preprocessing %s)", h.Width, h.Height, h.Format,
				budget.MB(alloc), budget.MB(n.Total()-n.Body), budget.MB(n.Decode), budget.MB(n.Crops))
			if alloc > bound {
				t.Errorf("core allocated %d bytes, more than the %d requestNeed allows", alloc, bound)
			}
		})
	}
}

// TestRequestTooBigForMemory: an image whose decoding and preprocessing
// would not fit beside the model is refused with 413 before decoding, the
// refusal saying what it needs and what is free; a small one passes.
func TestRequestTooBigForMemory(t *testing.T) {
	dir := bigInputModel(t)
	m := manifestOf(t, dir)
	e := budget.EstimateMemory(m, budget.Default)
	srv := NewServer(Config{Name: "wide", Source: dirSource(dir), Budget: e.Resident() + 20_000_000})
	res := do(t, srv, "POST", "/classify", bytes.NewReader(photo(t, 1364, 1023, "jpeg")), 0)
	msg, _ := res.body["error"].(string)
	if res.code != 413 || !strings.Contains(msg, "1364x1023 JPEG") || !strings.Contains(msg, "downscale") ||
		res.body["free"] != 20_000_000.0 || res.body["need"].(float64) <= 20_000_000 {
		t.Fatalf("big image: %d %s", res.code, res.raw)
	}
	if res := do(t, srv, "POST", "/classify", bytes.NewReader(photo(t, 320, 240, "jpeg")), 0); res.code != 200 {
		t.Fatalf("small image after a refused one: %d %s", res.code, res.raw)
	}
}

func manifestOf(t *testing.T, dir string) *weights.Manifest {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := weights.ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAdmissionIndependentOfHistory: whether a request is admitted depends
// on the model and that request alone. With a budget that leaves an image
// a little more than it needs, the same image twenty times is admitted
// every time (it used to be refused from its second time on, the buffers
// kept from the first counted again on top of its own need); alternating
// sizes and bad inputs between good ones change nothing: every good image
// 200, every bad one its own 4xx, and a refused image's need and free
// memory the same each time.
func TestAdmissionIndependentOfHistory(t *testing.T) {
	dir := bigInputModel(t)
	e := budget.EstimateMemory(manifestOf(t, dir), budget.Default)
	big := photo(t, 1364, 1023, "jpeg")
	h, err := preprocess.ReadHeader(big, DefaultMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	n := budget.RequestNeed(h, int64(len(big)), preprocess.Spec{Channels: 3, Height: 224, Width: 224, Resize: 256}, 1)
	srv := NewServer(Config{Name: "wide", Source: dirSource(dir), Budget: e.Resident() + n.Total() + n.Total()/10})
	ref := openDirect(t, dir)
	post := func(data []byte) response { return do(t, srv, "POST", "/classify", bytes.NewReader(data), 0) }
	good := func(what string, data []byte) {
		t.Helper()
		want, err := ref.ClassifyBytes(data, core.ClassifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		res := post(data)
		if res.code != 200 {
			t.Fatalf("%s: %d %s", what, res.code, res.raw)
		}
		wantTop(t, res, want)
	}
	for i := range 20 {
		good(fmt.Sprintf("the same 1364x1023 JPEG, time %d", i+1), big)
	}
	tooBig := photo(t, 2046, 1023, "png") // no box reduction at 2:1: about twice the JPEG's need
	first := post(tooBig)
	if first.code != 413 {
		t.Fatalf("2046x1023 PNG: %d %s", first.code, first.raw)
	}
	for round := range 3 {
		for _, img := range [][]byte{photo(t, 640, 480, "jpeg"), big, photo(t, 900, 700, "png"), photo(t, 150, 103, "jpeg")} {
			good(fmt.Sprintf("round %d", round), img)
			res := post(tooBig)
			if res.code != 413 || res.body["need"] != first.body["need"] || res.body["free"] != first.body["free"] {
				t.Fatalf("round %d: the refused image got %d %s, first %s", round, res.code, res.raw, first.raw)
			}
		}
	}
	png := photo(t, 400, 300, "png")
	for _, c := range []struct {
		name string
		body []byte
		code int
		has  string
	}{
		{"truncated JPEG", big[:len(big)/2], 400, "truncated"},
		{"JPEG header only", big[:700], 400, "truncated"},
		{"JPEG without its end marker", big[:len(big)-2], 400, "truncated"},
		{"truncated PNG", png[:len(png)-30], 400, "truncated"},
		{"junk", []byte(strings.Repeat("not an image ", 40)), 400, "not a recognised image format"},
		{"empty", nil, 400, "empty"},
		{"too big for memory", tooBig, 413, "downscale"},
		{"over the pixel limit", grayPNG(t, 2100, 2100), 413, "limit of 4194304 pixels"},
	} {
		good("before "+c.name, big)
		res := post(c.body)
		msg, _ := res.body["error"].(string)
		if res.code != c.code || !strings.Contains(msg, c.has) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, res.code, res.raw, c.code, c.has)
		}
	}
	good("after the bad inputs", big)
}

// TestTruncatedIsBadRequest: a truncated image is refused as truncated
// (400) even when the size its header declares would not fit in memory.
func TestTruncatedIsBadRequest(t *testing.T) {
	dir := bigInputModel(t)
	e := budget.EstimateMemory(manifestOf(t, dir), budget.Default)
	srv := NewServer(Config{Name: "wide", Source: dirSource(dir), Budget: e.Total})
	big := photo(t, 2046, 1023, "png")
	if res := do(t, srv, "POST", "/classify", bytes.NewReader(big), 0); res.code != 413 {
		t.Fatalf("the whole image: %d %s", res.code, res.raw)
	}
	res := do(t, srv, "POST", "/classify", bytes.NewReader(big[:len(big)/3]), 0)
	if msg, _ := res.body["error"].(string); res.code != 400 || !strings.Contains(msg, "truncated") {
		t.Fatalf("a third of it: %d %s", res.code, res.raw)
	}
}

// TestBatchHeldFromLoad: a stage opened as the worker opens it
// (core.StageOptions.MaxBatch) holds the ten crop tensors and outputs from
// the start, below the range reserve frees for requests: the first
// ten-crop request allocates none of them.
func TestBatchHeldFromLoad(t *testing.T) {
	srv := NewServer(Config{Name: "wide", Source: dirSource(bigInputModel(t))})
	ld, err := srv.stage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	img, err := ld.stage.Decode(photo(t, 224, 224, "png"))
	if err != nil {
		t.Fatal(err)
	}
	tensors := int64(10 * 3 * 224 * 224 * 4)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, _, err := ld.stage.RunImage(img, 10); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if got := int64(after.TotalAlloc - before.TotalAlloc); got >= tensors {
		t.Errorf("the first ten-crop request allocated %d bytes: the crop tensors again?", got)
	}
}
