// Command classify labels images with a converted model (see tools/convert),
// natively, through package core.
//
//	go run ./tools/classify -model weights/resnet50 cat.jpg dog.png
//	go run ./tools/classify -model weights/resnet50 -json -top 3 -crops 10 *.jpg
//	go run ./tools/classify -model weights/resnet50 -cam maps/ cat.jpg
//
// With -json it prints one JSON object per image per line:
//
//	{"file": "cat.jpg", "top": [{"index": 281, "label": "...", "prob": 0.91}, ...]}
//
// sorted by probability, descending. With -cam DIR it also writes
// DIR/<image name>.cam.png, the class activation map of the top-1 class
// blended over the image at the image's own size, and each JSON line gains
// "cam": {"index": c, "grid": [[...]], "png": "DIR/<image name>.cam.png"}, grid
// being the raw map of the center crop (7 rows of 7 values for a ResNet at
// 224), before any normalization or resizing. A file that cannot be read or classified
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
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/heatmap"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage: classify -model DIR [-top K] [-crops 1|10] [-json] [-cam DIR] [-f32] [-threads N] IMAGE...
       classify -model DIR -info [-f32]

Classifies each IMAGE (JPEG, PNG, GIF, WebP, BMP or TIFF) with the converted
model in DIR (a manifest.json and its shards, written by tools/convert).

Examples:
  go run ./tools/classify -model weights/resnet50 cat.jpg
  go run ./tools/classify -model weights/resnet50 -top 3 -crops 10 photos/*.jpg
  go run ./tools/classify -model weights/resnet50 -json *.png | jq .top[0].label
  go run ./tools/classify -model weights/resnet50 -cam maps/ cat.jpg   # maps/cat.jpg.cam.png
  go run ./tools/classify -model weights/resnet50 -info

Flags:
`

// jsonLine is one line of -json output.
type jsonLine struct {
	File  string            `json:"file"`
	Top   []core.Prediction `json:"top,omitempty"`
	CAM   *camJSON          `json:"cam,omitempty"`
	Error string            `json:"error,omitempty"`
}

// camJSON is the "cam" object of a -json line.
type camJSON struct {
	Index int         `json:"index"`
	Grid  [][]float32 `json:"grid"`
	PNG   string      `json:"png"`
}

// run is the whole command, testable in-process: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("classify", flag.ContinueOnError)
	fl.SetOutput(stderr)
	modelDir := fl.String("model", "", "model directory (manifest.json and shard-*.bin); required")
	top := fl.String("top", "5", "number of predictions per image (more than the classes: all)")
	crops := fl.String("crops", "1", "1 (center crop) or 10 (corners, center and their mirrors, averaged)")
	asJSON := fl.Bool("json", false, "print one JSON object per image per line")
	f32 := fl.Bool("f32", false, "widen the float16 weights to float32 once at load (twice the memory; measured faster with 2 threads, slower with 1)")
	threads := fl.Int("threads", 0, "goroutines for the kernels (0: all cores)")
	showInfo := fl.Bool("info", false, "print the model's description (JSON: classes, parameters, memory) and exit")
	camDir := fl.String("cam", "", "write each image's class activation map (top-1 class) over the image to `DIR`/<image name>.cam.png")
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
	// The classification options are read and checked by core, as the
	// page and the Worker have them read.
	opts, err := core.ParseClassifyOptions(func(name string) (string, bool) {
		switch name {
		case core.OptTop:
			return *top, true
		case core.OptCrops:
			return *crops, true
		case core.OptCAM:
			return "1", *camDir != ""
		}
		return "", false
	})
	switch {
	case *modelDir == "":
		return usageErr(stderr, "-model is required")
	case len(files) == 0 && !*showInfo:
		return usageErr(stderr, "no images given")
	case err != nil:
		return usageErr(stderr, err.Error())
	case *threads < 0:
		return usageErr(stderr, "-threads must be 0 (all cores) or more")
	}

	start := time.Now()
	model, err := core.Open(os.DirFS(*modelDir), core.Options{Float32Weights: *f32, Threads: *threads, CAM: *camDir != ""})
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
	if *camDir != "" {
		if !info.CAM {
			fmt.Fprintf(stderr, "classify: -cam: %s has no class activation maps (it does not end in global average pooling and an inner product)\n", info.Model)
			return 1
		}
		if err := os.MkdirAll(*camDir, 0o755); err != nil {
			fmt.Fprintf(stderr, "classify: -cam: %v\n", err)
			return 1
		}
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
	written := map[string]string{} // map file -> the image it shows
	for _, file := range files {
		res, cam, err := classifyFile(model, file, opts, *camDir, written)
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
			enc.Encode(jsonLine{File: file, Top: res.Top, CAM: cam})
			continue
		}
		printTable(stdout, file, res, opts.Crops)
		if cam != nil {
			fmt.Fprintf(stdout, "  class activation map of %d: %s\n", cam.Index, cam.PNG)
		}
	}
	return status
}

// classifyFile classifies one file and, with a camDir, writes its map.
func classifyFile(m *core.Model, file string, o core.ClassifyOptions, camDir string, written map[string]string) (*core.Result, *camJSON, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	img, err := m.Decode(data)
	if err != nil {
		return nil, nil, err
	}
	res, err := m.ClassifyImage(img, o)
	if err != nil || camDir == "" {
		return res, nil, err
	}
	cm := &res.Maps[0]
	out := filepath.Join(camDir, filepath.Base(file)+".cam.png")
	if prev, ok := written[out]; ok {
		return nil, nil, fmt.Errorf("its map would overwrite %s, the map of %s (same file name): classify them in separate runs or -cam directories", out, prev)
	}
	b := img.Bounds()
	if err := writePNG(out, heatmap.Overlay(img, cm, b.Dx(), b.Dy())); err != nil {
		return nil, nil, err
	}
	written[out] = file
	return res, &camJSON{Index: cm.Class, Grid: cm.Grid(), PNG: out}, nil
}

// writePNG writes img to path through a temporary file renamed into place.
func writePNG(path string, img image.Image) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".cam-*.png")
	if err != nil {
		return err
	}
	err = png.Encode(f, img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
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
