package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/residual-go/residual/wasm/worker/budget"
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
	Budget    int64 // memory the model may use (0: budget.Default)
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
		cfg.Budget = budget.Default
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
	// The garbage of this request (body, decoded image, preprocessing
	// scratch) goes before the next one starts, so that every request
	// starts from the model's resident memory.
	defer runtime.GC()
	body, err := readBody(r, limit)
	if err != nil {
		if errors.Is(err, errTooLong) {
			tooBig("more than " + strconv.FormatInt(limit, 10))
			return
		}
		writeError(w, http.StatusBadRequest, "reading the request body failed: "+err.Error(), nil)
		return
	}
	// A model that cannot run is what every request hears first (503).
	model, err := s.model(r.Context())
	if err != nil {
		s.modelError(w, err)
		return
	}
	// What the image is, from its header, before any arithmetic: bytes that
	// are not a whole image of a supported format get 400 for what they
	// are, one over the pixel limit 413.
	hdr, err := preprocess.ReadHeader(body, s.cfg.MaxPixels)
	if err != nil {
		s.imageError(w, err)
		return
	}
	// Admission: the model's resident memory is fixed (nothing of earlier
	// requests stays: core's preprocessing scratch lives and dies with each
	// request, but for a tiny input's, which the estimate counts once, and
	// the GC above collects the rest), so this request fits when its own
	// need fits in what the model leaves free.
	n := budget.RequestNeed(hdr, int64(cap(body)), model.Spec(), crops)
	if free := s.free(); n.Total() > free {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"classifying this %dx%d %s would need about %s of memory (body %s, decoding %s, preprocessing %s), and %s are free beside the model in this 128 MB worker: downscale it (to 512 pixels on the shorter side, say) and send it again",
			hdr.Width, hdr.Height, hdr.Format, budget.MB(n.Total()), budget.MB(n.Body), budget.MB(n.Decode), budget.MB(n.Crops), budget.MB(max(free, 0))),
			map[string]any{"need": n.Total(), "free": free})
		return
	}
	res, err := model.ClassifyBytes(body, core.ClassifyOptions{Top: top, Crops: crops})
	body = nil
	if err != nil {
		var oe *core.OptionError
		if errors.As(err, &oe) {
			writeError(w, http.StatusBadRequest, err.Error(), nil)
			return
		}
		s.imageError(w, err)
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

// errTooLong reports a body over the limit.
var errTooLong = errors.New("body over the limit")

// readBody reads the request body, at most limit bytes, into one slice:
// of exactly Content-Length bytes when the request gives it (not a slice
// grown by doubling, whose garbage would come on top of the request's own
// memory).
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if n := r.ContentLength; n >= 0 {
		body := make([]byte, n)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, errTooLong
	}
	return body, nil
}

// imageError answers an image preprocess or core refused: 413 for one over
// the pixel limit, 400 for anything else wrong with the bytes (empty, not a
// supported format, truncated, corrupt), 500 for what is not the image's
// fault.
func (s *Server) imageError(w http.ResponseWriter, err error) {
	var ie *preprocess.ImageError
	switch {
	case errors.Is(err, preprocess.ErrTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, err.Error(), map[string]any{"max_pixels": s.cfg.MaxPixels})
	case errors.Is(err, preprocess.ErrEmpty):
		writeError(w, http.StatusBadRequest, "the body is empty: POST the image bytes (JPEG, PNG, GIF, WebP, BMP or TIFF) as the request body", nil)
	case errors.As(err, &ie):
		writeError(w, http.StatusBadRequest, err.Error(), nil)
	default:
		writeError(w, http.StatusInternalServerError, err.Error(), nil)
	}
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

// free is what a request may use: the budget less the loaded model's
// resident memory (its Estimate).
func (s *Server) free() int64 {
	if st := s.loader.status(); st.estimate != nil {
		return st.estimate.Free
	}
	return s.cfg.Budget
}

func (s *Server) model(ctx context.Context) (*core.Model, error) {
	return s.loader.get(ctx, s.sample)
}

// modelError answers a model that is not available: 503 (with the reason)
// for a model too big for the isolate or one that failed to load.
func (s *Server) modelError(w http.ResponseWriter, err error) {
	extra := map[string]any{"model": s.cfg.Name}
	var tb *budget.TooBigError
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
		Limit     int64            `json:"limit"`  // the isolate's memory (budget.IsolateLimit)
		Budget    int64            `json:"budget"` // what the model and a request may use of it
		Estimate  *budget.Estimate `json:"estimate,omitempty"`
		AfterLoad memSample        `json:"after_load"`
		Now       memSample        `json:"now"`
		Peak      memSample        `json:"peak"` // largest readings (taken after load and after each request)
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
	h.Memory.Limit, h.Memory.Budget, h.Memory.Estimate = budget.IsolateLimit, s.cfg.Budget, st.estimate
	h.Memory.AfterLoad = st.afterMem
	h.Memory.Now = s.sample()
	s.mu.Lock()
	h.Memory.Peak = s.peak
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
