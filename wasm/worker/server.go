package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/preprocess"
)

// DefaultMaxBody is the largest request body /classify accepts (8 MiB): far
// above what a photo worth classifying at 224x224 needs. Whether a body under
// the limit fits in memory depends on its pixels: see requestNeed.
const DefaultMaxBody = 8 << 20

// DefaultMaxPixels is the largest image (width*height, read from the header
// before decoding) core decodes here: 4 Mi pixels, e.g. 2048x2048. The
// memory check of each request (requestNeed) is usually stricter.
const DefaultMaxPixels = 4 << 20

// Config configures a Server.
type Config struct {
	Name      string // model directory name, e.g. "resnet50"; reported as "model"
	Source    Source
	Budget    int64 // memory the model may use (0: DefaultBudget)
	MaxBody   int64 // 0: DefaultMaxBody
	MaxPixels int   // 0: DefaultMaxPixels
	// WasmMemory, if set, returns the size of the wasm linear memory in
	// bytes (the worker's entry module provides it; nil on the host).
	WasmMemory func() int64
}

// Server is the worker's HTTP handler: POST /classify, GET /healthz, CORS.
// It is plain net/http, so the host tests drive it with httptest; in the
// worker, github.com/syumai/workers feeds it the Cloudflare requests.
type Server struct {
	cfg    Config
	loader *loader
	start  time.Time

	// work admits one classify request at a time, before its body is read:
	// core runs one inference at a time anyway (and js/wasm has one
	// thread), and the memory check of a request assumes it is alone.
	work chan struct{}

	mu       sync.Mutex
	requests int64 // classify requests answered 200
	peak     memSample
	retained int64 // preprocessing buffers core keeps from earlier requests (requestNeed)
}

// memSample is one reading of the memory figures.
type memSample struct {
	WasmBytes   int64 `json:"wasm_bytes,omitempty"` // wasm linear memory (never shrinks: current = peak)
	GoHeapAlloc int64 `json:"go_heap_alloc"`        // bytes of allocated heap objects (live and not yet collected)
	GoHeapSys   int64 `json:"go_heap_sys"`          // heap memory obtained by the Go runtime
	GoSys       int64 `json:"go_sys"`               // all memory obtained by the Go runtime
}

// NewServer returns a Server; the model is loaded on first use.
func NewServer(cfg Config) *Server {
	if cfg.Budget <= 0 {
		cfg.Budget = DefaultBudget
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxPixels <= 0 {
		cfg.MaxPixels = DefaultMaxPixels
	}
	return &Server{
		cfg:   cfg,
		start: time.Now(),
		work:  make(chan struct{}, 1),
		loader: &loader{name: cfg.Name, src: cfg.Source, budget: cfg.Budget,
			maxPixels: cfg.MaxPixels},
	}
}

func (s *Server) sample() memSample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memSample{GoHeapAlloc: int64(ms.HeapAlloc), GoHeapSys: int64(ms.HeapSys), GoSys: int64(ms.Sys)}
	if s.cfg.WasmMemory != nil {
		m.WasmBytes = s.cfg.WasmMemory()
	}
	s.mu.Lock()
	s.peak = memSample{
		WasmBytes:   max(s.peak.WasmBytes, m.WasmBytes),
		GoHeapAlloc: max(s.peak.GoHeapAlloc, m.GoHeapAlloc),
		GoHeapSys:   max(s.peak.GoHeapSys, m.GoHeapSys),
		GoSys:       max(s.peak.GoSys, m.GoSys),
	}
	s.mu.Unlock()
	return m
}

// statusWriter remembers whether a response was started, so that a
// recovered panic answers 500 only when nothing was sent yet.
type statusWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) { w.wrote = true; w.ResponseWriter.WriteHeader(code) }
func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// ServeHTTP implements http.Handler. A panic anywhere below is recovered and
// answered with 500 JSON; the isolate keeps serving.
func (s *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w := &statusWriter{ResponseWriter: rw}
	defer func() {
		if v := recover(); v != nil {
			println("worker: recovered panic:", fmt.Sprint(v), "\n", string(debug.Stack()))
			if !w.wrote {
				writeError(w, http.StatusInternalServerError, fmt.Sprintf("internal error (a bug in residual; please report it): %v", v), nil)
			}
		}
	}()
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Content-Length")

	var allow string
	var serve func(http.ResponseWriter, *http.Request)
	switch r.URL.Path {
	case "/classify":
		allow, serve = "POST, OPTIONS", s.classify
		if r.Method != http.MethodPost {
			serve = nil
		}
	case "/healthz":
		allow, serve = "GET, HEAD, OPTIONS", s.healthz
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			serve = nil
		}
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s: use POST /classify or GET /healthz", r.URL.Path), nil)
		return
	}
	switch {
	case r.Method == http.MethodOptions: // CORS preflight
		h.Set("Allow", allow)
		h.Set("Access-Control-Allow-Methods", allow)
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
	case serve == nil:
		h.Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s is not supported; allowed: %s", r.Method, r.URL.Path, allow), nil)
	default:
		serve(w, r)
	}
}

