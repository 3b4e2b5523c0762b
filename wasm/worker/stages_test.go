//go:build !js

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/backendtest"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/wasm/worker/budget"
)

// resnetModel writes backendtest's small ResNet (residual blocks, global
// average pooling, so class activation maps) into a directory, with shards
// small enough that stages read only some of them.
func resnetModel(t *testing.T) string {
	t.Helper()
	b := backendtest.SmallResNet(5)
	b.M.Preprocess.Scale = 1.0 / 256 // keeps the random net's softmax from saturating
	b.ShardSize = 8 << 10
	dir := t.TempDir()
	if err := b.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// cutRanges splits the model in dir at the given cut indices.
func cutRanges(t *testing.T, dir string, at ...int) []core.Range {
	t.Helper()
	m, err := weights.ReadManifest(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	cuts := core.Cuts(m)
	var rs []core.Range
	first := 0
	for _, i := range at {
		rs = append(rs, core.Range{First: first, End: cuts[i].Op})
		first = cuts[i].Op
	}
	return append(rs, core.Range{First: first, End: len(m.Ops)})
}

// post sends body to h and decodes the JSON answer.
func post(t *testing.T, h http.Handler, target string, body []byte, header map[string]string) response {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := response{code: w.Code, header: w.Header(), raw: w.Body.Bytes()}
	if err := json.Unmarshal(res.raw, &res.body); err != nil && w.Header().Get("Content-Type") != tensorType {
		t.Fatalf("POST %s: %d, not JSON: %q", target, w.Code, res.raw)
	}
	return res
}

// TestStagesMatchOneWorker: the model split into two and three stages
// answers exactly what one Worker running all of it answers: the same
// predictions and probabilities, and the same class activation maps (made
// in the last stage, placed nowhere: the grid is the center crop's).
func TestStagesMatchOneWorker(t *testing.T) {
	dir := resnetModel(t)
	one := NewServer(Config{Name: "small", Source: dirSource(dir)})
	imgs := [][]byte{photo(t, 97, 75, "jpeg"), photo(t, 64, 64, "png")}
	queries := []string{"", "?top=7&crops=10", "?cam=1", "?crops=10&cam_classes=3,9&top=2"}
	for _, at := range [][]int{{2}, {1, 4}, {0, 3, 5}} {
		stages := joinStages(dir, cutRanges(t, dir, at...), Config{Name: "small"})
		t.Run(fmt.Sprint(len(stages), "stages"), func(t *testing.T) {
			for _, img := range imgs {
				for _, q := range queries {
					want := post(t, one, "/classify"+q, img, nil)
					got := post(t, stages[0], "/classify"+q, img, nil)
					if want.code != 200 || got.code != 200 {
						t.Fatalf("%s: one Worker %d %s; stages %d %s", q, want.code, want.raw, got.code, got.raw)
					}
					var a, b classifyResponse
					json.Unmarshal(want.raw, &a)
					json.Unmarshal(got.raw, &b)
					if b.Stages != len(stages) || a.Stages != 1 {
						t.Errorf("%s: stages %d and %d", q, a.Stages, b.Stages)
					}
					if len(b.ComputeMs) != len(stages) || len(a.ComputeMs) != 1 {
						t.Errorf("%s: compute_ms %v and %v", q, a.ComputeMs, b.ComputeMs)
					}
					a.Ms, b.Ms, a.Stages, b.Stages, a.ComputeMs, b.ComputeMs = 0, 0, 0, 0, nil, nil
					ja, _ := json.Marshal(a)
					jb, _ := json.Marshal(b)
					if !bytes.Equal(ja, jb) {
						t.Errorf("%s:\none Worker %s\nstages     %s", q, ja, jb)
					}
					if strings.Contains(q, "cam") && (b.CAM == nil || len(b.CAM.Grid) != 8 || b.CAM.Index != b.Top[0].Index) {
						t.Errorf("%s: no top-1 map in %s", q, jb)
					}
					if strings.Contains(q, "cam_classes") && (len(b.CAMClasses) != 2 || b.CAMClasses[1].Index != 9) {
						t.Errorf("%s: maps of cam_classes missing in %s", q, jb)
					}
				}
			}
			// healthz at the front reports every stage, each loaded once,
			// holding only its slice.
			h := do(t, stages[0], "GET", "/healthz", nil, 0)
			if h.code != 200 || h.body["status"] != "ok" {
				t.Fatalf("healthz %d: %s", h.code, h.raw)
			}
			var hr healthResponse
			json.Unmarshal(h.raw, &hr)
			if len(hr.Stages) != len(stages) {
				t.Fatalf("healthz lists %d stages, want %d", len(hr.Stages), len(stages))
			}
			end := 0
			for i, s := range hr.Stages {
				if s.Stage != i || s.Status != "ok" || s.Loads != 1 || s.Info == nil || s.Info.First != end || s.Memory == nil || s.Memory.Estimate == nil {
					t.Fatalf("stage %d: %+v", i, s)
				}
				end = s.Info.End
				if s.Memory.Estimate.Weights < s.Info.WeightBytes {
					t.Errorf("stage %d keeps %d bytes of weights, estimated %d", i, s.Info.WeightBytes, s.Memory.Estimate.Weights)
				}
			}
		})
	}
}

// TestStageAccess: a stage answers only requests with the stage key, and
// refuses tensors it cannot use with a 4xx that says why.
func TestStageAccess(t *testing.T) {
	dir := resnetModel(t)
	stages := joinStages(dir, cutRanges(t, dir, 2), Config{Name: "small"})
	last := stages[1]
	key := last.cfg.StageKey
	ld, err := last.stage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	info := ld.stage.Info()
	good := tensorHeader{Kind: kindActivations, DType: dtypeF32, Stage: 1, Digest: ld.digest, Model: "small", N: 2, Shape: info.Input.Shape}
	message := func(h tensorHeader) []byte {
		var b bytes.Buffer
		if err := writeTensor(&b, &h, make([]float32, h.valueCount()), nil); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	withKey := map[string]string{stageKeyHeader: key}
	for _, tc := range []struct {
		name   string
		header map[string]string
		body   func() []byte
		code   int
		has    string
	}{
		{"no key", nil, func() []byte { return message(good) }, 403, "answers only the stage before it"},
		{"wrong key", map[string]string{stageKeyHeader: key + "x"}, func() []byte { return message(good) }, 403, "Service Binding"},
		{"wrong digest", withKey, func() []byte { h := good; h.Digest[0] ^= 1; return message(h) }, 409, "another manifest"},
		{"wrong model", withKey, func() []byte { h := good; h.Model = "resnet152"; return message(h) }, 409, `model "resnet152"`},
		{"wrong stage", withKey, func() []byte { h := good; h.Stage = 2; return message(h) }, 409, "for stage 2"},
		{"wrong shape", withKey, func() []byte { h := good; h.Shape[0]++; return message(h) }, 400, "of shape"},
		{"batch of 11", withKey, func() []byte { h := good; h.N = 11; return message(h) }, 400, "at most 10"},
		{"map class out of range", withKey, func() []byte { h := good; h.Maps, h.Classes = true, []int{10}; return message(h) }, 400, "map class 10"},
		{"truncated", withKey, func() []byte { b := message(good); return b[:len(b)-3] }, 400, "truncated"},
		{"not a tensor", withKey, func() []byte { return []byte(strings.Repeat("hello, this is text. ", 5)) }, 400, "not a stage tensor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := post(t, last, "/stage", tc.body(), tc.header)
			msg, _ := res.body["error"].(string)
			if res.code != tc.code || !strings.Contains(msg, tc.has) || !strings.Contains(msg, "stage 1") {
				t.Fatalf("%d %s; want %d mentioning %q and the stage", res.code, res.raw, tc.code, tc.has)
			}
		})
	}
	// The right message, and GET /healthz, need the key too.
	res := post(t, last, "/stage", message(good), withKey)
	if res.code != 200 || res.header.Get("Content-Type") != tensorType {
		t.Fatalf("a good tensor: %d %q", res.code, res.raw)
	}
	h, err := readTensorHeader(bytes.NewReader(res.raw))
	if err != nil || h.Kind != kindProbs || h.N != 2 || h.Shape != [3]int{10, 1, 1} {
		t.Fatalf("answer %+v, %v", h, err)
	}
	if res := do2(t, last, "GET", "/healthz", nil); res.code != 403 {
		t.Errorf("healthz without the key: %d", res.code)
	}
	if res := do2(t, last, "GET", "/healthz", withKey); res.code != 200 {
		t.Errorf("healthz with the key: %d %s", res.code, res.raw)
	}
	if res := do2(t, last, "POST", "/classify", withKey); res.code != 404 {
		t.Errorf("a stage's /classify: %d", res.code)
	}
	// A stage without a key refuses everything.
	bare := NewServer(Config{Name: "small", Source: dirSource(dir), Slice: slice{Stage: 1, Stages: 2, First: good.Shape[0]}})
	if res := post(t, bare, "/stage", message(good), withKey); res.code != 503 || !strings.Contains(res.body["error"].(string), "STAGE_KEY") {
		t.Errorf("a stage without STAGE_KEY: %d %s", res.code, res.raw)
	}
}

func do2(t *testing.T, h http.Handler, method, target string, header map[string]string) response {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := response{code: w.Code, header: w.Header(), raw: w.Body.Bytes()}
	json.Unmarshal(res.raw, &res.body)
	return res
}

// failing is a Service Binding that fails as told.
type failing struct {
	err    error
	status int
	body   string
	hang   bool
}

func (f failing) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
	}
	if f.hang {
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	return &http.Response{StatusCode: f.status, Body: io.NopCloser(strings.NewReader(f.body)), Header: http.Header{}}, nil
}

// TestStageDown: a next stage that cannot be reached, does not answer in
// time, answers garbage or an error: the client gets a JSON error naming
// the stage, at once.
func TestStageDown(t *testing.T) {
	dir := resnetModel(t)
	ranges := cutRanges(t, dir, 2)
	img := photo(t, 64, 64, "png")
	for _, tc := range []struct {
		name string
		next failing
		code int
		has  string
	}{
		{"unreachable", failing{err: errors.New(`Worker "residual-stage-1" not found`)}, 502, "stage 1 (next-worker) could not be reached: Worker"},
		{"timeout", failing{hang: true}, 502, "stage 1 (next-worker) did not answer within 1 s"},
		{"not JSON", failing{status: 503, body: "Service Unavailable"}, 502, `HTTP 503 "Service Unavailable"`},
		{"garbage", failing{status: 200, body: "RSTG garbage"}, 502, "not the last stage's answer"},
		{"an error further on", failing{status: 502, body: `{"error": "stage 2 (x) could not be reached", "stage": 2}`}, 502, "stage 2 (x) could not be reached"},
		{"not ready", failing{status: 503, body: `{"error": "stage 1: model x could not be loaded", "stage": 1}`}, 503, "could not be loaded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			front := NewServer(Config{Name: "small", Source: dirSource(dir), Slice: slice{Stage: 0, Stages: 2, End: ranges[0].End},
				NextName: "next-worker", Next: tc.next, StageKey: "k", Timeout: 3 * time.Second})
			start := time.Now()
			res := post(t, front, "/classify", img, nil)
			msg, _ := res.body["error"].(string)
			if res.code != tc.code || !strings.Contains(msg, tc.has) {
				t.Fatalf("%d %s; want %d with %q", res.code, res.raw, tc.code, tc.has)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %v", d)
			}
			h := do2(t, front, "GET", "/healthz", nil)
			if h.code != 503 || h.body["status"] != "error" {
				t.Errorf("healthz with stage 1 down: %d %s", h.code, h.raw)
			}
		})
	}
}

