package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	Budget    int64 // memory this Worker's Go side may use (0: budget.Default)
	MaxBody   int64 // 0: DefaultMaxBody
	MaxPixels int   // 0: DefaultMaxPixels
	// WasmMemory, if set, returns the size of the wasm linear memory in
	// bytes (the worker's entry module provides it; nil on the host).
	WasmMemory func() int64

	// Slice is the part of the model this Worker runs: stage 0 (the front)
	// answers the public API; stages 1 and later answer only POST /stage and
	// GET /healthz from the stage before them. The zero Slice is the whole
	// model in one Worker.
	Slice slice
	// Worker is this Worker's name and NextName the next stage's (messages).
	Worker, NextName string
	// Next reaches the next stage (its Service Binding); nil in the last.
	Next http.RoundTripper
	// StageKey is the secret the Workers of a pipeline share: stages
	// refuse requests without it.
	StageKey string
	// Timeout bounds the front's wait for the rest of the pipeline (0:
	// DefaultTimeout); each stage waits a little less than its caller.
	Timeout time.Duration
	// Access says who may use the front (access.go).
	Access Access
	// Body reads a request's body (the Worker reads the runtime's stream
	// straight into Go memory); nil: r.Body.
	Body func(r *http.Request) io.Reader
}

// Server is the worker's HTTP handler: POST /classify, GET /healthz, CORS
// (the front), POST /stage and GET /healthz (the other stages). It is plain
// net/http, so the host tests drive it with httptest; in the worker,
// github.com/syumai/workers feeds it the Cloudflare requests.
type Server struct {
	cfg    Config
	loader *loader
	start  time.Time

	// work admits one request that runs the network at a time, before its
	// body is read: core runs one inference at a time anyway (and js/wasm
	// has one thread), and the memory check of a request assumes it is alone.
	work chan struct{}

	mu       sync.Mutex
	requests int64 // requests answered 200 (classify, or stage)
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
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Slice.Stages <= 0 {
		cfg.Slice.Stages = 1
	}
	if cfg.Worker == "" {
		cfg.Worker = "residual"
	}
	if cfg.Body == nil {
		cfg.Body = func(r *http.Request) io.Reader { return r.Body }
	}
	return &Server{
		cfg:   cfg,
		start: time.Now(),
		work:  make(chan struct{}, 1),
		loader: &loader{name: cfg.Name, src: cfg.Source, budget: cfg.Budget,
			maxPixels: cfg.MaxPixels, slice: cfg.Slice},
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
	if s.cfg.Slice.Stage > 0 {
		s.serveStageRoutes(w, r)
		return
	}
	h := w.Header()
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
		s.cfg.Access.cors(h, r)
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s: use POST /classify or GET /healthz", r.URL.Path), nil)
		return
	}
	if !s.cfg.Access.cors(h, r) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("requests from the origin %q are not allowed (ALLOWED_ORIGINS)", r.Header.Get("Origin")), nil)
		return
	}
	switch {
	case r.Method == http.MethodOptions: // CORS preflight
		h.Set("Allow", allow)
		h.Set("Access-Control-Allow-Methods", allow)
		h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
	case serve == nil:
		h.Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s is not supported; allowed: %s", r.Method, r.URL.Path, allow), nil)
	case !s.cfg.Access.admit(w, r):
	default:
		serve(w, r)
	}
}

// serveStageRoutes answers a stage's requests: only those that carry the
// stage key (the stage before it, through its Service Binding).
func (s *Server) serveStageRoutes(w http.ResponseWriter, r *http.Request) {
	me := s.cfg.Slice.Stage
	extra := map[string]any{"stage": me, "worker": s.cfg.Worker}
	if s.cfg.StageKey == "" {
		writeError(w, http.StatusServiceUnavailable, s.stageName(me)+" has no STAGE_KEY secret, so it cannot tell its caller from anyone else: set the same STAGE_KEY on every Worker of the pipeline (make deploy does)", extra)
		return
	}
	if !sameSecret(r.Header.Get(stageKeyHeader), s.cfg.StageKey) {
		writeError(w, http.StatusForbidden, s.stageName(me)+" answers only the stage before it, through its Service Binding; the public API is the front Worker's POST /classify", extra)
		return
	}
	switch {
	case r.URL.Path == "/stage" && r.Method == http.MethodPost:
		s.serveStage(w, r)
	case r.URL.Path == "/healthz" && r.Method == http.MethodGet:
		s.healthz(w, r)
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s: no such endpoint %s %s (POST /stage, GET /healthz)", s.stageName(me), r.Method, r.URL.Path), extra)
	}
}

