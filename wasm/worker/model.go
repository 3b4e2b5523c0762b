package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"sync"
	"time"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/wasm/worker/budget"
)

// Source opens the files of one model directory (manifest.json and the
// shards it lists). In the worker it reads the static-assets binding; on the
// host, a directory.
type Source interface {
	// Open streams the named file; size is its length when the source
	// knows it before reading (-1 otherwise).
	Open(ctx context.Context, name string) (r io.ReadCloser, size int64, err error)
}

// sourceFS is the fs.FS a stage is opened from: manifest.json from the
// bytes the loader already fetched (and checked), every other file streamed
// from the Source, so that core reads a shard chunk by chunk and keeps only
// the stage's tensors (weights.ReadOptions.Tensors).
type sourceFS struct {
	ctx      context.Context
	src      Source
	manifest []byte
}

func (f *sourceFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == weights.ManifestFile {
		return &streamFile{ReadCloser: io.NopCloser(bytes.NewReader(f.manifest)), name: name, size: int64(len(f.manifest))}, nil
	}
	r, size, err := f.src.Open(f.ctx, name)
	if err != nil {
		return nil, err
	}
	return &streamFile{ReadCloser: r, name: name, size: size}, nil
}

// streamFile is a file being streamed; Stat reports a regular file of the
// size the source announced, or an irregular one when it did not.
type streamFile struct {
	io.ReadCloser
	name string
	size int64
}

func (f *streamFile) Stat() (fs.FileInfo, error) { return fileInfo{f.name, f.size}, nil }

type fileInfo struct {
	name string
	size int64
}

func (i fileInfo) Name() string { return i.name }
func (i fileInfo) Size() int64  { return max(i.size, 0) }
func (i fileInfo) Mode() fs.FileMode {
	if i.size < 0 {
		return fs.ModeIrregular
	}
	return 0
}
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return false }
func (i fileInfo) Sys() any           { return nil }

// maxManifest bounds manifest.json as fetched (ResNet-152's is under 1 MB).
const maxManifest = 64 << 20

