package core_test

import (
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/internal/testfiles"
)

// benchModelEnv names the environment variable holding the converted
// ResNet-50 the benchmarks run; tools/bench (make bench) always sets it.
const benchModelEnv = "RESIDUAL_BENCH_MODEL"

// benchResNet50 returns the directory of a converted ResNet-50: the one
// $RESIDUAL_BENCH_MODEL names, else weights/resnet50 (make weights), else
// weights/resnet50-synthetic (make synthetic). Without one the benchmark is
// skipped: core does not convert models itself (its tests import nothing
// under tools/), and `make bench` generates a synthetic one when none exists.
func benchResNet50(b *testing.B) string {
	b.Helper()
	if dir := os.Getenv(benchModelEnv); dir != "" {
		if !fileExists(filepath.Join(dir, weights.ManifestFile)) {
			b.Fatalf("$%s=%s holds no %s", benchModelEnv, dir, weights.ManifestFile)
		}
		return dir
	}
	for _, name := range []string{"resnet50", "resnet50-synthetic"} {
		dir := filepath.Join(testfiles.Root(), "weights", name)
		if fileExists(filepath.Join(dir, weights.ManifestFile)) {
			return dir
		}
	}
	b.Skipf("no converted ResNet-50: set $%s, or run make synthetic (or make bench, which makes one)", benchModelEnv)
	return ""
}

// networkFLOPs counts the floating-point operations of one forward pass:
// 2 per multiply-add of the convolutions and inner products (ResNet-50:
// about 7.7 GFLOP), ignoring the cheaper elementwise ops.
func networkFLOPs(m *weights.Manifest) float64 {
	shapes := map[string][3]int{m.Input.Name: {m.Input.Channels, m.Input.Height, m.Input.Width}}
	var flops float64
	for _, op := range m.Ops {
		in := shapes[op.Inputs[0]]
		out := op.OutShape
		switch op.Type {
		case weights.OpConv:
			k := in[0] / op.Groups() * op.Kernel[0] * op.Kernel[1]
			flops += 2 * float64(k) * float64(out[0]*out[1]*out[2])
		case weights.OpInnerProduct:
			flops += 2 * float64(in[0]*in[1]*in[2]) * float64(out[0])
		}
		shapes[op.Output] = out
	}
	return flops
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// benchImage is a 320x240 color gradient: preprocessing resizes it to
// 341x256 and crops 224x224, as for a typical photo.
func benchImage() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 320, 240))
	for y := range 240 {
		for x := range 320 {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x + y), 255})
		}
	}
	return img
}

// BenchmarkClassify measures one ResNet-50 inference (preprocessing of a
// decoded image included) in both weight modes with 1 and 2 threads.
// Target (issue 3): under 300 ms/image with simd on one core.
func BenchmarkClassify(b *testing.B) {
	img := benchImage()
	benchModes(b, func(m *core.Model) error {
		_, err := m.ClassifyImage(img, core.ClassifyOptions{})
		return err
	})
}

// BenchmarkForward measures the network alone: one preprocessed 3x224x224
// tensor in, the probabilities out (Model.Forward), in both weight modes with
// 1 and 2 threads. This is what a timing of ONNX Runtime's session.run
// measures, so it is the row to put beside one (README, Benchmarks);
// BenchmarkClassify adds the resize, crop and mean subtraction of a small
// image.
func BenchmarkForward(b *testing.B) {
	var input []float32
	benchModes(b, func(m *core.Model) error {
		if input == nil {
			s := m.Spec()
			input = make([]float32, s.Channels*s.Height*s.Width)
			for i := range input {
				input[i] = float32(i%251) - 125
			}
		}
		_, err := m.Forward(input)
		return err
	})
}

// benchModes runs one sub-benchmark per weight mode and thread count, each
// opening ResNet-50 and timing run after one untimed warm-up call.
func benchModes(b *testing.B, run func(m *core.Model) error) {
	dir := benchResNet50(b)
	for _, mode := range []string{"f16", "f32"} {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", mode, threads), func(b *testing.B) {
				m, err := core.Open(os.DirFS(dir), core.Options{Float32Weights: mode == "f32", Threads: threads})
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				if err := run(m); err != nil { // warm up
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if err := run(m); err != nil {
						b.Fatal(err)
					}
				}
				sec := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(sec*1000, "ms/image")
				b.ReportMetric(networkFLOPs(m.Manifest())/sec/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkMemory loads ResNet-50 and runs one inference in each weight mode,
// reporting the peak of the live heap (sampled every 200µs from
// runtime/metrics while loading and classifying, after a GC) and HeapInuse
// after load and after the inference. Target (issue 3): the float16-resident
// mode's peak heap under 90 MB. Run it alone for clean figures:
//
//	go test -run '^$' -bench 'Memory' -benchtime 1x ./core/
func BenchmarkMemory(b *testing.B) {
	dir := benchResNet50(b)
	img := benchImage()
	for _, mode := range []string{"f16", "f32"} {
		b.Run(mode, func(b *testing.B) {
			var peak, loaded, after float64
			for b.Loop() {
				runtime.GC()
				base, baseInuse := heapObjects(), inuse()
				stop := samplePeak()
				m, err := core.Open(os.DirFS(dir), core.Options{Float32Weights: mode == "f32", Threads: 1})
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				loaded = float64(inuse()-baseInuse) / 1e6
				if _, err := m.ClassifyImage(img, core.ClassifyOptions{}); err != nil {
					b.Fatal(err)
				}
				peak = float64(stop()-base) / 1e6
				runtime.GC()
				after = float64(inuse()-baseInuse) / 1e6
				runtime.KeepAlive(m)
				m.Close()
			}
			b.ReportMetric(peak, "peak-heap-MB")
			b.ReportMetric(loaded, "heap-after-load-MB")
			b.ReportMetric(after, "heap-after-inference-MB")
		})
	}
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

// heapObjects is the heap occupied by objects, live or not yet swept.
func heapObjects() uint64 {
	metrics.Read(heapSample)
	return heapSample[0].Value.Uint64()
}

func inuse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// samplePeak polls heapObjects until the returned function is called, which
// returns the largest value seen.
func samplePeak() func() uint64 {
	var mu sync.Mutex
	peak := heapObjects()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				v := heapObjects()
				mu.Lock()
				peak = max(peak, v)
				mu.Unlock()
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		v := heapObjects()
		mu.Lock()
		defer mu.Unlock()
		return max(peak, v)
	}
}
