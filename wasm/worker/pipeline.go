package main

// The pipeline between stage Workers. Stage K (K >= 1) answers POST /stage:
// it checks the stage key, reads the tensor message (tensor.go) addressed to
// it, runs its slice, and either passes the result to stage K+1 through its
// Service Binding (NEXT) and relays the answer, or, as the last stage,
// answers with the class probabilities (and the raw class activation maps
// asked for). Every failure is a JSON error that names the stage it comes
// from; a stage that cannot be reached, or does not answer in time, gives
// 502 naming it, never a hang.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/wasm/worker/budget"
)

// Headers between stages.
const (
	// stageKeyHeader carries STAGE_KEY: a stage refuses a request without it.
	stageKeyHeader = "X-Residual-Stage-Key"
	// deadlineHeader is the milliseconds the caller still waits for the
	// answer: a stage gives the next one a little less, so that the
	// innermost failure is the one reported.
	deadlineHeader = "X-Residual-Deadline-Ms"
	// tensorType is the media type of a tensor message.
	tensorType = "application/x-residual-tensor"
	// computeHeader carries, back along the chain, each stage's compute
	// time for the request: "1:812.4,2:903.1" (stage:milliseconds). The
	// front subtracts their sum from the whole to show what the hops cost.
	computeHeader = "X-Residual-Compute-Ms"
)

// DefaultTimeout is how long the front waits for the rest of the pipeline:
// ten crops through the rest of ResNet-152 take about 7 s on this machine's
// WebAssembly and would take 70 s at a tenth of its speed; a hop that takes
// longer than this is reported as a stage that does not answer.
const DefaultTimeout = 240 * time.Second

// hopMargin is what each stage keeps of its own deadline to report the
// failure of the next.
const hopMargin = 2 * time.Second

// stageError is an answer to pass on: a status and a JSON body.
type stageError struct {
	code int
	body map[string]any
}

func (e *stageError) Error() string { return fmt.Sprint(e.body["error"]) }

// stageName names stage k for messages: "stage 2 (residual-stage-2)".
func (s *Server) stageName(k int) string {
	switch {
	case k == s.cfg.Slice.Stage:
		return fmt.Sprintf("stage %d (%s)", k, s.cfg.Worker)
	case k == s.cfg.Slice.Stage+1 && s.cfg.NextName != "":
		return fmt.Sprintf("stage %d (%s)", k, s.cfg.NextName)
	}
	return fmt.Sprintf("stage %d", k)
}

// unreachable is the 502 for a next stage that cannot be used.
func (s *Server) unreachable(format string, args ...any) *stageError {
	k := s.cfg.Slice.Stage + 1
	return &stageError{code: http.StatusBadGateway, body: map[string]any{
		"error":  s.stageName(k) + " " + fmt.Sprintf(format, args...),
		"stage":  k,
		"worker": s.cfg.NextName,
	}}
}

// deadline is how long this stage may wait for the next one, from the
// caller's deadline header (a stage) or the configured timeout (the front).
func (s *Server) deadline(r *http.Request) time.Duration {
	d := s.cfg.Timeout
	if v := r.Header.Get(deadlineHeader); v != "" && s.cfg.Slice.Stage > 0 {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 {
			d = min(d, time.Duration(ms)*time.Millisecond)
		}
	}
	return max(d-hopMargin, time.Second)
}

// forward sends h and values to the next stage and returns its answer, a
// kind 2 message (the caller reads and closes the body), or the error to
// answer with.
func (s *Server) forward(ctx context.Context, wait time.Duration, h *tensorHeader, values []float32) (*http.Response, *stageError) {
	if s.cfg.Next == nil {
		return nil, s.unreachable("is not configured: this is stage %d of %d and has no NEXT Service Binding (regenerate the configuration: make worker-config)", s.cfg.Slice.Stage, s.cfg.Slice.Stages)
	}
	hb := h.appendHeader(nil)
	body := io.MultiReader(bytes.NewReader(hb), bytes.NewReader(floatBytes(values)))
	ctx, cancel := context.WithTimeout(ctx, wait)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://stage.invalid/stage", body)
	if err != nil {
		cancel()
		return nil, s.unreachable("could not be called: %v", err)
	}
	req.ContentLength = int64(len(hb)) + int64(len(values))*4
	req.Header.Set("Content-Type", tensorType)
	req.Header.Set(stageKeyHeader, s.cfg.StageKey)
	req.Header.Set(deadlineHeader, strconv.FormatInt(wait.Milliseconds(), 10))
	resp, err := s.cfg.Next.RoundTrip(req)
	if err != nil {
		cancel()
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded {
			e := s.unreachable("did not answer within %.0f s", wait.Seconds())
			e.body["timeout"] = true
			return nil, e
		}
		return nil, s.unreachable("could not be reached: %v", err)
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var j map[string]any
		if json.Unmarshal(raw, &j) == nil && j["error"] != nil {
			return nil, &stageError{code: resp.StatusCode, body: j} // it names the stage it comes from
		}
		return nil, s.unreachable("could not be reached: HTTP %d %q", resp.StatusCode, bytes.TrimSpace(raw))
	}
	return resp, nil
}

