// Command bench prints the `make bench` table: it runs the repository's
// `go test -bench` benchmarks in several builds, parses their output and
// prints one table with ratios against a baseline measured in the same run.
//
//	go run ./tools/bench [-quick] [-model DIR] [-no-wasm] [-v]
//
// Rows (each "n/a (missing BenchmarkX)" when the benchmark does not exist):
//
//   - The core's FMA peak: each amd64 assembly variant's register-only FMA
//     loop (core/kernels BenchmarkFMAPeak), which every native GFLOP/s
//     figure below is also given as a fraction of (the peak of the
//     instruction set the row uses: AVX2 for asm-avx2, the best otherwise).
//   - GEMM GFLOP/s of ResNet-50's main shapes (core/kernels BenchmarkGemm),
//     natively for each kernel variant the CPU runs (asm-avx512, asm-avx2,
//     simd, generic = the portable scalar GEMM) and in wasm under node
//     (simd: SIMD128), each against the scalar GEMM measured in the same run.
//   - ResNet-50's convolutions and inner product through the kernels alone
//     (core/kernels BenchmarkResNet50Convs): each kernel variant, float32
//     and float16 filters, 1 and 2 threads.
//   - ResNet-50 latency per image (core BenchmarkClassify, whatever
//     sub-benchmarks it defines: threads, weight modes) in four builds:
//     native simd, native scalar (GOEXPERIMENT=nosimd), wasm simd, wasm
//     scalar; each row against the native scalar build's same sub-benchmark.
//   - The network alone (core BenchmarkForward: a preprocessed tensor in,
//     probabilities out), the peer of ONNX Runtime's session.run (README,
//     Benchmarks), natively (simd build) and in wasm simd128, each against
//     the same build's Classify row.
//   - Peak memory of ResNet-50 in both weight modes (f16 resident, f32 widened
//     at load), measured by this command in child processes: the largest Go
//     heap seen (runtime/metrics, sampled every 2 ms while the model is
//     opened and classifies an image) and the peak RSS (VmHWM, Linux).
//   - The converter's benchmarks (tools/convert/... BenchmarkConvert*).
//
// The ResNet-50 model comes from -model, else $RESIDUAL_BENCH_MODEL, else
// weights/resnet50 or weights/resnet50-synthetic, else a synthetic one is
// generated (fixture writer + converter, seeded) into a cache under
// os.TempDir(). The chosen directory is passed to the benchmarks in
// $RESIDUAL_BENCH_MODEL.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/residual-go/residual/internal/testfiles"
)

// ModelEnv names the environment variable that passes the ResNet-50 model
// directory to the benchmarks.
const ModelEnv = "RESIDUAL_BENCH_MODEL"

// build is one way of compiling and running the benchmarks.
type build struct {
	name string
	env  []string
	tags string // go test -tags
	wasm bool
}

var (
	// nativeSIMD is the build users get: on amd64 the kernels pick their
	// assembly variant at run time (AVX-512 or AVX2+FMA).
	nativeSIMD   = build{name: "native simd", env: []string{"GOEXPERIMENT=simd"}}
	nativeNoAsm  = build{name: "native noasm", env: []string{"GOEXPERIMENT=simd"}, tags: "noasm"}
	nativeScalar = build{name: "native scalar", env: []string{"GOEXPERIMENT=nosimd"}}
	wasmSIMD     = build{name: "wasm simd128", env: []string{"GOEXPERIMENT=simd", "GOOS=js", "GOARCH=wasm"}, wasm: true}
	wasmScalar   = build{name: "wasm scalar", env: []string{"GOEXPERIMENT=nosimd", "GOOS=js", "GOARCH=wasm"}, wasm: true}
)

