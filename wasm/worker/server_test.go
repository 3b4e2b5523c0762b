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
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/core/weights/weightstest"
	"github.com/residual-go/residual/internal/testfiles"
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

func (c *countingSource) Fetch(ctx context.Context, name string, size int64) ([]byte, error) {
	c.mu.Lock()
	if c.fetches == nil {
		c.fetches = map[string]int{}
	}
	c.fetches[name]++
	c.mu.Unlock()
	time.Sleep(c.delay)
	if name == weights.ManifestFile && c.failures.Add(-1) >= 0 {
		return nil, errors.New("assets temporarily unavailable")
	}
	return c.dir.Fetch(ctx, name, size)
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
		{"top=0", "POST", "/classify?top=0", good, 0, 400, "from 1 to 1000", ""},
		{"top=1001", "POST", "/classify?top=1001", good, 0, 400, "from 1 to 1000", ""},
		{"top=abc", "POST", "/classify?top=abc", good, 0, 400, "from 1 to 1000", ""},
		{"top empty", "POST", "/classify?top=", good, 0, 400, "from 1 to 1000", ""},
		{"crops=3", "POST", "/classify?crops=3", good, 0, 400, "1 (center crop) or 10", ""},
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
			res.header.Get("Access-Control-Allow-Headers") != "Content-Type" {
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

// TestEstimateBoundsCore: the estimate made from the manifest alone is an
// upper bound of what core actually allocates once the model is open.
func TestEstimateBoundsCore(t *testing.T) {
	dirs := map[string]string{"tiny": tinyModel(t)}
	for _, d := range []string{"../../weights/resnet50-synthetic", "../../weights/resnet50", "../../dist/web/models/resnet50-synthetic"} {
		if _, err := os.Stat(filepath.Join(d, "manifest.json")); err == nil {
			dirs[filepath.Base(d)] = d
			break
		}
	}
	if len(dirs) == 1 {
		t.Log("no ResNet-50 model found (make synthetic): checking the tiny model only")
	}
	for name, dir := range dirs {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := weights.ParseManifest(raw)
			if err != nil {
				t.Fatal(err)
			}
			e := EstimateMemory(m)
			info := openDirect(t, dir).Info()
			if e.Weights != info.WeightBytes || e.Activations < info.ActivationBytes || e.Scratch < info.ScratchBytes {
				t.Errorf("estimate %+v does not bound core's %+v", e, info)
			}
			if sum := e.Weights + e.Activations + e.Scratch + e.Inputs + e.Runtime + e.Request; sum != e.Total {
				t.Errorf("total %d, terms sum to %d", e.Total, sum)
			}
			t.Logf("%s: estimate %s (weights %s, activations %s vs core %s, scratch %s vs core %s), budget %s",
				name, mb(e.Total), mb(e.Weights), mb(e.Activations), mb(info.ActivationBytes), mb(e.Scratch), mb(info.ScratchBytes), mb(DefaultBudget))
			if name != "tiny" && e.Total > DefaultBudget {
				t.Errorf("ResNet-50 does not fit the default budget: %s", mb(e.Total))
			}
		})
	}
}