// classifyResponse is the body of a successful POST /classify.
type classifyResponse struct {
	Model     string            `json:"model"`
	Synthetic bool              `json:"synthetic,omitempty"`
	Top       []core.Prediction `json:"top"`
	Ms        float64           `json:"ms"`
}

func (s *Server) classify(w http.ResponseWriter, r *http.Request) {
	top, crops, err := classifyOptions(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	limit := s.cfg.MaxBody
	tooBig := func(n string) {
		writeError(w, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("the body is %s bytes; the limit is %d bytes (%d MiB): send a smaller image", n, limit, limit>>20),
			map[string]any{"limit": limit})
	}
	if r.ContentLength > limit {
		tooBig(strconv.FormatInt(r.ContentLength, 10))
		return
	}
	select {
	case s.work <- struct{}{}:
		defer func() { <-s.work }()
	case <-r.Context().Done():
		writeError(w, http.StatusServiceUnavailable, "the request ended while waiting for the requests before it", nil)
		return
	}
	// The garbage of this request (body, decoded image) goes before the
	// next one starts, so wasm memory, which never shrinks, stays small.
	defer runtime.GC()
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the request body failed: "+err.Error(), nil)
		return
	}
	if int64(len(body)) > limit {
		tooBig("more than " + strconv.FormatInt(limit, 10))
		return
	}
	if len(body) == 0 {
		writeError(w, http.StatusBadRequest, "the body is empty: POST the image bytes (JPEG, PNG, GIF, WebP, BMP or TIFF) as the request body", nil)
		return
	}
	model, err := s.model(r.Context())
	if err != nil {
		s.modelError(w, err)
		return
	}
	if g, ok := geometryOf(body); ok {
		n := requestNeed(g, model.Spec())
		s.mu.Lock()
		free := s.cfg.Budget - s.resident() - s.retained
		fits := n.Total() <= free
		if fits {
			s.retained = max(s.retained, n.Retained)
		}
		s.mu.Unlock()
		if !fits {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
				"classifying this %dx%d image would need about %s of memory, and %s are free beside the model in this 128 MB worker: downscale it (to 512 pixels on the shorter side, say) and send it again",
				g.Width, g.Height, mb(n.Total()), mb(max(free, 0))), map[string]any{"need": n.Total(), "free": free})
			return
		}
	}
	res, err := model.ClassifyBytes(body, core.ClassifyOptions{Top: top, Crops: crops})
	body = nil
	if err != nil {
		var ie *preprocess.ImageError
		var oe *core.OptionError
		switch {
		case errors.Is(err, preprocess.ErrTooLarge):
			writeError(w, http.StatusRequestEntityTooLarge, err.Error(), map[string]any{"max_pixels": s.cfg.MaxPixels})
		case errors.As(err, &ie), errors.As(err, &oe):
			writeError(w, http.StatusBadRequest, err.Error(), nil)
		default:
			writeError(w, http.StatusInternalServerError, err.Error(), nil)
		}
		return
	}
	s.sample() // the request's peak: wasm memory never shrinks, so this reading includes it
	s.mu.Lock()
	s.requests++
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, classifyResponse{
		Model:     s.cfg.Name,
		Synthetic: model.Info().Synthetic,
		Top:       res.Top,
		Ms:        math.Round(float64(res.Elapsed.Microseconds())/100) / 10,
	})
}

// classifyOptions parses ?top=K (1..1000, default 5) and ?crops=1|10.
func classifyOptions(r *http.Request) (top, crops int, err error) {
	q := r.URL.Query()
	top, crops = 5, 1
	if v := q.Get("top"); v != "" || q.Has("top") {
		top, err = strconv.Atoi(v)
		if err != nil || top < 1 || top > 1000 {
			return 0, 0, fmt.Errorf("top=%q: want an integer from 1 to 1000", v)
		}
	}
	if v := q.Get("crops"); v != "" || q.Has("crops") {
		if v != "1" && v != "10" {
			return 0, 0, fmt.Errorf("crops=%q: want 1 (center crop) or 10 (corners, center and mirrors)", v)
		}
		crops, _ = strconv.Atoi(v)
	}
	return top, crops, nil
}

// resident is the memory the loaded model keeps (its Estimate); s.mu held.
func (s *Server) resident() int64 {
	if st := s.loader.status(); st.estimate != nil {
		return st.estimate.Resident()
	}
	return 0
}

