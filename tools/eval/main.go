// Command eval measures a converted model's top-1 and top-5 error on a
// labelled image set, the way the ResNet release reports its ImageNet
// validation error (weights/OFFICIAL.md has the published table).
//
//	go run ./tools/eval -model weights/resnet50 -images ILSVRC2012_img_val -labels val.txt
//	go run ./tools/eval -model weights/resnet50 -images val -labels val.txt -crops 10 -results r10.jsonl
//	go run ./tools/eval -model DIR -images DIR -labels FILE -json -limit 1000 | tail -1 | jq .
//
// The list (-labels) is in the format of Caffe's ImageData layer, the
// val.txt of Caffe's ILSVRC2012 auxiliary data: one `relative/path label`
// per line, the label a 0-based class index in the model's class order
// (for the ResNets: the order of synset_words.txt). Paths are relative to
// -images. -limit N takes the first N lines. A malformed list is refused as a
// whole, naming its bad lines. An image that cannot be classified (a missing
// or unreadable file, an undecodable image, a label outside the model's
// classes) is reported and counted as failed, and the run goes on.
//
// # What is measured
//
// Each image is classified with core.Model.ClassifyBytes in 1-crop or 10-crop
// mode (-crops; DESIGN.md decision 4). Top-1 error is the fraction of scored
// images whose most probable class is not the label, top-5 error the fraction
// whose label is not among the five most probable. Failed images are not in
// these fractions' denominators (they have no prediction to score), but they
// are never silent: the summary's "failed" counts them, the text output says
// what the errors would be if every failed image were counted wrong, and the
// exit status is 1. Each error comes with a 95% Wilson score interval for a
// binomial proportion (see wilson), which treats the images as a random
// sample from the distribution the set was drawn from.
//
// # Output
//
// Text (the default): the error table, the classes with the highest top-1
// error (all classes by index with -per-class) and the most confused pairs
// (true class, top-1 prediction). With -json: one line per image in list
// order, {"file", "label", "top": [five class indices], "prob": [their
// probabilities]} or {"file", "label", "error"}, and last a summary object:
//
//	{"images": N, "failed": F, "crops": 1, "top1_error": e1, "top5_error": e5,
//	 "top1_ci95": [lo, hi], "top5_ci95": [lo, hi], "model": "...", "interval": "wilson",
//	 "confused": [...], "per_class": [...]}
//
// where N is the number of scored images (the denominator), F the number
// that failed, errors and bounds are fractions (the errors null when N is 0),
// and per_class is present with -per-class only.
//
// On stderr: on a terminal, a progress bar with images per second and the
// time left; otherwise (a pipe, a log file) nothing until one final line with
// the count, the time and the throughput. The first failures are described
// there too.
//
// # Resuming
//
// With -results FILE, every image's line is appended to FILE as soon as it is
// classified (format in results.go). A later run with the same FILE, model
// and -crops skips the images already scored in it and reports on all of
// them, so an interrupted run (Ctrl-C, a crash, a reboot) continues where it
// stopped and ends with the same output as an uninterrupted one. One run at a
// time per FILE.
//
// # Parallelism
//
// -workers models are opened, each with -threads kernel goroutines, and fed
// images by as many goroutines, each of which reads, decodes, preprocesses
// and classifies its image. The default is one single-threaded model per
// core: images are independent, so every core stays busy with no
// synchronization inside a forward pass, and decoding overlaps inference for
// free. The alternative, one model whose kernels use every core, leaves
// cores idle: core preprocesses (resizes) under the model's lock with one
// thread, and the kernels' threads wait for each other at every layer.
//
// Measured with BenchmarkEval (the synthetic ResNet-50, 32 JPEGs of 500x375,
// 2 cores shared with other jobs at a load average of about 18, 2 runs each):
//
//	                      CPU per image   Go scheduler idle   on an idle machine (estimate)
//	2 workers x 1 thread  229-247 ms      1.1-1.7%            8.0-8.6 img/s
//	1 worker x 2 threads  211-217 ms      16.8-19.9%          7.6-7.7 img/s
//
// The estimate is images x cores x (1 - idle share) / CPU time: wall time
// under such load says nothing (the same configuration took 18 s to 77 s for
// 32 images), while the idle share (no goroutine to run) and the CPU time
// do not depend on other processes. So the default is an estimated 5-13% faster on a
// machine of its own. Two models do cost 5-10% more CPU per image (the
// second model's load, and two copies of the weights competing for the
// caches): on a machine so shared that the CPU share, not idle cores, is the
// limit, -workers 1 -threads N can be as fast. Memory is the other cost:
// every worker holds the weights (f16: about 51 MB for ResNet-50, twice that
// with -f32) plus its activations; the start line on a terminal says how
// much.
//
// Exit status: 0 when every listed image was scored, 1 when any failed or the
// run could not start, 2 for a usage error, 130 when interrupted.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/residual-go/residual/core"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	status := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(status)
}