// classifyResponse is the body of a successful POST /classify.
type classifyResponse struct {
	Model     string            `json:"model"`
	Synthetic bool              `json:"synthetic,omitempty"`
	Top       []core.Prediction `json:"top"`
	CAM       *camJSON          `json:"cam,omitempty"`
	// CAMClasses are the maps of the classes asked for with cam_classes.
	CAMClasses []camJSON `json:"cam_classes,omitempty"`
	Stages     int       `json:"stages"` // the Workers that ran it
	Ms         float64   `json:"ms"`
	// ComputeMs is each stage's own compute time (the front's with
	// decoding and preprocessing); Ms minus their sum is what the hops
	// between stages cost. (In Cloudflare's runtime clocks advance only
	// across I/O, so these read low there; wrangler dev measures them.)
	ComputeMs []float64 `json:"compute_ms"`
}

// camJSON is a class activation map: the center crop's raw map, GridH rows
// of GridW values (core.ClassMap.Grid), as tools/classify -json writes it.
type camJSON struct {
	Index int         `json:"index"`
	Grid  [][]float32 `json:"grid"`
}

// query reads the options of ?top=&crops=&cam=&cam_classes= by name.
func query(r *http.Request) func(string) (string, bool) {
	q := r.URL.Query()
	return func(name string) (string, bool) {
		if !q.Has(name) {
			return "", false
		}
		return q.Get(name), true
	}
}

func (s *Server) classify(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	o, err := core.ParseClassifyOptions(query(r))
	if err != nil {
		writeError(w, core.KindOf(err).HTTPStatus(), err.Error(), nil)
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
	// starts from the stage's resident memory.
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
	if len(body) == 0 {
		writeError(w, http.StatusBadRequest, "the body is empty: POST the image bytes (JPEG, PNG, GIF, WebP, BMP or TIFF) as the request body", nil)
		return
	}
	// A model that cannot run is what every request hears first (503).
	ld, err := s.stage(r.Context())
	if err != nil {
		s.modelError(w, err)
		return
	}
	st := ld.stage
	if o, err = st.Normalize(o); err != nil {
		writeError(w, core.KindOf(err).HTTPStatus(), err.Error(), nil)
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
	// Admission: the stage's resident memory is fixed (nothing of earlier
	// requests stays: core's preprocessing scratch lives and dies with each
	// request, but for a tiny input's, which the estimate counts once, and
	// the GC above collects the rest), so this request fits when its own
	// need fits in what the stage leaves free.
	n := budget.RequestNeed(hdr, int64(cap(body)), budget.SpecOf(st.Manifest()), o.Crops)
	if free := s.free(); n.Total() > free {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"classifying this %dx%d %s would need about %s of memory (body %s, decoding %s, preprocessing %s), and %s are free beside the model in this Worker: downscale it (to 512 pixels on the shorter side, say) and send it again",
			hdr.Width, hdr.Height, hdr.Format, budget.MB(n.Total()), budget.MB(n.Body), budget.MB(n.Decode), budget.MB(n.Crops), budget.MB(max(free, 0))),
			map[string]any{"need": n.Total(), "free": free})
		return
	}
	computeStart := time.Now()
	img, err := st.Decode(body)
	body = nil
	if err != nil {
		s.imageError(w, err)
		return
	}
	out, _, err := st.RunImage(img, o.Crops)
	img = nil
	if err != nil {
		s.imageError(w, err)
		return
	}
	frontCompute := time.Since(computeStart)
	s.sample()
	info := st.Info()
	var ans *answer
	if info.Last {
		ans = &answer{probs: out.Values}
	} else {
		h := tensorHeader{Kind: kindActivations, DType: dtypeF32, Stage: 1, Digest: ld.digest, Model: s.cfg.Name,
			N: o.Crops, Shape: info.Output.Shape, Maps: o.CAM, Classes: o.CAMClasses}
		resp, serr := s.forward(r.Context(), s.deadline(r), &h, out.Values)
		if serr == nil {
			ans, serr = s.readAnswer(resp, ld, o.Crops)
		}
		if serr != nil {
			writeJSON(w, serr.code, serr.body)
			return
		}
	}
	top, err := st.Top(ans.probs, o.Crops, o)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error(), nil)
		return
	}
	res := classifyResponse{Model: s.cfg.Name, Synthetic: info.Synthetic, Top: top, Stages: s.cfg.Slice.Stages,
		ComputeMs: make([]float64, s.cfg.Slice.Stages)}
	res.ComputeMs[0] = msRound(frontCompute)
	parseCompute(ans.compute, res.ComputeMs)
	if o.CAM {
		maps := ans.maps
		if info.Last {
			if maps, err = st.Maps(out, o.Crops, append([]int{top[0].Index}, o.CAMClasses...)); err != nil {
				writeError(w, core.KindOf(err).HTTPStatus(), err.Error(), nil)
				return
			}
		}
		if len(maps) != 1+len(o.CAMClasses) || maps[0].Class != top[0].Index {
			writeError(w, http.StatusBadGateway, fmt.Sprintf("the last stage returned %d maps for %d classes, the first of class %d, not the top-1 %d", len(maps), 1+len(o.CAMClasses), maps[0].Class, top[0].Index), nil)
			return
		}
		res.CAM = &camJSON{Index: maps[0].Class, Grid: maps[0].Grid()}
		for _, m := range maps[1:] {
			res.CAMClasses = append(res.CAMClasses, camJSON{Index: m.Class, Grid: m.Grid()})
		}
	}
	s.countRequest()
	res.Ms = msRound(time.Since(start))
	writeJSON(w, http.StatusOK, res)
}