// limiter allows n requests per key.
type limiter struct {
	mu   sync.Mutex
	n    int
	seen map[string]int
}

func (l *limiter) Limit(_ context.Context, key string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen[key]++
	return l.seen[key] <= l.n, nil
}

// TestAccessControl: the API token, the allowed origins and the rate limit.
func TestAccessControl(t *testing.T) {
	dir := tinyModel(t)
	img := photo(t, 40, 30, "jpeg")
	srv := NewServer(Config{Name: "tiny", Source: dirSource(dir), Access: Access{
		APIToken: "s3cret-token", Origins: parseOrigins("https://app.example, https://b.example/"),
		Limiter: &limiter{n: 6, seen: map[string]int{}}, RatePeriod: 60}})
	req := func(method, path string, header map[string]string) response {
		r := httptest.NewRequest(method, path, bytes.NewReader(img))
		r.RemoteAddr = "192.0.2.1:1234"
		for k, v := range header {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		res := response{code: w.Code, header: w.Header(), raw: w.Body.Bytes()}
		json.Unmarshal(res.raw, &res.body)
		return res
	}
	good := map[string]string{"Authorization": "Bearer s3cret-token", "Origin": "https://app.example"}
	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
		code               int
		acao               string
	}{
		{"no token", "POST", "/classify", map[string]string{"Origin": "https://app.example"}, 401, "https://app.example"},
		{"wrong token", "POST", "/classify", map[string]string{"Authorization": "Bearer s3cret-tokeN"}, 401, ""},
		{"not bearer", "POST", "/classify", map[string]string{"Authorization": "Basic czNjcmV0"}, 401, ""},
		{"healthz without token", "GET", "/healthz", nil, 401, ""},
		{"right token", "POST", "/classify", good, 200, "https://app.example"},
		{"right token, no Origin", "POST", "/classify", map[string]string{"Authorization": "Bearer s3cret-token"}, 200, ""},
		{"second origin (trailing slash in the list)", "POST", "/classify", map[string]string{"Authorization": "Bearer s3cret-token", "Origin": "https://b.example"}, 200, "https://b.example"},
		{"disallowed origin", "POST", "/classify", map[string]string{"Authorization": "Bearer s3cret-token", "Origin": "https://evil.example"}, 403, ""},
		{"disallowed preflight", "OPTIONS", "/classify", map[string]string{"Origin": "https://evil.example"}, 403, ""},
		{"allowed preflight, no token needed", "OPTIONS", "/classify", map[string]string{"Origin": "https://app.example"}, 204, "https://app.example"},
		{"healthz with token", "GET", "/healthz", good, 200, "https://app.example"},
		{"within the limit", "POST", "/classify", good, 200, "https://app.example"},
		{"within the limit", "POST", "/classify", good, 200, "https://app.example"},
		{"over the limit", "POST", "/classify", good, 429, "https://app.example"},
	} {
		res := req(tc.method, tc.path, tc.header)
		if res.code != tc.code || res.header.Get("Access-Control-Allow-Origin") != tc.acao {
			t.Errorf("%s: %d, Access-Control-Allow-Origin %q; want %d, %q (%s)", tc.name, res.code, res.header.Get("Access-Control-Allow-Origin"), tc.code, tc.acao, res.raw)
		}
		if tc.code >= 400 && tc.method != "OPTIONS" && res.body["error"] == nil {
			t.Errorf("%s: no JSON error: %s", tc.name, res.raw)
		}
		if tc.code == 401 && res.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
		if tc.code == 429 && (res.header.Get("Retry-After") != "60" || res.body["retry_after"] != 60.0) {
			t.Errorf("%s: 429 without Retry-After: %v %s", tc.name, res.header, res.raw)
		}
		if tc.acao == "" && tc.code != 403 && res.header.Get("Vary") != "Origin" {
			t.Errorf("%s: Vary %q", tc.name, res.header.Get("Vary"))
		}
	}
	if !sameSecret("abc", "abc") || sameSecret("abc", "abd") || sameSecret("", "abc") || sameSecret("abc", "") {
		t.Error("sameSecret")
	}
	if parseOrigins("*") != nil || parseOrigins("") != nil {
		t.Error("parseOrigins of any")
	}
}

