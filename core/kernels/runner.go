package kernels

import "sync"

// Runner runs parallel work on persistent goroutines. The goroutine that
// calls a kernel takes part as worker 0; NewRunner(n) starts n-1 helpers.
// Worker 0 takes its GEMM packing buffers from the scratch slice passed to
// Conv2D (as a nil Runner does); each helper owns its own, allocated once in
// NewRunner, so a kernel call hands work out without allocating.
//
// A nil *Runner runs everything on the calling goroutine. A Runner
// serializes the calls made through it (one kernel at a time).
type Runner struct {
	mu     sync.Mutex
	n      int
	ws     []workspace     // one per worker; ws[0], the caller's, is set per call from scratch
	start  []chan struct{} // start[w-1] wakes helper w
	done   chan struct{}   // each helper sends once per task
	task   task            // the task being run; set before the helpers are woken
	closed bool

	// Task values live here so that storing one in task (an interface)
	// does not allocate on every call.
	gemmT gemmTask
	colT  im2colTask
	poolT poolTask
	winoT winoTask
	imgT  imageTask
}

// task is one parallel step: worker w of nw does its share with its own workspace.
type task interface {
	run(w, nw int, ws *workspace)
}

// NewRunner returns a Runner using n goroutines (n <= 1: serial, on the caller).
// Close it when done to stop its goroutines.
func NewRunner(n int) *Runner {
	if n < 1 {
		n = 1
	}
	r := &Runner{n: n, ws: make([]workspace, n), done: make(chan struct{}, n)}
	for w := 1; w < n; w++ {
		r.ws[w] = newWorkspace(make([]float32, workspaceSize()))
	}
	for w := 1; w < n; w++ {
		c := make(chan struct{})
		r.start = append(r.start, c)
		go r.helper(w, c)
	}
	return r
}

// Threads reports how many goroutines r uses (1 for a nil Runner).
func (r *Runner) Threads() int {
	if r == nil {
		return 1
	}
	return r.n
}

// Close stops the Runner's goroutines. The Runner must not be used afterwards.
func (r *Runner) Close() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	for _, c := range r.start {
		close(c)
	}
}

func (r *Runner) helper(w int, start chan struct{}) {
	for range start {
		r.task.run(w, r.n, &r.ws[w])
		r.done <- struct{}{}
	}
}

// lock takes r for one kernel call; it is a no-op for a nil Runner.
func (r *Runner) lock() {
	if r != nil {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			panic("kernels: Runner used after Close")
		}
	}
}

func (r *Runner) unlock() {
	if r != nil {
		r.mu.Unlock()
	}
}

// dispatch runs t on every worker of r (r != nil, locked) and waits for all.
func (r *Runner) dispatch(t task) {
	if r.n == 1 {
		t.run(0, 1, &r.ws[0])
		return
	}
	r.task = t
	for _, c := range r.start {
		c <- struct{}{}
	}
	t.run(0, r.n, &r.ws[0])
	for range r.start {
		<-r.done
	}
	r.task = nil
}

// share returns worker w's part [lo, hi) of units 0..total split as evenly as
// possible between nw workers.
func share(total, w, nw int) (lo, hi int) {
	return total * w / nw, total * (w + 1) / nw
}