// imageError answers an error of decoding or preprocessing the image.
func (s *Server) imageError(w http.ResponseWriter, err error) {
	k := core.KindOf(err)
	var extra map[string]any
	if k == core.KindTooLarge {
		extra = map[string]any{"max_pixels": s.cfg.MaxPixels}
	}
	writeError(w, k.HTTPStatus(), err.Error(), extra)
}

func (s *Server) countRequest() {
	s.mu.Lock()
	s.requests++
	s.mu.Unlock()
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

// free is what a request may use: the budget less the loaded stage's
// resident memory (its Estimate).
func (s *Server) free() int64 {
	if st := s.loader.status(); st.estimate != nil {
		return st.estimate.Free
	}
	return s.cfg.Budget
}

func (s *Server) stage(ctx context.Context) (*loaded, error) {
	return s.loader.get(ctx, s.sample)
}

// modelError answers a stage that is not available: 503 (with the reason)
// for a slice too big for the isolate or one that failed to load.
func (s *Server) modelError(w http.ResponseWriter, err error) {
	extra := map[string]any{"model": s.cfg.Name}
	if s.cfg.Slice.Stages > 1 {
		extra["stage"], extra["worker"] = s.cfg.Slice.Stage, s.cfg.Worker
	}
	var tb *budget.TooBigError
	if errors.As(err, &tb) {
		extra["estimate"] = tb.Estimate
		extra["budget"] = tb.Budget
	}
	msg := err.Error()
	if s.cfg.Slice.Stages > 1 {
		msg = s.stageName(s.cfg.Slice.Stage) + ": " + msg
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		msg = "the request ended while the model was loading: " + msg
	}
	writeError(w, http.StatusServiceUnavailable, msg, extra)
}

// stageHealth is one stage's state in GET /healthz.
type stageHealth struct {
	Stage    int             `json:"stage"`
	Worker   string          `json:"worker"`
	Status   string          `json:"status"` // "ok", "error" or "unreachable"
	Error    string          `json:"error,omitempty"`
	Info     *core.StageInfo `json:"info,omitempty"`
	Loads    int             `json:"loads"`         // successful weight loads in this isolate
	Attempts int             `json:"load_attempts"` // loads started (failures included)
	LoadMs   float64         `json:"load_ms"`       // the last successful load: fetch, verify (sha256), plan
	FetchMs  float64         `json:"fetch_ms"`      // of which fetching and verifying the files
	Requests int64           `json:"requests"`      // requests answered 200
	UptimeMs int64           `json:"uptime_ms"`
	Memory   *stageMemory    `json:"memory,omitempty"`
}

// stageMemory is a stage's memory in GET /healthz.
type stageMemory struct {
	Limit     int64            `json:"limit"`  // the isolate's memory (budget.IsolateLimit)
	Budget    int64            `json:"budget"` // what the Go side may use of it
	Estimate  *budget.Estimate `json:"estimate,omitempty"`
	AfterLoad memSample        `json:"after_load"`
	Now       memSample        `json:"now"`
	Peak      memSample        `json:"peak"` // largest readings (taken after load and after each request)
}

// healthResponse is the body of GET /healthz: this stage's state, and in
// Stages every stage's from this one on (the front: all of them).
type healthResponse struct {
	Status    string `json:"status"` // "ok" when every stage is
	Model     string `json:"model"`
	MaxBody   int64  `json:"max_body,omitempty"`
	MaxPixels int    `json:"max_pixels,omitempty"`
	stageHealth
	Stages []stageHealth `json:"stages"`
}

// health is this stage's own state; it loads the stage if needed.
func (s *Server) health(r *http.Request) stageHealth {
	_, err := s.stage(r.Context())
	st := s.loader.status()
	h := stageHealth{Stage: s.cfg.Slice.Stage, Worker: s.cfg.Worker, Status: "ok"}
	if err != nil {
		h.Status, h.Error = "error", err.Error()
	}
	if st.model != nil {
		info := st.model.stage.Info()
		h.Info = &info
	}
	h.Loads, h.Attempts = st.loads, st.attempts
	h.LoadMs, h.FetchMs = float64(st.loadTime.Milliseconds()), float64(st.fetchDur.Milliseconds())
	h.UptimeMs = time.Since(s.start).Milliseconds()
	m := &stageMemory{Limit: budget.IsolateLimit, Budget: s.cfg.Budget, Estimate: st.estimate, AfterLoad: st.afterMem}
	m.Now = s.sample()
	s.mu.Lock()
	h.Requests = s.requests
	m.Peak = s.peak
	s.mu.Unlock()
	h.Memory = m
	return h
}

// healthz answers GET /healthz: 200 when every stage from this one on is
// loaded (a 200 at the front means /classify can answer), else 503 with
// the reasons. It loads the stages that are not.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	res := healthResponse{Status: "ok", Model: s.cfg.Name, stageHealth: s.health(r)}
	if s.cfg.Slice.Stage == 0 {
		res.MaxBody, res.MaxPixels = s.cfg.MaxBody, s.cfg.MaxPixels
	}
	res.Stages = []stageHealth{res.stageHealth}
	if s.cfg.Slice.Stage+1 < s.cfg.Slice.Stages {
		res.Stages = append(res.Stages, s.nextHealth(r)...)
	}
	code := http.StatusOK
	for _, h := range res.Stages {
		if h.Status != "ok" {
			res.Status, code = "error", http.StatusServiceUnavailable
		}
	}
	if res.Status != "ok" && res.Error == "" {
		for _, h := range res.Stages {
			if h.Error != "" {
				res.Error = fmt.Sprintf("stage %d (%s): %s", h.Stage, h.Worker, h.Error)
				break
			}
		}
	}
	writeJSON(w, code, res)
}

// nextHealth asks the next stage for its /healthz (and so for every later
// stage's).
func (s *Server) nextHealth(r *http.Request) []stageHealth {
	k := s.cfg.Slice.Stage + 1
	down := func(format string, args ...any) []stageHealth {
		return []stageHealth{{Stage: k, Worker: s.cfg.NextName, Status: "unreachable", Error: fmt.Sprintf(format, args...)}}
	}
	if s.cfg.Next == nil {
		return down("no NEXT Service Binding is configured (regenerate the configuration: make worker-config)")
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.deadline(r))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://stage.invalid/healthz", nil)
	if err != nil {
		return down("%v", err)
	}
	req.Header.Set(stageKeyHeader, s.cfg.StageKey)
	resp, err := s.cfg.Next.RoundTrip(req)
	if err != nil {
		return down("could not be reached: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var h healthResponse
	if err := json.Unmarshal(raw, &h); err != nil || len(h.Stages) == 0 {
		return down("could not be reached: HTTP %d %q", resp.StatusCode, bytes.TrimSpace(raw[:min(len(raw), 300)]))
	}
	return h.Stages
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
