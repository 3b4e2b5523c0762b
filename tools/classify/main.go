// Command classify labels images with a converted model (see tools/convert),
// natively, through package core.
//
//	go run ./tools/classify -model weights/resnet50 cat.jpg dog.png
//	go run ./tools/classify -model weights/resnet50 -json -top 3 -crops 10 *.jpg
//
// With -json it prints one JSON object per image per line:
//
//	{"file": "cat.jpg", "top": [{"index": 281, "label": "...", "prob": 0.91}, ...]}
//
// sorted by probability, descending; a file that cannot be read or classified
// gives {"file": "...", "error": "..."} and the others go on. Otherwise it
// prints a small table per image and the time taken. The exit status is 0 when
// every image was classified, 1 when any failed or the model could not be
// loaded, and 2 for a usage error.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/residual-go/residual/core"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage: classify -model DIR [-top K] [-crops 1|10] [-json] [-f32] [-threads N] IMAGE...
       classify -model DIR -info [-f32]

Classifies each IMAGE (JPEG, PNG, GIF, WebP, BMP or TIFF) with the converted
model in DIR (a manifest.json and its shards, written by tools/convert).

Examples:
  go run ./tools/classify -model weights/resnet50 cat.jpg
  go run ./tools/classify -model weights/resnet50 -top 3 -crops 10 photos/*.jpg
  go run ./tools/classify -model weights/resnet50 -json *.png | jq .top[0].label
  go run ./tools/classify -model weights/resnet50 -info

Flags:
`

// jsonLine is one line of -json output.
type jsonLine struct {
	File  string            `json:"file"`
	Top   []core.Prediction `json:"top,omitempty"`
	Error string            `json:"error,omitempty"`
}

// run is the whole command, testable in-process: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("classify", flag.ContinueOnError)
	fl.SetOutput(stderr)
	modelDir := fl.String("model", "", "model directory (manifest.json and shard-*.bin); required")
	top := fl.Int("top", 5, "number of predictions per image")
	crops := fl.Int("crops", 1, "1 (center crop) or 10 (corners, center and their mirrors, averaged)")
	asJSON := fl.Bool("json", false, "print one JSON object per image per line")
	f32 := fl.Bool("f32", false, "widen the float16 weights to float32 once at load (faster, twice the memory)")
	threads := fl.Int("threads", 0, "goroutines for the kernels (0: all cores)")
	showInfo := fl.Bool("info", false, "print the model's description (JSON: classes, parameters, memory) and exit")
	fl.Usage = func() {
		fmt.Fprint(stderr, usage)
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	files := fl.Args()
	switch {
	case *modelDir == "":
		return usageErr(stderr, "-model is required")
	case len(files) == 0 && !*showInfo:
		return usageErr(stderr, "no images given")
	case *top < 1:
		return usageErr(stderr, "-top must be at least 1")
	case *crops != 1 && *crops != 10:
		return usageErr(stderr, "-crops must be 1 or 10")
	case *threads < 0:
		return usageErr(stderr, "-threads must be 0 (all cores) or more")
	}

	start := time.Now()
	model, err := core.Open(os.DirFS(*modelDir), core.Options{Float32Weights: *f32, Threads: *threads})
	if err != nil {
		fmt.Fprintf(stderr, "classify: loading %s: %v\n", *modelDir, err)
		return 1
	}
	defer model.Close()
	info := model.Info()
	if *showInfo {
		out, _ := json.MarshalIndent(info, "", "  ")
		fmt.Fprintf(stdout, "%s\n", out)
		return 0
	}
	if info.Synthetic {
		fmt.Fprintf(stderr, "classify: warning: %s has synthetic weights: predictions are meaningless\n", info.Model)
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "%s: %d classes, weights %s (%.1f MB), %s kernels, loaded in %v\n",
			info.Model, info.Classes, info.WeightMode, float64(info.WeightBytes)/1e6, info.Kernels, time.Since(start).Round(time.Millisecond))
	}

	enc := json.NewEncoder(stdout)
	status := 0
	opts := core.ClassifyOptions{Top: *top, Crops: *crops}
	for _, file := range files {
		res, err := classifyFile(model, file, opts)
		if err != nil {
			status = 1
			if *asJSON {
				enc.Encode(jsonLine{File: file, Error: err.Error()})
			} else {
				fmt.Fprintf(stderr, "classify: %s: %v\n", file, err)
			}
			continue
		}
		if *asJSON {
			enc.Encode(jsonLine{File: file, Top: res.Top})
			continue
		}
		printTable(stdout, file, res, *crops)
	}
	return status
}

func classifyFile(m *core.Model, file string, o core.ClassifyOptions) (*core.Result, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return m.ClassifyBytes(data, o)
}

// printTable writes one image's predictions:
//
//	cat.jpg (1 crop, 212ms)
//	  rank    prob  label             index
//	     1   91.2%  tabby, tabby cat    281
func printTable(w io.Writer, file string, res *core.Result, crops int) {
	unit := "crop"
	if crops > 1 {
		unit = "crops"
	}
	fmt.Fprintf(w, "\n%s (%d %s, %v)\n", file, crops, unit, res.Elapsed.Round(time.Millisecond))
	width := len("label")
	for _, p := range res.Top {
		width = max(width, len(label(p)))
	}
	fmt.Fprintf(w, "  %4s  %6s  %-*s  %5s\n", "rank", "prob", width, "label", "index")
	for i, p := range res.Top {
		fmt.Fprintf(w, "  %4d  %5.1f%%  %-*s  %5d\n", i+1, 100*p.Prob, width, label(p), p.Index)
	}
}

// label is p's label, or "-" for a model without labels.
func label(p core.Prediction) string {
	if p.Label == "" {
		return "-"
	}
	return p.Label
}

func usageErr(stderr io.Writer, msg string) int {
	fmt.Fprintf(stderr, "classify: %s (-h for help)\n", msg)
	return 2
}