// TestStageEstimateBoundsCore: each stage's estimate, made from the
// manifest alone, bounds what core allocates for the slice: the weights it
// keeps, its activations and scratch.
func TestStageEstimateBoundsCore(t *testing.T) {
	dirs := map[string]string{"small": resnetModel(t)}
	for _, d := range []string{"../../weights/resnet50-synthetic", "../../weights/resnet50"} {
		if _, err := os.Stat(filepath.Join(d, "manifest.json")); err == nil {
			dirs[filepath.Base(d)] = d
			break
		}
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
			cuts := core.Cuts(m)
			bounds := []int{0, cuts[len(cuts)/3].Op, cuts[2*len(cuts)/3].Op, len(m.Ops)}
			for k := 1; k < len(bounds); k++ {
				e, err := budget.EstimateStage(m, bounds[k-1], bounds[k], k-1, true, budget.Default)
				if err != nil {
					t.Fatal(err)
				}
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				st, err := core.OpenStage(os.DirFS(dir), core.StageOptions{First: bounds[k-1], End: bounds[k], Threads: 1, CAM: true, MaxBatch: budget.BatchOf(bounds[k-1])})
				if err != nil {
					t.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				info := st.Info()
				// What the open stage holds (a later stage's received item and
				// batch results are the server's, the reply the front's: not
				// allocated here, so this bounds it from above).
				held := e.Weights + e.Activations + e.Scratch + e.Outputs
				if k == 1 {
					held += e.Inputs
				}
				if live := int64(after.HeapAlloc) - int64(before.HeapAlloc); live > held+1<<20 {
					t.Errorf("stage %d holds %s on the heap, estimated %s", k-1, budget.MB(live), budget.MB(held))
				}
				st.Close()
				if e.Weights < info.WeightBytes || e.Weights > info.WeightBytes+int64(len(m.Tensors))*weights.Alignment ||
					e.Activations != info.ActivationBytes || e.Scratch != info.ScratchBytes {
					t.Errorf("stage %d: estimate %+v, core %+v", k-1, e, info)
				}
				if e.Inputs != int64(budget.BatchOf(bounds[k-1]))*4*int64(info.Input.Shape[0]*info.Input.Shape[1]*info.Input.Shape[2]) {
					t.Errorf("stage %d: inputs %d for %v", k-1, e.Inputs, info.Input)
				}
				if sum := e.Weights + e.Activations + e.Scratch + e.Inputs + e.Outputs + e.Reply + e.Kept + e.Runtime + e.Request; sum != e.Total || e.Free != budget.Default-e.Resident() {
					t.Errorf("stage %d: total %d, terms %d; free %d", k-1, e.Total, sum, e.Free)
				}
				if (e.Request > 0) != (k == 1) {
					t.Errorf("stage %d: request %d", k-1, e.Request)
				}
			}
		})
	}
}