// TestTooBigArithmetic: ResNet-101 and -152 in float16 (44.5 M and 60.2 M
// parameters: 89 MB and 120 MB of weights alone) exceed the budget whatever
// their activations; the estimate says so from the shard sizes.
//
// ResNet-101 and -152 have the same stage shapes as ResNet-50, so their
// activations and scratch are ResNet-50's: the test takes ResNet-50's
// manifest and swaps its shards for the deeper models' weight bytes.
func TestTooBigArithmetic(t *testing.T) {
	var base *weights.Manifest
	for _, d := range []string{"../../weights/resnet50-synthetic", "../../weights/resnet50", "../../dist/web/models/resnet50-synthetic"} {
		if raw, err := os.ReadFile(filepath.Join(d, "manifest.json")); err == nil {
			if base, err = weights.ParseManifest(raw); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if base == nil {
		t.Skip("no ResNet-50 manifest (make synthetic)")
	}
	if e := EstimateMemory(base); e.Total > DefaultBudget {
		t.Fatalf("ResNet-50 itself does not fit: %+v", e)
	}
	for _, tt := range []struct {
		name   string
		params int64
	}{{"resnet101", 44_549_160}, {"resnet152", 60_192_808}} {
		m := *base
		m.Shards = nil
		for rest := tt.params * 2; rest > 0; rest -= weights.MaxShardSize {
			m.Shards = append(m.Shards, weights.Shard{File: fmt.Sprintf("shard-%03d.bin", len(m.Shards)), Size: min(rest, weights.MaxShardSize)})
		}
		e := EstimateMemory(&m)
		t.Logf("%s: %s", tt.name, (&TooBigError{Name: tt.name, Estimate: e, Budget: DefaultBudget}).Error())
		if e.Weights != tt.params*2 || e.Total <= DefaultBudget {
			t.Errorf("%s: estimate %+v fits the budget %d", tt.name, e, DefaultBudget)
		}
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

// TestRequestNeedBoundsAllocations: everything core allocates to classify
// an image (garbage included, so a bound of the live peak too) stays under
// requestNeed's figure, for the geometries where each term dominates. The
// slack covers the decoders' own small buffers (zlib window, Huffman tables).
func TestRequestNeedBoundsAllocations(t *testing.T) {
	const slack = 1 << 20
	dir := bigInputModel(t)
	for _, tt := range []struct {
		name string
		img  func(t *testing.T) []byte
	}{
		{"tiny JPEG, upscaled", func(t *testing.T) []byte { return photo(t, 150, 103, "jpeg") }},
		{"224x224 used as is", func(t *testing.T) []byte { return photo(t, 224, 224, "png") }},
		{"square just below box reduction", func(t *testing.T) []byte { return photo(t, 1023, 1023, "png") }},
		{"4:3 JPEG", func(t *testing.T) []byte { return photo(t, 1364, 1023, "jpeg") }},
		{"1080p JPEG", func(t *testing.T) []byte { return photo(t, 1920, 1080, "jpeg") }},
		{"progressive JPEG with Exif", func(t *testing.T) []byte {
			return testfiles.Read(t, testfiles.Photos+"/video-001.exif6.jpeg")
		}},
		{"2:1 PNG", func(t *testing.T) []byte { return photo(t, 2046, 1023, "png") }},
		{"portrait gray PNG", func(t *testing.T) []byte { return grayPNG(t, 700, 1400) }},
		{"noise PNG", func(t *testing.T) []byte { return noisePNG(t, 900, 700) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.img(t)
			g, ok := geometryOf(data)
			if !ok {
				t.Fatal("geometryOf failed")
			}
			m := openDirect(t, dir) // fresh: its preprocessing buffers start empty
			n := requestNeed(g, m.Spec())
			crop := int64(3 * 224 * 224 * 4) // the model's first crop buffer, allocated on first use
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			if _, err := m.ClassifyBytes(data, core.ClassifyOptions{}); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			alloc := int64(after.TotalAlloc - before.TotalAlloc)
			bound := n.Total() - n.Body + crop + slack
			t.Logf("%dx%d (%d B/px): allocated %s, need %s (decoded %s work %s resize %s)", g.Width, g.Height, g.BytesPerPixel,
				mb(alloc), mb(n.Total()-n.Body), mb(n.Decoded), mb(n.Work), mb(n.Resize))
			if alloc > bound {
				t.Errorf("core allocated %d bytes, more than the %d requestNeed allows", alloc, bound)
			}
		})
	}
}

// TestRequestTooBigForMemory: an image whose preprocessing would not fit
// beside the model is refused with 413 before decoding; a small one passes.
func TestRequestTooBigForMemory(t *testing.T) {
	dir := bigInputModel(t)
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := weights.ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	e := EstimateMemory(m)
	srv := NewServer(Config{Name: "wide", Source: dirSource(dir), Budget: e.Total + 2_000_000})
	res := do(t, srv, "POST", "/classify", bytes.NewReader(photo(t, 1364, 1023, "jpeg")), 0)
	msg, _ := res.body["error"].(string)
	if res.code != 413 || !strings.Contains(msg, "1364x1023") || !strings.Contains(msg, "downscale") {
		t.Fatalf("big image: %d %s", res.code, res.raw)
	}
	if res := do(t, srv, "POST", "/classify", bytes.NewReader(photo(t, 320, 240, "jpeg")), 0); res.code != 200 {
		t.Fatalf("small image after a refused one: %d %s", res.code, res.raw)
	}
}
