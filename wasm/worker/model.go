package main

import (
	"context"
	"errors"
	"fmt"
	"image"
	"runtime"
	"sync"
	"time"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/preprocess"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/wasm/jsbridge"
	"github.com/residual-go/residual/wasm/worker/budget"
)

// Source fetches the files of one model directory (manifest.json and the
// shards it lists). In the worker it reads the static-assets binding; on the
// host, a directory.
type Source interface {
	// Fetch returns the whole file. size is the length the manifest gives
	// (-1 for the manifest itself); a Source may use it to allocate once and
	// must fail when the file has another length.
	Fetch(ctx context.Context, name string, size int64) ([]byte, error)
}

// LoadError reports a model that could not be fetched or opened.
type LoadError struct {
	Name string
	Err  error
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("model %s could not be loaded: %v", e.Name, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// loader loads the model once and shares it: concurrent first callers wait
// for the same load, and a failed load (other than a model too big for the
// budget, which is final) is tried again by the next caller.
type loader struct {
	name      string
	src       Source
	budget    int64
	maxPixels int

	mu       sync.Mutex
	model    *core.Model
	estimate *budget.Estimate
	final    error         // a *budget.TooBigError: never retried
	running  chan struct{} // closed when the running load ends; nil when none runs
	lastErr  error
	loads    int // successful loads
	attempts int
	loadTime time.Duration
	fetchDur time.Duration // of loadTime: fetching manifest and shards
	afterMem memSample     // memory right after the last successful load
}

// get returns the loaded model, loading it first if needed. sample, if not
// nil, is taken right after a successful load.
func (l *loader) get(ctx context.Context, sample func() memSample) (*core.Model, error) {
	l.mu.Lock()
	for {
		switch {
		case l.model != nil:
			m := l.model
			l.mu.Unlock()
			return m, nil
		case l.final != nil:
			err := l.final
			l.mu.Unlock()
			return nil, err
		case l.running == nil:
			done := make(chan struct{})
			l.running = done
			l.attempts++
			l.mu.Unlock()

			start := time.Now()
			m, est, err := l.load(ctx)
			l.mu.Lock()
			l.running = nil
			close(done)
			l.estimate = est
			if err != nil {
				var tb *budget.TooBigError
				if errors.As(err, &tb) {
					l.final = err
				}
				l.lastErr = err
				l.mu.Unlock()
				return nil, err
			}
			l.model, l.lastErr = m, nil
			l.loads++
			l.loadTime = time.Since(start)
			l.mu.Unlock()
			// The shards' transient garbage (manifest, JS chunks) goes now,
			// so that the first request starts from the resident set.
			runtime.GC()
			placeInputs(m)
			reserve(est.Free)
			if sample != nil {
				s := sample()
				l.mu.Lock()
				l.afterMem = s
				l.mu.Unlock()
			}
			return m, nil
		default:
			// Another request is loading: wait for it, then look again. Its
			// error (if any) is ours too; we do not start a second attempt.
			done := l.running
			l.mu.Unlock()
			select {
			case <-done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			l.mu.Lock()
			if l.model == nil && l.final == nil && l.lastErr != nil {
				err := l.lastErr
				l.mu.Unlock()
				return nil, err
			}
		}
	}
}

// load fetches the manifest, checks the memory estimate against the budget,
// then fetches every shard into its own Go slice (the only copy: core keeps
// those bytes as the float16 weights) and opens the model.
func (l *loader) load(ctx context.Context) (model *core.Model, est *budget.Estimate, err error) {
	defer func() {
		// A panic while loading must not leave waiters blocked forever:
		// it becomes this attempt's error, and the next request retries.
		if v := recover(); v != nil {
			model, err = nil, &LoadError{Name: l.name, Err: fmt.Errorf("internal error (a bug in residual; please report it): %v", v)}
		}
	}()
	raw, err := l.src.Fetch(ctx, weights.ManifestFile, -1)
	if err != nil {
		return nil, nil, &LoadError{Name: l.name, Err: err}
	}
	m, err := weights.ParseManifest(raw)
	if err != nil {
		return nil, nil, &LoadError{Name: l.name, Err: err}
	}
	e := budget.EstimateMemory(m, l.budget)
	est = &e
	if e.Total > l.budget {
		return nil, est, &budget.TooBigError{Name: l.name, Estimate: e, Budget: l.budget}
	}
	fetchStart := time.Now()
	fsys := jsbridge.NewMemFS()
	if err := fsys.Add(weights.ManifestFile, raw); err != nil {
		return nil, est, &LoadError{Name: l.name, Err: err}
	}
	for _, s := range m.Shards {
		b, err := l.src.Fetch(ctx, s.File, s.Size)
		if err != nil {
			return nil, est, &LoadError{Name: l.name, Err: err}
		}
		if int64(len(b)) != s.Size {
			return nil, est, &LoadError{Name: l.name, Err: fmt.Errorf("%s is %d bytes, the manifest says %d: convert and deploy the model again", s.File, len(b), s.Size)}
		}
		if err := fsys.Add(s.File, b); err != nil {
			return nil, est, &LoadError{Name: l.name, Err: err}
		}
	}
	fetched := time.Since(fetchStart)
	defer func() {
		l.mu.Lock()
		l.fetchDur = fetched
		l.mu.Unlock()
	}()
	model, err = core.Open(fsys, core.Options{Threads: 1, MaxPixels: l.maxPixels})
	if err != nil {
		return nil, est, &LoadError{Name: l.name, Err: err}
	}
	return model, est, nil
}

// status is a snapshot for /healthz.
type loaderStatus struct {
	model    *core.Model
	estimate *budget.Estimate
	err      error
	running  bool
	loads    int
	attempts int
	loadTime time.Duration
	fetchDur time.Duration
	afterMem memSample
}

func (l *loader) status() loaderStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.final
	if err == nil {
		err = l.lastErr
	}
	return loaderStatus{model: l.model, estimate: l.estimate, err: err, running: l.running != nil,
		loads: l.loads, attempts: l.attempts, loadTime: l.loadTime, fetchDur: l.fetchDur, afterMem: l.afterMem}
}

// placeInputs has core allocate the model's ten crop tensors now, below
// the range reserve frees for requests, rather than inside it during the
// first ten-crop request, where they would stay and split it. core
// allocates them on first use, before it preprocesses the image (core/api.go,
// Model.classify), and refuses this image for its shape (a 1-pixel-wide
// strip resizes to more than preprocess.MaxResizedPixels) before running
// the network. Should core allocate them at Open, this does nothing; should
// it check the image first, test/admission.test.mjs (wasm memory within the
// budget after ten-crop requests) notices.
func placeInputs(m *core.Model) {
	strip := image.NewGray(image.Rect(0, 0, 1, preprocess.MaxResizedPixels))
	_, _ = m.ClassifyImage(strip, core.ClassifyOptions{Crops: 10})
}

// reserve grows the Go heap once, right after the load, by the memory every
// request may use (Estimate.Free), and frees it again: the heap then ends in
// one free range that large, which each request's buffers fill in the order
// they are allocated and leave whole again when the GC after the request
// collects them. Without it the heap grows request by request, and Go's
// allocator, which takes the lowest free range that fits, fills the range
// the last large request left with the first buffers of a larger one and
// puts the one that no longer fits on top: in wrangler dev, a 1364x1023
// JPEG after 1000x872 ones grew the wasm memory by 11.5 MB for a request
// 6 MB larger, and a mixed sequence peaked at 125 MB, over the 120 MB
// budget. wasm memory never shrinks, so this costs nothing a busy isolate
// would not reach anyway.
func reserve(n int64) {
	if n <= 0 {
		return
	}
	b := make([]byte, n)
	runtime.KeepAlive(b)
	b = nil
	runtime.GC()
}
