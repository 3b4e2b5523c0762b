package kernels

import (
	"sync"
	"sync/atomic"
	"time"
)

// spinFor is how long a helper watches for the next task after finishing
// one, and the caller for the helpers to finish, before they block. Waking
// a blocked goroutine on another CPU took about 100 us on the development
// machine (a KVM guest), and a ResNet-50 inference hands out about 75
// tasks of 0.1-2 ms each: blocking between them serialized most of the
// work. Between inferences the helpers fall asleep after spinFor.
const spinFor = 200 * time.Microsecond

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
	start  []chan struct{} // start[w-1] wakes helper w when it sleeps
	done   chan struct{}   // each helper sends once per task
	task   task            // the task being run; set before gen is bumped
	closed bool

	gen      atomic.Uint64 // bumped once per task: spinning helpers watch it
	pending  atomic.Int32  // helpers still running the current task
	sleeping []atomic.Bool // sleeping[w-1]: helper w blocks on start[w-1] (the dispatcher must send)

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
	r := &Runner{n: n, ws: make([]workspace, n), done: make(chan struct{}, n), sleeping: make([]atomic.Bool, max(n-1, 0))}
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
	r.gen.Add(1) // a spinning helper sees it, finds no task and goes to sleep
	for _, c := range r.start {
		close(c)
	}
}

// helper runs worker w's share of every task: it watches gen for spinFor
// after each task (and after starting), then sleeps on start until the
// dispatcher wakes it.
func (r *Runner) helper(w int, start chan struct{}) {
	var seen uint64 // gen starts at 0: a task dispatched before this goroutine runs is still seen
	for {
		if !r.await(w, start, &seen) {
			return
		}
		if t := r.task; t != nil {
			t.run(w, r.n, &r.ws[w])
		}
		r.pending.Add(-1)
		r.done <- struct{}{}
	}
}

// await returns once gen moves past *seen (a task is ready), setting
// *seen, or false when the Runner was closed.
func (r *Runner) await(w int, start chan struct{}, seen *uint64) bool {
	sleeping := &r.sleeping[w-1]
	deadline := time.Now().Add(spinFor)
	for i := 0; ; i++ {
		if g := r.gen.Load(); g != *seen {
			*seen = g
			return true
		}
		if i%256 != 255 || time.Now().Before(deadline) {
			continue
		}
		// Sleep. The flag goes up before gen is read again, so a dispatch
		// that bumps gen after this read finds the flag and sends.
		sleeping.Store(true)
		if g := r.gen.Load(); g != *seen {
			if sleeping.CompareAndSwap(true, false) {
				*seen = g // ours: no send will come
				return true
			}
			// The dispatcher took the flag: its send is on the way.
		}
		if _, ok := <-start; !ok {
			return false
		}
		*seen = r.gen.Load()
		return true
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
	r.pending.Store(int32(r.n - 1))
	r.gen.Add(1)
	for i := range r.start {
		if r.sleeping[i].CompareAndSwap(true, false) {
			r.start[i] <- struct{}{}
		}
	}
	t.run(0, r.n, &r.ws[0])
	// Watch the helpers finish for spinFor, then block; either way every
	// helper's one send per task is received, so done stays balanced.
	deadline := time.Now().Add(spinFor)
	for i := 0; r.pending.Load() != 0; i++ {
		if i%256 == 255 && !time.Now().Before(deadline) {
			break
		}
	}
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