// computeEntry is one stage's part of computeHeader.
func computeEntry(stage int, d time.Duration) string {
	return strconv.Itoa(stage) + ":" + strconv.FormatFloat(msRound(d), 'f', 1, 64)
}

// parseCompute reads computeHeader into per-stage milliseconds (index =
// stage), ignoring what it cannot read: it is a figure, not a contract.
func parseCompute(v string, into []float64) {
	for _, f := range strings.Split(v, ",") {
		k, ms, ok := strings.Cut(f, ":")
		i, err1 := strconv.Atoi(k)
		x, err2 := strconv.ParseFloat(ms, 64)
		if ok && err1 == nil && err2 == nil && i >= 0 && i < len(into) {
			into[i] = x
		}
	}
}

// cancelBody ends a hop's context when its answer is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// answer is the last stage's answer as the front reads it.
type answer struct {
	probs   []float32 // n x classes
	maps    []core.ClassMap
	compute string // computeHeader of the next stage's answer
}

// readAnswer reads a kind 2 message from the next stage and checks that it
// answers this request (model, manifest, batch, classes).
func (s *Server) readAnswer(resp *http.Response, ld *loaded, n int) (*answer, *stageError) {
	defer resp.Body.Close()
	bad := func(err error) *stageError {
		return s.unreachable("answered with something that is not the last stage's answer: %v", err)
	}
	h, err := readTensorHeader(resp.Body)
	if err != nil {
		return nil, bad(err)
	}
	classes := ld.stage.Info().Classes
	switch {
	case h.Kind != kindProbs:
		return nil, bad(fmt.Errorf("kind %d", h.Kind))
	case h.Model != s.cfg.Name || h.Digest != ld.digest:
		return nil, bad(fmt.Errorf("for model %s (manifest sha256 %x)", h.Model, h.Digest[:8]))
	case h.N != n || h.Shape != [3]int{classes, 1, 1}:
		return nil, bad(fmt.Errorf("%d items of %v, want %d of [%d 1 1]", h.N, h.Shape, n, classes))
	}
	a := &answer{probs: make([]float32, h.valueCount()), compute: resp.Header.Get(computeHeader)}
	flat := make([]float32, h.mapValues())
	if err := readTensorValues(resp.Body, &h, a.probs, flat); err != nil {
		return nil, bad(err)
	}
	if h.Maps {
		plane := h.GridH * h.GridW
		for i, c := range h.Classes {
			cm := core.ClassMap{Class: c, GridW: h.GridW, GridH: h.GridH}
			for j := range n {
				off := (i*n + j) * plane
				cm.Crops = append(cm.Crops, flat[off:off+plane:off+plane])
			}
			a.maps = append(a.maps, cm)
		}
	}
	return a, nil
}

