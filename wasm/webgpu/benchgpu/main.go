//go:build js && wasm

// Command benchgpu measures the WebGPU backend (make bench-gpu): for each
// model directory, the per-image time of batch 1 and of the 10-crop batch
// (median of -runs after -warmup), under node with Dawn's bindings (npm
// webgpu) on whatever Vulkan driver is present, with the adapter named on
// every row. On a software adapter (SwiftShader) it also reports the node
// process's CPU time (all of SwiftShader's threads), and says the figures
// are for correctness only.
//
// It also reports, without timestamp queries, what one inference submits:
// the dispatches per shader entry point, and one submit and one readback.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall/js"
	"time"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/wasm/webgpu"
)

func main() {
	models := flag.String("models", "weights/resnet50-synthetic,weights/resnet101-synthetic,weights/resnet152-synthetic", "comma-separated model directories")
	runs := flag.Int("runs", 20, "timed runs per row (the median is reported)")
	warmup := flag.Int("warmup", 2, "untimed runs first")
	batches := flag.String("batches", "1,10", "batch sizes (10: a 10-crop as one batch)")
	flag.Parse()
	var ns []int
	for _, s := range strings.Split(*batches, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fail("-batches: %q is not a batch size", s)
		}
		ns = append(ns, n)
	}
	fmt.Printf("| model | adapter | batch | per image (median of %d) | min | process CPU per image | load |\n|---|---|---|---|---|---|---|\n", *runs)
	var reports []string
	for _, dir := range strings.Split(*models, ",") {
		if _, err := os.Stat(dir + "/manifest.json"); err != nil {
			fmt.Fprintf(os.Stderr, "benchgpu: skipping %s: %v (make synthetic-all generates it)\n", dir, err)
			continue
		}
		var be *webgpu.Backend
		var choice webgpu.Choice
		start := time.Now()
		m, err := core.Open(os.DirFS(dir), core.Options{Backend: func(p *core.Program, w *weights.Weights, o core.Options) (core.Backend, error) {
			b, c, err := webgpu.Select(p, w, o, webgpu.SelectOptions{Mode: webgpu.ModeWebGPU, Backend: webgpu.Options{Batches: ns}})
			choice = c
			be, _ = b.(*webgpu.Backend)
			return b, err
		}})
		if err != nil {
			fail("%s: %v", dir, err)
		}
		if be == nil {
			fail("%s: WebGPU was not used: %s", dir, choice.Reason)
		}
		load := time.Since(start)
		info := m.Info()
		for _, n := range ns {
			in := make([]float32, n*info.Input.Channels*info.Input.Height*info.Input.Width)
			for i := range in {
				in[i] = float32(i%251) - 125
			}
			for range *warmup {
				if _, err := m.ForwardBatch(in, n); err != nil {
					fail("%s: %v", dir, err)
				}
			}
			var wall, cpu []float64
			for range *runs {
				c0 := cpuMicros()
				t0 := time.Now()
				if _, err := m.ForwardBatch(in, n); err != nil {
					fail("%s: %v", dir, err)
				}
				wall = append(wall, float64(time.Since(t0).Microseconds())/1000/float64(n))
				cpu = append(cpu, (cpuMicros()-c0)/1000/float64(n))
			}
			fmt.Printf("| %s | %s | %d | %.2f ms | %.2f ms | %.2f ms | %.1f s |\n", info.Model, choice.Adapter, n,
				median(wall), slices.Min(wall), median(cpu), load.Seconds())
			pl, err := be.PlanFor(n)
			if err != nil {
				fail("%s: %v", dir, err)
			}
			counts, total := pl.Counts()
			var keys []string
			for k := range counts {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
			}
			reports = append(reports, fmt.Sprintf("%s, batch %d: %d dispatches in 1 compute pass, 1 submit, 1 readback (%s); %d pipelines",
				info.Model, n, total, strings.Join(parts, ", "), len(pl.Keys())))
		}
		d := be.Describe()
		reports = append(reports, fmt.Sprintf("%s: %.1f MB of weights on the GPU, %.1f MB of activations per image, %.1f MB split-K scratch",
			info.Model, float64(d.WeightBytes)/1e6, float64(d.ActivationBytes)/1e6, float64(d.ScratchBytes)/1e6))
		m.Close()
		if webgpu.IsSoftware(choice.Adapter) {
			reports = append(reports, fmt.Sprintf("%s ran on %s, a software Vulkan driver on the CPU: its times say nothing about a GPU (correctness only)", info.Model, choice.Adapter))
		}
	}
	fmt.Println()
	for _, r := range reports {
		fmt.Println("- " + r)
	}
}

// cpuMicros is node's process CPU time (user + system, every thread).
func cpuMicros() float64 {
	u := js.Global().Get("process").Call("cpuUsage")
	return u.Get("user").Float() + u.Get("system").Float()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "benchgpu: "+format+"\n", args...)
	os.Exit(1)
}
