package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/tools/convert/caffe"
	"github.com/residual-go/residual/tools/convert/caffe/fixture"
	"github.com/residual-go/residual/tools/convert/convert"
)

// memoryChildArg makes the command measure one weight mode and exit; the
// parent runs it in a fresh process per mode so that peaks do not mix.
const memoryChildArg = "-memory-child"

// syntheticSeed seeds the generated ResNet-50 when no converted model exists.
const syntheticSeed = 1

// findModel resolves the ResNet-50 model directory (see the package comment).
func findModel(c *config, root string) (string, error) {
	candidates := []string{c.model, os.Getenv(ModelEnv),
		filepath.Join(root, "weights", "resnet50"), filepath.Join(root, "weights", "resnet50-synthetic")}
	for i, d := range candidates {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "manifest.json")); err == nil {
			return filepath.Abs(d)
		} else if i < 2 {
			return "", fmt.Errorf("model %s: %w (convert a model there, or omit -model)", d, err)
		}
	}
	return syntheticModel(c, root)
}

// syntheticModel generates a seeded random-weight ResNet-50 in the real Caffe
// format and converts it, cached under os.TempDir() by converter version.
func syntheticModel(c *config, root string) (string, error) {
	prototxt := filepath.Join(root, "weights", "prototxt", "ResNet-50-deploy.prototxt")
	proto, err := os.ReadFile(prototxt)
	if err != nil {
		return "", fmt.Errorf("no converted model and no prototxt to generate one: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%s\x00%d", proto, syntheticSeed, convert.ConverterVersion, weights.FormatVersion)
	dir := filepath.Join(os.TempDir(), "residual-bench", "resnet50-synthetic-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
		return dir, nil
	}
	fmt.Fprintf(c.log, "bench: generating a synthetic ResNet-50 (seed %d) into %s\n", syntheticSeed, dir)
	net, err := caffe.ParsePrototxt(strings.NewReader(string(proto)))
	if err != nil {
		return "", fmt.Errorf("%s: %w", prototxt, err)
	}
	if err := fixture.Generate(net, syntheticSeed); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp("", "residual-bench-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	model := filepath.Join(tmp, "resnet50.caffemodel")
	f, err := os.Create(model)
	if err != nil {
		return "", err
	}
	bw := bufio.NewWriter(f)
	if err := caffe.WriteModel(bw, net); err != nil {
		f.Close()
		return "", err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	out := filepath.Join(tmp, "out")
	if _, err := convert.Convert(convert.Options{Caffemodel: model, Prototxt: prototxt,
		Labels: filepath.Join(root, "weights", "synset_words.txt"), Name: "ResNet-50 (synthetic)",
		Synthetic: true, Out: out}); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(out, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// memoryRows measures peak memory per weight mode in child processes.
func memoryRows(c *config, t *Table) {
	t.Add("ResNet-50 peak memory: open + 2 images, one thread (measured by this command); xN: N times the f32 mode's peak heap")
	self, err := os.Executable()
	if err != nil {
		t.Add("peak memory", nativeSIMD.name, "n/a (see notes)")
		t.Notes = append(t.Notes, "note: memory: "+err.Error())
		return
	}
	type meas struct {
		heap, rss, weights float64
		kernels            string
	}
	got := map[string]meas{}
	for _, mode := range []string{"f32", "f16"} {
		fmt.Fprintf(c.log, "bench: memory, %s weights\n", mode)
		out, err := exec.Command(self, memoryChildArg, mode, c.model, c.image).CombinedOutput()
		if err != nil {
			t.Add("peak Go heap, "+mode+" weights", nativeSIMD.name, "n/a (see notes)")
			t.Notes = append(t.Notes, fmt.Sprintf("note: memory, %s weights: %v: %s", mode, err, lastLines(string(out), 2)))
			continue
		}
		var m meas
		for _, f := range strings.Fields(string(out)) {
			k, v, _ := strings.Cut(f, "=")
			x, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "heap_peak_bytes":
				m.heap = x
			case "rss_peak_bytes":
				m.rss = x
			case "weight_bytes":
				m.weights = x
			case "kernels":
				m.kernels = v
			}
		}
		got[mode] = m
	}
	for _, mode := range []string{"f16", "f32"} {
		m, ok := got[mode]
		if !ok {
			continue
		}
		ratio := "baseline"
		if b, ok := got["f32"]; mode != "f32" && ok && b.heap > 0 {
			ratio = fmt.Sprintf("x%.2f", m.heap/b.heap)
		} else if mode != "f32" {
			ratio = "n/a"
		}
		notes := fmt.Sprintf("weights resident %.1f MB", m.weights/1e6)
		if m.rss > 0 {
			notes += fmt.Sprintf(", peak RSS %.1f MB", m.rss/1e6)
		}
		t.Add("peak Go heap, "+mode+" weights", "native "+m.kernels, fmt.Sprintf("%.1f MB", m.heap/1e6), ratio, notes)
		if mode == "f16" {
			c.f16HeapMB = m.heap / 1e6
		}
	}
}

// memoryChild opens the model in one weight mode, classifies the image twice
// and prints the peaks as key=value pairs.
func memoryChild(args []string) int {
	if len(args) != 3 || args[0] != "f16" && args[0] != "f32" {
		fmt.Fprintln(os.Stderr, "usage: bench -memory-child f16|f32 MODELDIR IMAGE")
		return 2
	}
	mode, dir, image := args[0], args[1], args[2]
	data, err := os.ReadFile(image)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The Go heap: bytes in live and not yet swept heap objects, sampled.
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	m, err := core.Open(os.DirFS(dir), core.Options{Float32Weights: mode == "f32", Threads: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for range 2 {
		if _, err := m.ClassifyBytes(data, core.ClassifyOptions{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	close(stop)
	<-done
	metrics.Read(sample)
	info := m.Info()
	m.Close()
	fmt.Printf("heap_peak_bytes=%d rss_peak_bytes=%d weight_bytes=%d kernels=%s\n",
		max(peak.Load(), sample[0].Value.Uint64()), peakRSS(), info.WeightBytes, info.Kernels)
	return 0
}

// peakRSS is VmHWM from /proc/self/status in bytes (0 where unavailable).
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