// LoadError reports a model that could not be fetched or opened.
type LoadError struct {
	Name string
	Err  error
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("model %s could not be loaded: %v", e.Name, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// slice says which part of the model this Worker runs: stage Stage of
// Stages, ops [First, End) (End 0: to the last op).
type slice struct {
	Stage, Stages int
	First, End    int
}

// loaded is a loaded stage and what the handler needs to know of it.
type loaded struct {
	stage  *core.Stage
	digest [32]byte // sha256 of manifest.json
	// A later stage's buffers (guarded by Server.work): one received item,
	// and the batch's outputs and taps.
	in, out, taps []float32
}

// loader loads the stage once and shares it: concurrent first callers wait
// for the same load, and a failed load (other than a stage too big for the
// budget, which is final) is tried again by the next caller.
type loader struct {
	name      string
	src       Source
	budget    int64
	maxPixels int
	slice     slice

	mu       sync.Mutex
	model    *loaded
	estimate *budget.Estimate
	final    error         // a *budget.TooBigError: never retried
	running  chan struct{} // closed when the running load ends; nil when none runs
	lastErr  error
	loads    int // successful loads
	attempts int
	loadTime time.Duration
	fetchDur time.Duration // of loadTime: fetching manifest and shards (with the sha256 and copy of the shards)
	afterMem memSample     // memory right after the last successful load
}

// get returns the loaded stage, loading it first if needed. sample, if not
// nil, is taken right after a successful load.
func (l *loader) get(ctx context.Context, sample func() memSample) (*loaded, error) {
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
			if est != nil {
				l.estimate = est
			}
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
			// The shards' transient garbage (chunks, manifest) goes now,
			// so that the first request starts from the resident set.
			runtime.GC()
			if l.slice.Stage == 0 {
				reserve(est.Free)
			}
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

// load fetches the manifest, checks the stage's memory estimate against the
// budget, then opens the stage: core streams each shard that holds a tensor
// of the slice, verifying its sha256, and keeps only those tensors.
func (l *loader) load(ctx context.Context) (model *loaded, est *budget.Estimate, err error) {
	defer func() {
		// A panic while loading must not leave waiters blocked forever:
		// it becomes this attempt's error, and the next request retries.
		if v := recover(); v != nil {
			model, err = nil, &LoadError{Name: l.name, Err: fmt.Errorf("internal error (a bug in residual; please report it): %v", v)}
		}
	}()
	fetchStart := time.Now()
	r, _, err := l.src.Open(ctx, weights.ManifestFile)
	if err != nil {
		return nil, nil, &LoadError{Name: l.name, Err: err}
	}
	raw, err := io.ReadAll(io.LimitReader(r, maxManifest+1))
	r.Close()
	if err == nil && len(raw) > maxManifest {
		err = fmt.Errorf("%s is larger than %d bytes: not a manifest of this format", weights.ManifestFile, maxManifest)
	}
	if err != nil {
		return nil, nil, &LoadError{Name: l.name, Err: err}
	}
	m, err := weights.ParseManifest(raw)
	if err != nil {
		return nil, nil, &LoadError{Name: l.name, Err: err}
	}
	sl := l.slice
	if sl.End == 0 {
		sl.End = len(m.Ops)
	}
	if sl.First < 0 || sl.First >= sl.End || sl.End > len(m.Ops) {
		return nil, nil, &LoadError{Name: l.name, Err: fmt.Errorf("stage %d runs ops [%d, %d), but the model has %d ops: regenerate the stage configuration (make worker-config)", sl.Stage, sl.First, sl.End, len(m.Ops))}
	}
	maps := false
	if op, _, ok := core.MapsOp(m); ok && sl.First <= op {
		maps = true
	}
	e, err := budget.EstimateStage(m, sl.First, sl.End, sl.Stage, maps, l.budget)
	if err != nil {
		return nil, nil, &LoadError{Name: l.name, Err: fmt.Errorf("%w: regenerate the stage configuration (make worker-config)", err)}
	}
	est = &e
	if e.Total > l.budget {
		return nil, est, &budget.TooBigError{Name: l.name, Ops: len(m.Ops), Estimate: e, Budget: l.budget}
	}
	st, err := core.OpenStage(&sourceFS{ctx: ctx, src: l.src, manifest: raw}, core.StageOptions{
		First: sl.First, End: sl.End, Threads: 1, MaxPixels: l.maxPixels, CAM: maps, MaxBatch: budget.BatchOf(sl.First)})
	if err != nil {
		return nil, est, &LoadError{Name: l.name, Err: err}
	}
	fetched := time.Since(fetchStart)
	l.mu.Lock()
	l.fetchDur = fetched
	l.mu.Unlock()
	ld := &loaded{stage: st, digest: digestOf(raw)}
	if p := st.Program(); sl.First > 0 {
		// A later stage runs the batch it receives one item at a time
		// (serveStage): one item's input, the whole batch's results, held
		// from the start like the rest of the estimate.
		ld.in = make([]float32, p.InputSize())
		ld.out = make([]float32, budget.MaxBatch*p.OutputSize())
		if len(p.Taps) > 0 {
			ld.taps = make([]float32, budget.MaxBatch*p.Values[p.Taps[0]].Size)
		}
	}
	return ld, est, nil
}

// status is a snapshot for /healthz.
type loaderStatus struct {
	model    *loaded
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

// reserve grows the Go heap once, right after the front stage loads, by the
// memory every request may use (Estimate.Free), and frees it again: the heap
// then ends in one free range that large, which each request's buffers fill
// in the order they are allocated and leave whole again when the GC after
// the request collects them. Without it the heap grows request by request,
// and Go's allocator, which takes the lowest free range that fits, fills the
// range the last large request left with the first buffers of a larger one
// and puts the one that no longer fits on top: in wrangler dev, a 1364x1023
// JPEG after 1000x872 ones grew the wasm memory by 11.5 MB for a request
// 6 MB larger, and a mixed sequence peaked at 125 MB, over the 120 MB
// budget. wasm memory never shrinks, so this costs nothing a busy isolate
// would not reach anyway. (The front's ten crop tensors and outputs were
// allocated when it opened, core.StageOptions.MaxBatch, below this range.)
// The other stages allocate nothing per request but their small answer:
// they need no reserve.
func reserve(n int64) {
	if n <= 0 {
		return
	}
	b := make([]byte, n)
	runtime.KeepAlive(b)
	b = nil
	runtime.GC()
}
