//go:build js && wasm

package webgpu

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/internal/testfiles"
)

// heapAfterGC is the Go heap in use once garbage is collected.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestResNet50 runs the generated ResNet-50 (make synthetic) through the
// WebGPU backend and the CPU path on a photo: the top-5 must be identical
// and no probability may differ by more than 2e-3 (DESIGN.md's bound).
// It also checks that the GPU model keeps no shard bytes in the Go heap.
func TestResNet50(t *testing.T) {
	device(t)
	dir := filepath.Join(testfiles.Root(), "weights", "resnet50-synthetic")
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err != nil {
		if os.Getenv("RESIDUAL_WEBGPU_REQUIRED") != "" {
			t.Fatalf("%v: run make synthetic", err)
		}
		t.Skipf("%v: run make synthetic", err)
	}
	photo := testfiles.Read(t, "testdata/photos/video-001.jpeg")
	base := heapAfterGC()

	var choice Choice
	start := time.Now()
	gpu, err := core.Open(os.DirFS(dir), core.Options{Backend: func(p *core.Program, w *weights.Weights, o core.Options) (core.Backend, error) {
		b, c, err := Select(p, w, o, SelectOptions{Mode: ModeWebGPU, Backend: Options{Batches: []int{1}}})
		choice = c
		return b, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer gpu.Close()
	if choice.Backend != "webgpu" {
		t.Fatalf("Select: %+v", choice)
	}
	gpuHeap := heapAfterGC()
	t.Logf("GPU model loaded in %v on %s; Go heap %.1f MB above the baseline; weights released: %v",
		time.Since(start).Round(time.Millisecond), choice.Adapter, float64(gpuHeap-base)/1e6, gpu.Weights().Shards() == nil)
	if gpu.Weights().Shards() != nil {
		t.Error("the GPU model still holds the shard bytes in the Go heap")
	}

	cpu, err := core.Open(os.DirFS(dir), core.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cpu.Close()
	t.Logf("CPU model (float16 weights resident): Go heap %.1f MB above the GPU model's", float64(heapAfterGC()-gpuHeap)/1e6)

	all := core.ClassifyOptions{Top: 1000}
	start = time.Now()
	want, err := cpu.ClassifyBytes(photo, all)
	if err != nil {
		t.Fatal(err)
	}
	cpuTime := time.Since(start)
	start = time.Now()
	got, err := gpu.ClassifyBytes(photo, all)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one image: CPU %v, WebGPU %v", cpuTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	compareTop(t, got.Top, want.Top)
}

// compareTop checks the top-5 and the largest probability difference.
func compareTop(t *testing.T, got, want []core.Prediction) {
	t.Helper()
	for i := range 5 {
		if got[i].Index != want[i].Index {
			t.Errorf("top-5 differs at %d: WebGPU %v, CPU %v", i, got[:5], want[:5])
			break
		}
	}
	probs := map[int]float64{}
	for _, p := range want {
		probs[p.Index] = p.Prob
	}
	worst := 0.0
	for _, p := range got {
		worst = max(worst, math.Abs(p.Prob-probs[p.Index]))
	}
	t.Logf("top-1 %d (%.4f); max |dp| over %d classes = %.3g", got[0].Index, got[0].Prob, len(got), worst)
	if worst > 2e-3 {
		t.Errorf("max |dp| = %.3g > 2e-3", worst)
	}
}