// serveStage answers POST /stage on stage K >= 1.
func (s *Server) serveStage(w http.ResponseWriter, r *http.Request) {
	me := s.cfg.Slice.Stage
	select {
	case s.work <- struct{}{}:
		defer func() { <-s.work }()
	case <-r.Context().Done():
		writeError(w, http.StatusServiceUnavailable, s.stageName(me)+": the request ended while waiting for the requests before it", map[string]any{"stage": me})
		return
	}
	defer runtime.GC()
	ld, err := s.stage(r.Context())
	if err != nil {
		s.modelError(w, err)
		return
	}
	refuse := func(code int, format string, args ...any) {
		writeError(w, code, s.stageName(me)+": "+fmt.Sprintf(format, args...), map[string]any{"stage": me, "worker": s.cfg.Worker})
	}
	body := s.cfg.Body(r)
	h, err := readTensorHeader(body)
	if err != nil {
		refuse(http.StatusBadRequest, "%v", err)
		return
	}
	info := ld.stage.Info()
	switch {
	case h.Kind != kindActivations:
		refuse(http.StatusBadRequest, "a message of kind %d; a stage takes activations (kind 1)", h.Kind)
		return
	case h.Model != s.cfg.Name:
		refuse(http.StatusConflict, "a tensor of model %q; this stage runs %q: deploy every stage of one model together", h.Model, s.cfg.Name)
		return
	case h.Digest != ld.digest:
		refuse(http.StatusConflict, "a tensor computed with another manifest of %s (sha256 %x...), this stage has %x...: deploy every stage from the same conversion", h.Model, h.Digest[:6], ld.digest[:6])
		return
	case h.Stage != me:
		refuse(http.StatusConflict, "a tensor for stage %d; this is stage %d: the stage configurations disagree (regenerate them: make worker-config)", h.Stage, me)
		return
	case h.Shape != info.Input.Shape:
		refuse(http.StatusBadRequest, "a tensor of shape %v; this stage reads %s of shape %v", h.Shape, info.Input.Blob, info.Input.Shape)
		return
	case h.N > budget.MaxBatch:
		refuse(http.StatusBadRequest, "a batch of %d; at most %d crops", h.N, budget.MaxBatch)
		return
	case h.Maps && !info.Last:
		// Passed on: only the last stage makes maps.
	case h.Maps && !info.CAM:
		refuse(http.StatusBadRequest, "class activation maps were asked for, and this model has none")
		return
	}
	for _, c := range h.Classes {
		if c >= info.Classes {
			refuse(http.StatusBadRequest, "map class %d; the model has classes 0..%d", c, info.Classes-1)
			return
		}
	}
	// The batch is read and run one item at a time, into the stage's
	// outputs for the whole batch: only one item's input is held (the
	// estimate counts one), and the results are those of running the batch
	// at once, which runs image after image too.
	out := ld.outputs(h.N)
	var computed time.Duration
	for i := range h.N {
		if err := readTensorItems(body, &h, ld.in); err != nil {
			refuse(http.StatusBadRequest, "reading the tensor: %v", err)
			return
		}
		start := time.Now()
		o, err := ld.stage.Run(ld.in, 1)
		computed += time.Since(start)
		if err != nil {
			refuse(core.KindOf(err).HTTPStatus(), "%v", err)
			return
		}
		copy(out.Values[i*len(o.Values):], o.Values)
		for t, tap := range o.Taps {
			copy(out.Taps[t][i*len(tap):], tap)
		}
	}
	if err := readTensorEnd(body, &h, nil); err != nil {
		refuse(http.StatusBadRequest, "reading the tensor: %v", err)
		return
	}
	s.sample()
	if !info.Last {
		next := h
		next.Stage = me + 1
		next.Shape = info.Output.Shape
		resp, serr := s.forward(r.Context(), s.deadline(r), &next, out.Values)
		if serr != nil {
			writeJSON(w, serr.code, serr.body)
			return
		}
		defer resp.Body.Close()
		s.countRequest()
		w.Header().Set(computeHeader, computeEntry(me, computed)+","+resp.Header.Get(computeHeader))
		w.Header().Set("Content-Type", tensorType)
		if resp.ContentLength >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
		}
		w.WriteHeader(http.StatusOK)
		io.Copy(w, resp.Body)
		return
	}
	// The last stage: the probabilities, and the maps asked for.
	start := time.Now()
	ans := tensorHeader{Kind: kindProbs, DType: dtypeF32, Stage: me, Digest: ld.digest, Model: s.cfg.Name, N: h.N,
		Shape: [3]int{info.Classes, 1, 1}}
	var grids [][]float32
	if h.Maps {
		top, err := ld.stage.Top(out.Values, h.N, core.ClassifyOptions{Top: 1})
		if err != nil {
			refuse(http.StatusInternalServerError, "%v", err)
			return
		}
		maps, err := ld.stage.Maps(out, h.N, append([]int{top[0].Index}, h.Classes...))
		if err != nil {
			refuse(core.KindOf(err).HTTPStatus(), "%v", err)
			return
		}
		ans.Maps = true
		for _, m := range maps {
			ans.Classes = append(ans.Classes, m.Class)
			ans.GridH, ans.GridW = m.GridH, m.GridW
			grids = append(grids, m.Crops...)
		}
	}
	var buf bytes.Buffer
	if err := writeTensor(&buf, &ans, out.Values, grids); err != nil {
		refuse(http.StatusInternalServerError, "%v", err)
		return
	}
	s.countRequest()
	w.Header().Set(computeHeader, computeEntry(me, computed+time.Since(start)))
	w.Header().Set("Content-Type", tensorType)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}

// outputs returns the stage's results for a batch of n (values and taps,
// item after item), in buffers allocated at load for the largest batch.
func (ld *loaded) outputs(n int) core.Output {
	o := core.Output{Values: ld.out[:n*len(ld.out)/budget.MaxBatch]}
	if ld.taps != nil {
		o.Taps = [][]float32{ld.taps[:n*len(ld.taps)/budget.MaxBatch]}
	}
	return o
}

// msRound rounds a duration to 0.1 ms.
func msRound(d time.Duration) float64 { return math.Round(float64(d.Microseconds())/100) / 10 }