// geometryOf reads an image's size and color model from its header, without
// decoding it. ok is false for bytes image.DecodeConfig cannot read; core
// then reports what is wrong with them.
func geometryOf(body []byte) (g imageGeometry, ok bool) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(body))
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 {
		return g, false
	}
	g = imageGeometry{Width: cfg.Width, Height: cfg.Height, BytesPerPixel: 8, Body: int64(len(body))}
	switch cfg.ColorModel {
	case color.GrayModel, color.AlphaModel:
		g.BytesPerPixel = 1
	case color.Gray16Model, color.Alpha16Model:
		g.BytesPerPixel = 2
	case color.YCbCrModel:
		g.BytesPerPixel = 3 // 4:4:4 at most
	case color.RGBAModel, color.NRGBAModel, color.CMYKModel, color.NYCbCrAModel:
		g.BytesPerPixel = 4
	default:
		if _, paletted := cfg.ColorModel.(color.Palette); paletted {
			g.BytesPerPixel = 1 + 4 // and a GIF frame smaller than its screen gets an NRGBA canvas
		}
	}
	if format == "jpeg" {
		l, ok := parseJPEGLayout(body)
		if !ok {
			return g, false
		}
		g.JPEG = &l
	}
	return g, true
}

func (s *Server) model(ctx context.Context) (*core.Model, error) {
	return s.loader.get(ctx, s.sample)
}

// modelError answers a model that is not available: 503 (with the reason)
// for a model too big for the isolate or one that failed to load.
func (s *Server) modelError(w http.ResponseWriter, err error) {
	extra := map[string]any{"model": s.cfg.Name}
	var tb *TooBigError
	if errors.As(err, &tb) {
		extra["estimate"] = tb.Estimate
		extra["budget"] = tb.Budget
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		writeError(w, http.StatusServiceUnavailable, "the request ended while the model was loading: "+err.Error(), extra)
		return
	}
	writeError(w, http.StatusServiceUnavailable, err.Error(), extra)
}

// healthResponse is the body of GET /healthz.
type healthResponse struct {
	Status    string     `json:"status"` // "ok" or "error"
	Model     string     `json:"model"`
	Error     string     `json:"error,omitempty"`
	Info      *core.Info `json:"info,omitempty"`
	Loads     int        `json:"loads"`         // successful weight loads in this isolate
	Attempts  int        `json:"load_attempts"` // loads started (failures included)
	LoadMs    float64    `json:"load_ms"`       // the last successful load: fetch, verify (sha256), plan
	FetchMs   float64    `json:"fetch_ms"`      // of which fetching the files
	Requests  int64      `json:"requests"`      // classify requests answered 200
	UptimeMs  int64      `json:"uptime_ms"`
	MaxBody   int64      `json:"max_body"`
	MaxPixels int        `json:"max_pixels"`
	Memory    struct {
		Limit     int64     `json:"limit"`    // the isolate's memory (IsolateLimit)
		Budget    int64     `json:"budget"`   // what the model may use of it
		Retained  int64     `json:"retained"` // preprocessing buffers kept from earlier requests
		Estimate  *Estimate `json:"estimate,omitempty"`
		AfterLoad memSample `json:"after_load"`
		Now       memSample `json:"now"`
		Peak      memSample `json:"peak"` // largest readings (taken after load and after each request)
	} `json:"memory"`
}

// healthz loads the model if needed (so a 200 means /classify can answer)
// and reports it: 200 when it is loaded, 503 with the reason otherwise.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	_, err := s.model(r.Context())
	st := s.loader.status()
	var h healthResponse
	h.Status, h.Model = "ok", s.cfg.Name
	code := http.StatusOK
	if err != nil {
		h.Status, h.Error, code = "error", err.Error(), http.StatusServiceUnavailable
	}
	if st.model != nil {
		info := st.model.Info()
		h.Info = &info
	}
	h.Loads, h.Attempts = st.loads, st.attempts
	h.LoadMs, h.FetchMs = float64(st.loadTime.Milliseconds()), float64(st.fetchDur.Milliseconds())
	s.mu.Lock()
	h.Requests = s.requests
	s.mu.Unlock()
	h.UptimeMs = time.Since(s.start).Milliseconds()
	h.MaxBody, h.MaxPixels = s.cfg.MaxBody, s.cfg.MaxPixels
	h.Memory.Limit, h.Memory.Budget, h.Memory.Estimate = IsolateLimit, s.cfg.Budget, st.estimate
	h.Memory.AfterLoad = st.afterMem
	h.Memory.Now = s.sample()
	s.mu.Lock()
	h.Memory.Peak, h.Memory.Retained = s.peak, s.retained
	s.mu.Unlock()
	writeJSON(w, code, h)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]string{"error": "encoding the response failed: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// writeError answers {"error": msg} plus any extra fields.
func writeError(w http.ResponseWriter, code int, msg string, extra map[string]any) {
	body := map[string]any{"error": msg}
	for k, v := range extra {
		body[k] = v
	}
	writeJSON(w, code, body)
}