type config struct {
	root      string
	model     string
	image     string
	gemmTime  string
	classTime string
	wasmTime  string
	noWasm    bool
	verbose   bool
	log       io.Writer

	// Figures the targets are checked against (0: not measured).
	nativeOneThreadMS float64 // best native simd Classify row with threads=1
	wasmMS            float64 // best wasm simd128 Classify row with threads=1 (wasm runs one thread)
	f16HeapMB         float64

	// classifyNS holds each build's Classify times (ns/op) by sub-benchmark,
	// the baselines of the Forward rows.
	classifyNS map[string]map[string]float64

	// peaks holds the measured FMA peak (GFLOP/s, one core) per assembly
	// variant; bestPeak the largest.
	peaks    map[string]float64
	bestPeak float64
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == memoryChildArg {
		os.Exit(memoryChild(os.Args[2:]))
	}
	var c config
	quick := flag.Bool("quick", false, "one iteration of everything (a smoke run, noisy figures)")
	flag.StringVar(&c.model, "model", "", "converted ResNet-50 directory (default: see the package documentation)")
	flag.StringVar(&c.gemmTime, "gemm-benchtime", "500ms", "-benchtime for the GEMM benchmarks")
	flag.StringVar(&c.classTime, "classify-benchtime", "3x", "-benchtime for the native ResNet-50 benchmarks")
	flag.StringVar(&c.wasmTime, "wasm-benchtime", "1x", "-benchtime for the wasm ResNet-50 benchmarks")
	flag.BoolVar(&c.noWasm, "no-wasm", false, "skip the wasm builds")
	flag.BoolVar(&c.verbose, "v", false, "echo every command and its raw output to stderr")
	flag.Parse()
	if *quick {
		c.gemmTime, c.classTime, c.wasmTime = "1x", "1x", "1x"
	}
	c.log = os.Stderr
	if err := run(&c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(c *config, w io.Writer) error {
	root := testfiles.Root()
	c.root = root
	var err error
	if c.model, err = findModel(c, root); err != nil {
		return err
	}
	if c.image, err = findImage(); err != nil {
		return err
	}
	start := time.Now()
	t := &Table{Header: []string{"benchmark", "build", "value", "vs baseline", "notes"}}
	peakRows(c, t)
	gemmRows(c, t)
	convsRows(c, t)
	classifyRows(c, t)
	forwardRows(c, t)
	memoryRows(c, t)
	convertRows(c, t)
	t.Notes = append(t.Notes,
		"",
		fmt.Sprintf("memory rows: model %s, image %s (also passed to the benchmarks as $%s); %s/%s, %d CPUs; %s in all",
			c.model, filepath.Base(c.image), ModelEnv,
			runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), time.Since(start).Round(time.Second)),
		"targets (issue 3):")
	target := func(what string, v, limit float64, unit string) {
		verdict := "not measured"
		if v > 0 {
			verdict = fmt.Sprintf("%.1f %s: ", v, unit)
			if v < limit {
				verdict += "met"
			} else {
				verdict += "NOT met"
			}
		}
		t.Notes = append(t.Notes, fmt.Sprintf("  %-52s < %g %s: %s", what, limit, unit, verdict))
	}
	target("native ResNet-50 per image, simd, one thread", c.nativeOneThreadMS, 300, "ms")
	target("wasm ResNet-50 per image under node, simd128", c.wasmMS, 1200, "ms")
	target("peak Go heap, ResNet-50, f16-resident weights", c.f16HeapMB, 90, "MB")
	t.Write(w)
	return nil
}

// findImage picks the benchmark photo: the first JPEG or PNG of the
// repository's testdata/photos (internal/testfiles lists them).
func findImage() (string, error) {
	photos, err := testfiles.PhotoPaths()
	if err != nil {
		return "", err
	}
	for _, p := range photos {
		switch strings.ToLower(filepath.Ext(p)) {
		case ".jpg", ".jpeg", ".png":
			return p, nil
		}
	}
	return "", fmt.Errorf("no JPEG or PNG among %d test photographs", len(photos))
}

func runtimeGOROOT() string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// goTest runs `go test -bench` for one package and pattern in build b and
// returns the parsed results with the raw output.
func goTest(c *config, b build, pkg, pattern, benchtime string) ([]Result, string, error) {
	procs := runtime.NumCPU()
	if b.wasm {
		procs = 1 // js/wasm runs on one thread
	}
	args := []string{"test", "-run", "^$", "-bench", pattern, "-benchtime", benchtime, "-benchmem",
		"-count", "1", "-cpu", strconv.Itoa(procs), "-timeout", "60m"}
	if b.tags != "" {
		args = append(args, "-tags", b.tags)
	}
	args = append(args, pkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = c.root
	cmd.Env = append(os.Environ(), b.env...)
	cmd.Env = append(cmd.Env, ModelEnv+"="+c.model, "RESIDUAL_BENCH_IMAGE="+c.image)
	if b.wasm {
		cmd.Env = append(cmd.Env, "PATH="+filepath.Join(runtimeGOROOT(), "lib", "wasm")+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	if c.verbose {
		fmt.Fprintf(c.log, "$ %s go %s\n", strings.Join(b.env, " "), strings.Join(args, " "))
	} else {
		fmt.Fprintf(c.log, "bench: %s: %s %s\n", b.name, pkg, pattern)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if c.verbose {
		c.log.Write(out.Bytes())
	}
	res := Parse(bytes.NewReader(out.Bytes()), procs)
	if err != nil {
		err = fmt.Errorf("%s: go test %s: %v: %s", b.name, pkg, err, lastLines(out.String(), 3))
	}
	return res, out.String(), err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// byTop keeps the results of one top-level benchmark.
func byTop(rs []Result, top string) []Result {
	var out []Result
	for _, r := range rs {
		if r.Top() == top {
			out = append(out, r)
		}
	}
	return out
}

// missing is the cell for a benchmark that does not exist (yet) or failed
// to run; a failure's message goes to the table's notes.
func missing(t *Table, name string, err error) string {
	if err != nil {
		t.Notes = append(t.Notes, "note: Benchmark"+name+": "+err.Error())
		return "n/a (Benchmark" + name + " failed, see notes)"
	}
	return "n/a (missing Benchmark" + name + ")"
}

// ---------------------------------------------------------------- peak

// peakRows measures each assembly variant's FMA peak (the GEMM and
// Classify rows give their figures as fractions of it).
func peakRows(c *config, t *Table) {
	t.Add("FMA peak: register-only vector FMA loop, one core (core/kernels BenchmarkFMAPeak, best of 3; by thread CPU time where measured)")
	c.peaks = map[string]float64{}
	// The best of three runs: a shared machine's other work lowers the
	// clock of the core's vector units now and then, and a fraction of a
	// low peak would flatter every row.
	best := map[string]Result{}
	var order []string
	var err error
	for range 3 {
		var rs []Result
		rs, _, err = goTest(c, nativeSIMD, "./core/kernels", "^BenchmarkFMAPeak$", c.gemmTime)
		for _, r := range byTop(rs, "FMAPeak") {
			if _, ok := best[r.Sub()]; !ok {
				order = append(order, r.Sub())
			}
			if b, ok := best[r.Sub()]; !ok || bestRate(r, "GFLOP/s") > bestRate(b, "GFLOP/s") {
				best[r.Sub()] = r
			}
		}
	}
	if len(order) == 0 {
		t.Add("FMAPeak", nativeSIMD.name, missing(t, "FMAPeak", err))
		return
	}
	for _, name := range order {
		r := best[name]
		v := bestRate(r, "GFLOP/s")
		c.peaks[name] = v
		c.bestPeak = max(c.bestPeak, v)
		t.Add("FMA peak "+name, nativeSIMD.name, fmt.Sprintf("%.1f GFLOP/s", v), "", "best of 3; "+extraMetrics(r))
	}
}

// bestRate is a result's rate metric (unit, e.g. "GFLOP/s") measured by
// thread CPU time ("cpu-" + unit) when it was, else by the wall clock: on a
// shared machine the CPU time leaves out the neighbours' share.
func bestRate(r Result, unit string) float64 {
	if v, ok := r.Metrics["cpu-"+unit]; ok && v > 0 {
		return v
	}
	return r.Metrics[unit]
}

// ofPeak describes v (GFLOP/s) as a fraction of the FMA peak of variant
// impl (asm-avx2: the AVX2 peak; anything else: the best peak), or ""
// when no peak was measured.
func ofPeak(c *config, impl string, v float64) string {
	peak := c.bestPeak
	if p, ok := c.peaks[impl]; ok {
		peak = p
	}
	if peak <= 0 || v <= 0 {
		return ""
	}
	return fmt.Sprintf("%.0f%% of peak", 100*v/peak)
}

// userBuilds lists the builds users get: native simd (with its assembly)
// and, unless -no-wasm, wasm simd128.
func (c *config) userBuilds() []build {
	if c.noWasm {
		return []build{nativeSIMD}
	}
	return []build{nativeSIMD, wasmSIMD}
}

// ---------------------------------------------------------------- GEMM

func gemmRows(c *config, t *Table) {
	t.Add("GEMM, ResNet-50 shapes m x k x n, one goroutine (core/kernels BenchmarkGemm); xN: N times the speed of the portable scalar GEMM (generic) in the same build; % of peak by thread CPU time")
	builds := c.userBuilds()
	for _, b := range builds {
		rs, _, err := goTest(c, b, "./core/kernels", "^BenchmarkGemm$", c.gemmTime)
		rs = byTop(rs, "Gemm")
		if len(rs) == 0 {
			t.Add("Gemm", b.name, missing(t, "Gemm", err))
			continue
		}
		// Sub-benchmarks are <shape>/<impl>; the baseline impl is "generic".
		type key struct{ shape, impl string }
		gflops := map[key]float64{}
		results := map[key]Result{}
		var shapes []string
		var impls []string
		for _, r := range rs {
			shape, impl, _ := strings.Cut(r.Sub(), "/")
			k := key{shape, impl}
			if _, ok := gflops[k]; !ok {
				if !contains(shapes, shape) {
					shapes = append(shapes, shape)
				}
				if !contains(impls, impl) {
					impls = append(impls, impl)
				}
			}
			gflops[k] = gflopsOf(r, shape)
			results[k] = r
		}
		for _, shape := range shapes {
			base, hasBase := gflops[key{shape, "generic"}]
			for _, impl := range impls {
				v, ok := gflops[key{shape, impl}]
				if !ok {
					continue
				}
				ratio := "baseline"
				if impl != "generic" {
					ratio = "n/a (no generic row)"
					if hasBase && base > 0 {
						ratio = fmt.Sprintf("x%.1f", v/base)
					}
				}
				note := ""
				if r, ok := results[key{shape, impl}]; ok {
					note = ofPeak(c, impl, bestRate(r, "GFLOP/s"))
					if b.wasm && note != "" {
						note += " (native)"
					}
				}
				t.Add("Gemm "+shape+" "+impl, b.name, fmt.Sprintf("%.2f GFLOP/s", v), ratio, note)
			}
		}
		if err != nil {
			t.Notes = append(t.Notes, "note: BenchmarkGemm: "+err.Error())
		}
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// gflopsOf takes the GFLOP/s metric, or computes it from ns/op and an
// "MxKxN" shape name when the benchmark did not report it.
func gflopsOf(r Result, shape string) float64 {
	if v, ok := r.Metrics["GFLOP/s"]; ok {
		return v
	}
	var m, k, n float64
	if _, err := fmt.Sscanf(shape, "%fx%fx%f", &m, &k, &n); err == nil && r.Metrics["ns/op"] > 0 {
		return 2 * m * k * n / r.Metrics["ns/op"]
	}
	return 0
}

// ---------------------------------------------------------------- convolutions

// convsRows runs ResNet-50's convolutions and inner product through the
// kernels alone, for each kernel variant of the native build.
func convsRows(c *config, t *Table) {
	t.Add("ResNet-50 convolutions + inner product through the kernels (core/kernels BenchmarkResNet50Convs): variant/weights/threads; % of peak by thread CPU time (one thread)")
	rs, _, err := goTest(c, nativeSIMD, "./core/kernels", "^BenchmarkResNet50Convs$", c.classTime)
	rs = byTop(rs, "ResNet50Convs")
	if len(rs) == 0 {
		t.Add("ResNet50Convs", nativeSIMD.name, missing(t, "ResNet50Convs", err))
		return
	}
	base := map[string]float64{} // ms of the simd variant, same weights and threads
	for _, r := range rs {
		if impl, rest, _ := strings.Cut(r.Sub(), "/"); impl == "simd" {
			base[rest] = r.Metrics["ns/op"]
		}
	}
	for _, r := range rs {
		impl, rest, _ := strings.Cut(r.Sub(), "/")
		ns := r.Metrics["ns/op"]
		ratio := "n/a"
		if impl == "simd" {
			ratio = "baseline"
		} else if b := base[rest]; b > 0 && ns > 0 {
			ratio = fmt.Sprintf("x%.2f", b/ns)
		}
		note := ""
		if strings.HasSuffix(rest, "threads=1") {
			note = ofPeak(c, impl, bestRate(r, "GFLOP/s"))
		}
		t.Add("ResNet50Convs "+r.Sub(), nativeSIMD.name, fmt.Sprintf("%.1f ms", ns/1e6), ratio, note)
	}
}

// ---------------------------------------------------------------- classify

func classifyRows(c *config, t *Table) {
	t.Add("ResNet-50 per image (core BenchmarkClassify); xN: N times the speed of the native scalar build (GOEXPERIMENT=nosimd), same sub-benchmark; native noasm: the simd package's kernels (no assembly)")
	builds := []build{nativeSIMD, nativeNoAsm, nativeScalar}
	if !c.noWasm {
		builds = append(builds, wasmSIMD, wasmScalar)
	}
	type row struct {
		b   build
		res []Result
		err error
	}
	var rows []row
	c.classifyNS = map[string]map[string]float64{}
	for _, b := range builds {
		rs, err := networkBench(c, b, "Classify")
		rows = append(rows, row{b, rs, err})
		c.classifyNS[b.name] = map[string]float64{}
		for _, r := range rs {
			c.classifyNS[b.name][r.Sub()] = r.Metrics["ns/op"]
		}
	}
	base := c.classifyNS[nativeScalar.name]
	for _, rw := range rows {
		if len(rw.res) == 0 {
			t.Add("Classify", rw.b.name, missing(t, "Classify", rw.err))
			continue
		}
		for _, r := range rw.res {
			ns := r.Metrics["ns/op"]
			ratio := "n/a"
			if rw.b.name == nativeScalar.name {
				ratio = "baseline"
			} else if b := base[r.Sub()]; b > 0 && ns > 0 {
				ratio = fmt.Sprintf("x%.2f", b/ns)
			}
			name := "Classify"
			if r.Sub() != "" {
				name += " " + r.Sub()
			}
			notes := extraMetrics(r)
			if !rw.b.wasm {
				if p := ofPeak(c, "", r.Metrics["GFLOP/s"]); p != "" {
					notes += " (" + p + ")"
				}
			}
			t.Add(name, rw.b.name, fmt.Sprintf("%.1f ms", ns/1e6), ratio, notes)
			ms := ns / 1e6
			best := func(cur *float64) {
				if ms > 0 && (*cur == 0 || ms < *cur) {
					*cur = ms
				}
			}
			switch {
			case rw.b.name == nativeSIMD.name && strings.Contains(r.Sub(), "threads=1"):
				best(&c.nativeOneThreadMS)
			case rw.b.name == wasmSIMD.name && strings.Contains(r.Sub(), "threads=1"):
				best(&c.wasmMS)
			}
		}
		if rw.err != nil {
			t.Notes = append(t.Notes, "note: BenchmarkClassify: "+rw.err.Error())
		}
	}
}

// networkBench runs core's Benchmark<name> (a whole ResNet-50 per
// iteration) in build b, with the native or the wasm -benchtime.
func networkBench(c *config, b build, name string) ([]Result, error) {
	bt := c.classTime
	if b.wasm {
		bt = c.wasmTime
	}
	rs, _, err := goTest(c, b, "./core", "^Benchmark"+name+"$", bt)
	return byTop(rs, name), err
}

// forwardRows runs the network alone (core BenchmarkForward: a preprocessed
// tensor in, probabilities out), what ONNX Runtime's session.run times, in
// the builds users get (native simd, wasm simd128), each against the same
// build's Classify row (preprocessing included).
func forwardRows(c *config, t *Table) {
	t.Add("ResNet-50 network alone, tensor in (core BenchmarkForward; the peer of ONNX Runtime's session.run); xN: N times the speed of the same build's Classify row")
	for _, b := range c.userBuilds() {
		rs, err := networkBench(c, b, "Forward")
		if len(rs) == 0 {
			t.Add("Forward", b.name, missing(t, "Forward", err))
			continue
		}
		for _, r := range rs {
			ns := r.Metrics["ns/op"]
			ratio := "n/a"
			if base := c.classifyNS[b.name][r.Sub()]; base > 0 && ns > 0 {
				ratio = fmt.Sprintf("x%.2f", base/ns)
			}
			notes := extraMetrics(r)
			if !b.wasm {
				if p := ofPeak(c, "", r.Metrics["GFLOP/s"]); p != "" {
					notes += " (" + p + ")"
				}
			}
			t.Add("Forward "+r.Sub(), b.name, fmt.Sprintf("%.1f ms", ns/1e6), ratio, notes)
		}
	}
}

// extraMetrics lists a result's metrics other than ns/op, sorted by unit.
func extraMetrics(r Result) string {
	var parts []string
	units := append([]string(nil), r.Units...)
	sort.Strings(units)
	for _, u := range units {
		if u == "ns/op" {
			continue
		}
		v := r.Metrics[u]
		switch u {
		case "B/op":
			parts = append(parts, fmt.Sprintf("%.0f B/op", v))
		default:
			parts = append(parts, formatNum(v)+" "+u)
		}
	}
	return strings.Join(parts, ", ")
}

// formatNum prints 4 significant digits, and whole numbers from 1000 on
// rather than exponent notation.
func formatNum(v float64) string {
	if a := math.Abs(v); a >= 1000 && a < 1e12 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// ---------------------------------------------------------------- converter

func convertRows(c *config, t *Table) {
	t.Add("Converter (tools/convert/... BenchmarkConvert*); no baseline")
	rs, _, err := goTest(c, nativeSIMD, "./tools/convert/...", "^BenchmarkConvert", "1x")
	var found []Result
	for _, r := range rs {
		if strings.HasPrefix(r.Top(), "Convert") {
			found = append(found, r)
		}
	}
	if len(found) == 0 {
		t.Add("Convert", nativeSIMD.name, missing(t, "Convert", err))
		return
	}
	for _, r := range found {
		t.Add(r.Name, nativeSIMD.name, fmt.Sprintf("%.0f ms", r.Metrics["ns/op"]/1e6), "", extraMetrics(r))
	}
}