const usage = `usage: eval -model DIR -images DIR -labels FILE [-crops 1|10] [-json] [-limit N]
            [-results FILE] [-per-class] [-confused K] [-workers N] [-threads T] [-f32]

Classifies every image listed in FILE (Caffe's val.txt format: "relative/path
label_index" per line) with the converted model in DIR and prints the top-1
and top-5 error with 95% confidence intervals (Wilson score).

Examples:
  go run ./tools/eval -model weights/resnet50 -images val -labels val.txt
  go run ./tools/eval -model weights/resnet50 -images val -labels val.txt -crops 10 -results r10.jsonl
  go run ./tools/eval -model weights/resnet50 -images val -labels val.txt -json -limit 500 | tail -1

Flags:
`

// config is the parsed command line.
type config struct {
	model, images, list, results string
	crops, limit, confused       int
	workers, threads             int
	json, perClass, f32          bool
}

// maxPrintedFailures is how many failed images are described on stderr; the
// rest are only counted (and are in the -json and -results lines).
const maxPrintedFailures = 20

// run is the whole command, testable in-process: it returns the exit status.
// Cancelling ctx stops it after the images in flight (status 130).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, status := parseFlags(args, stderr)
	if status >= 0 {
		return status
	}
	if err := evaluate(ctx, cfg, stdout, stderr); err != nil {
		if errors.Is(err, errInterrupted) {
			fmt.Fprintf(stderr, "eval: %v\n", err)
			return 130
		}
		if errors.Is(err, errFailed) {
			return 1
		}
		fmt.Fprintf(stderr, "eval: %v\n", err)
		return 1
	}
	return 0
}

// parseFlags returns the configuration, and -1 or the exit status to return now.
func parseFlags(args []string, stderr io.Writer) (config, int) {
	var cfg config
	fl := flag.NewFlagSet("eval", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.StringVar(&cfg.model, "model", "", "model directory (manifest.json and shard-*.bin, written by tools/convert); required")
	fl.StringVar(&cfg.images, "images", "", "directory the list's paths are relative to; required")
	fl.StringVar(&cfg.list, "labels", "", "image list: `relative/path label_index` per line (Caffe's val.txt); required")
	fl.IntVar(&cfg.crops, "crops", 1, "1 (center crop) or 10 (corners, center and their mirrors, softmax averaged)")
	fl.BoolVar(&cfg.json, "json", false, "print one JSON line per image and a JSON summary as the last line")
	fl.IntVar(&cfg.limit, "limit", 0, "evaluate only the first N images of the list (0: all)")
	fl.StringVar(&cfg.results, "results", "", "append per-image results to this file and skip the images already in it (resume)")
	fl.BoolVar(&cfg.perClass, "per-class", false, "list the error of every class (text), or add \"per_class\" to the JSON summary")
	fl.IntVar(&cfg.confused, "confused", 10, "how many of the most confused class pairs to list")
	fl.IntVar(&cfg.workers, "workers", 0, "models classifying in parallel (0: one per core, divided by -threads)")
	fl.IntVar(&cfg.threads, "threads", 1, "kernel goroutines per model")
	fl.BoolVar(&cfg.f32, "f32", false, "widen the float16 weights to float32 once at load (twice the memory per worker; with one thread per worker float16 measured faster)")
	fl.Usage = func() {
		fmt.Fprint(stderr, usage)
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, 0
		}
		return cfg, 2
	}
	bad := ""
	switch {
	case cfg.model == "":
		bad = "-model is required"
	case cfg.images == "":
		bad = "-images is required"
	case cfg.list == "":
		bad = "-labels is required"
	case fl.NArg() > 0:
		bad = fmt.Sprintf("unexpected argument %q (images come from the -labels list)", fl.Arg(0))
	case cfg.crops != 1 && cfg.crops != 10:
		bad = "-crops must be 1 or 10"
	case cfg.limit < 0:
		bad = "-limit must be 0 (all) or more"
	case cfg.confused < 0:
		bad = "-confused must be 0 or more"
	case cfg.workers < 0:
		bad = "-workers must be 0 (one per core) or more"
	case cfg.threads < 1:
		bad = "-threads must be at least 1"
	}
	if bad != "" {
		fmt.Fprintf(stderr, "eval: %s (-h for help)\n", bad)
		return cfg, 2
	}
	if cfg.workers == 0 {
		cfg.workers = max(1, runtime.NumCPU()/cfg.threads)
	}
	return cfg, -1
}