// TestPlanOfficialShapes: with the default budget the generated ResNet-50,
// -101 and -152 (make synthetic-all: the official
// graphs) split into 2, 3 and 3 stages, each within the budget; and a
// budget below what some stretch between two cuts needs is refused with
// the arithmetic.
func TestPlanOfficialShapes(t *testing.T) {
	found := false
	for _, tc := range []struct {
		dir    string
		stages int
	}{{"resnet50-synthetic", 2}, {"resnet101-synthetic", 3}, {"resnet152-synthetic", 3}} {
		raw, err := os.ReadFile(filepath.Join("../../weights", tc.dir, "manifest.json"))
		if err != nil {
			continue
		}
		found = true
		m, err := weights.ParseManifest(raw)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := budget.Plan(m, budget.DefaultStage, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range plan {
			t.Logf("%s stage %d: ops [%d, %d) %s .. %s: weights %s, total %s", tc.dir, e.Stage, e.First, e.End,
				m.Ops[e.First].Name, m.Ops[e.End-1].Name, budget.MB(e.Weights), budget.MB(e.Total))
			if e.Total > budget.DefaultStage {
				t.Errorf("%s stage %d: %s over the budget", tc.dir, e.Stage, budget.MB(e.Total))
			}
		}
		if len(plan) != tc.stages {
			t.Errorf("%s: %d stages, want %d", tc.dir, len(plan), tc.stages)
		}
		if pool, _, _ := core.MapsOp(m); plan[len(plan)-1].First > pool {
			t.Errorf("%s: the last stage starts after the maps' features", tc.dir)
		}
		if _, err := budget.Plan(m, 30_000_000, true); err == nil || !strings.Contains(err.Error(), "more than the budget") {
			t.Errorf("%s: a 30 MB budget: %v", tc.dir, err)
		}
	}
	if !found {
		t.Skip("no generated ResNet under weights/ (make synthetic-all)")
	}
}

// BenchmarkPipeline classifies one photo with the model in one handler and
// split into its planned stages, joined in this process (each hop encodes
// the tensor, calls the next handler and decodes its answer): the
// difference is what splitting costs besides the Service Binding itself.
// go test -run '^$' -bench Pipeline -benchtime 5x ./wasm/worker (needs make
// synthetic-all).
func BenchmarkPipeline(b *testing.B) {
	img, err := os.ReadFile("../../testdata/photos/video-001.jpeg")
	if err != nil {
		b.Skip(err)
	}
	for _, name := range []string{"resnet50-synthetic", "resnet101-synthetic", "resnet152-synthetic"} {
		dir := filepath.Join("../../weights", name)
		if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err != nil {
			continue
		}
		stages, err := localPipeline(dir, budget.DefaultStage, Config{})
		if err != nil {
			b.Fatal(err)
		}
		// The whole model in one handler: a budget it fits in (ResNet-152
		// needs about 190 MB), as the local runtime would allow.
		one := NewServer(Config{Name: name, Source: dirSource(dir), Budget: 250_000_000})
		for _, c := range []struct {
			name string
			h    http.Handler
		}{{"one", one}, {fmt.Sprintf("%dstages", len(stages)), stages[0]}} {
			b.Run(name+"/"+c.name, func(b *testing.B) {
				classify := func() {
					r := httptest.NewRequest(http.MethodPost, "/classify", bytes.NewReader(img))
					w := httptest.NewRecorder()
					c.h.ServeHTTP(w, r)
					if w.Code != 200 {
						b.Fatalf("%d %s", w.Code, w.Body)
					}
				}
				classify() // loads the stages: not timed (Loop starts the timer)
				for b.Loop() {
					classify()
				}
			})
		}
	}
}