var (
	errInterrupted = errors.New("interrupted")
	errFailed      = errors.New("some images failed") // already reported
)

// evaluate runs the evaluation cfg describes.
func evaluate(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	entries, err := readList(cfg.list)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(cfg.images); err != nil {
		return fmt.Errorf("images directory: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("images directory: %s is not a directory", cfg.images)
	}
	if cfg.limit > 0 && cfg.limit < len(entries) {
		entries = entries[:cfg.limit]
	}
	terminal := isTerminal(stderr)

	loadStart := time.Now()
	opts := core.Options{Float32Weights: cfg.f32, Threads: cfg.threads}
	first, err := core.Open(os.DirFS(cfg.model), opts)
	if err != nil {
		return fmt.Errorf("loading %s: %w", cfg.model, err)
	}
	models := []*core.Model{first}
	defer func() {
		for _, m := range models {
			m.Close()
		}
	}()
	info := first.Info()
	if info.Synthetic {
		fmt.Fprintf(stderr, "eval: warning: %s has synthetic weights: its errors are those of a random guess\n", info.Model)
	}
	manifestSum, labels, err := readManifest(cfg.model)
	if err != nil {
		return err
	}

	// Results already in the results file, and what is left to do.
	lines := make([]*imageLine, len(entries))
	var rf *resultsFile
	resumed := 0
	if cfg.results != "" {
		var done map[string]imageLine
		rf, done, err = openResults(cfg.results, resultsHeader{
			Format: resultsFormat, Version: resultsVersion, Model: info.Model, ManifestSHA256: manifestSum, Crops: cfg.crops,
		})
		if err != nil {
			return err
		}
		for i, e := range entries {
			// An image whose label the list has since moved out of range is
			// tried again, so that it fails like any other.
			if l, ok := done[e.Path]; ok && e.Label < info.Classes {
				l.Label = e.Label // the list is the truth, should it have changed
				lines[i] = &l
				resumed++
			}
		}
	}
	var todo []int
	for i, l := range lines {
		if l == nil {
			todo = append(todo, i)
		}
	}

	workers := max(1, min(cfg.workers, len(todo)))
	if err := openMore(&models, workers-1, cfg.model, opts); err != nil {
		if rf != nil {
			rf.close()
		}
		return fmt.Errorf("loading %s: %w", cfg.model, err)
	}
	if terminal {
		per := info.WeightBytes + info.ActivationBytes + info.ScratchBytes
		fmt.Fprintf(stderr, "eval: %s, %s, %d images (%d taken from %s): %s x %s, about %d x %.0f MB, loaded in %v\n",
			info.Model, plural(cfg.crops, "crop"), len(entries), resumed, orElse(cfg.results, "no results file"),
			plural(workers, "worker"), plural(cfg.threads, "thread"), workers, float64(per)/1e6, time.Since(loadStart).Round(time.Millisecond))
	}

	// Workers classify; this goroutine collects, in list order for stdout.
	jobs := make(chan int)
	type outcome struct {
		i    int
		line imageLine
	}
	outs := make(chan outcome, workers)
	go func() {
		defer close(jobs)
		for _, i := range todo {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for _, m := range models[:workers] {
		wg.Go(func() {
			for i := range jobs {
				outs <- outcome{i, classifyEntry(m, info.Classes, cfg, entries[i])}
			}
		})
	}
	go func() { wg.Wait(); close(outs) }()

	enc := json.NewEncoder(stdout)
	next := 0
	emit := func() {
		for ; next < len(lines) && lines[next] != nil; next++ {
			if cfg.json {
				enc.Encode(lines[next])
			}
		}
	}
	emit()
	start := time.Now()
	prog := progress{Total: len(todo)}
	for _, l := range lines {
		if l != nil {
			prog.Scored++
			if s := (scored{l.Label, l.Top}); !s.hit1() {
				prog.Wrong1++
			}
		}
	}
	var tick <-chan time.Time
	if terminal {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	draw := func() {
		prog.Elapsed = time.Since(start)
		fmt.Fprintf(stderr, "\r\x1b[K%s", prog.line())
	}
	clearBar := func() {
		if terminal {
			fmt.Fprint(stderr, "\r\x1b[K")
		}
	}
	failed := 0
	for open := true; open; {
		select {
		case o, ok := <-outs:
			if !ok {
				open = false
				break
			}
			prog.Done++
			if rf != nil {
				rf.append(o.line)
			}
			if o.line.Error != "" {
				failed++
				if failed <= maxPrintedFailures {
					clearBar()
					e := entries[o.i]
					fmt.Fprintf(stderr, "eval: %s (line %d): %s\n", e.Path, e.Line, o.line.Error)
					if failed == maxPrintedFailures {
						fmt.Fprintf(stderr, "eval: further failures are counted, not described here (see -json or -results)\n")
					}
				}
			} else {
				prog.Scored++
				if s := (scored{o.line.Label, o.line.Top}); !s.hit1() {
					prog.Wrong1++
				}
			}
			lines[o.i] = &o.line
			emit()
		case <-tick:
			draw()
		}
	}
	elapsed := time.Since(start)
	clearBar()
	var rfErr error
	if rf != nil {
		rfErr = rf.close()
	}
	if ctx.Err() != nil {
		how := "rerun with -results FILE to make a run resumable"
		if rf != nil && rfErr == nil {
			how = "run the same command again to continue from " + cfg.results
		}
		return fmt.Errorf("%w after %d of %d images: %s", errInterrupted, prog.Done, len(todo), how)
	}

	var images []scored
	for _, l := range lines {
		if l.Error == "" {
			images = append(images, scored{l.Label, l.Top})
		}
	}
	st := computeStats(images, labels)
	if cfg.json {
		writeSummary(stdout, cfg, info.Model, st, failed)
	} else {
		writeText(stdout, cfg, info, st, failed)
	}
	fmt.Fprintf(stderr, "eval: %s\n", finalLine(st.N, failed, len(todo), elapsed, workers, cfg.threads, resumed, cfg.results))
	if rfErr != nil {
		return rfErr
	}
	if failed > 0 {
		return errFailed
	}
	return nil
}

// finalLine is the line stderr gets at the end of a run.
func finalLine(scoredN, failed, classified int, elapsed time.Duration, workers, threads, resumed int, results string) string {
	s := fmt.Sprintf("%d images scored, %d failed; %d classified in %v", scoredN, failed, classified, roundDuration(elapsed))
	if classified > 0 {
		s += fmt.Sprintf(", %.1f img/s (%s x %s)", float64(classified)/elapsed.Seconds(), plural(workers, "worker"), plural(threads, "thread"))
	}
	if results != "" {
		s += fmt.Sprintf("; %d taken from %s", resumed, results)
	}
	return s
}

// plural is "1 worker" or "2 workers".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// orElse returns s, or alt when s is empty.
func orElse(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// readList reads and parses the image list.
func readList(name string) ([]entry, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("image list: %w", err)
	}
	defer f.Close()
	entries, err := parseList(f, name)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("image list %s has no images", name)
	}
	return entries, nil
}

// readManifest returns the sha256 of the model's manifest.json, which names
// every shard's sha256 and so identifies the weights, and the class labels
// it lists (weights/README.md: "labels", class i at index i; may be absent).
func readManifest(dir string) (sum string, labels []string, err error) {
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return "", nil, err
	}
	var m struct {
		Labels []string `json:"labels"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return "", nil, fmt.Errorf("%s/manifest.json: %w", dir, err)
	}
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:]), m.Labels, nil
}

// openMore opens n more models into *models, in parallel.
func openMore(models *[]*core.Model, n int, dir string, opts core.Options) error {
	more := make([]*core.Model, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { more[i], errs[i] = core.Open(os.DirFS(dir), opts) })
	}
	wg.Wait()
	for _, m := range more {
		if m != nil {
			*models = append(*models, m)
		}
	}
	return errors.Join(errs...)
}

// classifyEntry classifies one listed image. Every failure becomes the
// line's Error.
func classifyEntry(m *core.Model, classes int, cfg config, e entry) imageLine {
	l := imageLine{File: e.Path, Label: e.Label}
	if e.Label >= classes {
		l.Error = fmt.Sprintf("label %d is outside the model's %d classes (0..%d)", e.Label, classes, classes-1)
		return l
	}
	data, err := os.ReadFile(filepath.Join(cfg.images, filepath.FromSlash(e.Path)))
	if err != nil {
		l.Error = err.Error()
		return l
	}
	res, err := m.ClassifyBytes(data, core.ClassifyOptions{Top: 5, Crops: cfg.crops})
	if err != nil {
		l.Error = err.Error()
		return l
	}
	for _, p := range res.Top {
		l.Top = append(l.Top, p.Index)
		l.Prob = append(l.Prob, p.Prob)
	}
	return l
}
