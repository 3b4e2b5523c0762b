// Command convert turns a Caffe model (.caffemodel, optionally with its deploy
// .prototxt, a mean .binaryproto and synset_words.txt labels) into residual's
// weights format: DIR/manifest.json and DIR/shard-NNN.bin, float16 tensors
// with BatchNorm and Scale folded into the convolutions and ReLUs fused.
// weights/README.md specifies the output byte by byte.
//
// Usage:
//
//	go run ./tools/convert -caffemodel M [-prototxt P] [-mean F.binaryproto]
//	    [-mean-values 104,117,123] [-scale S] [-labels synset_words.txt]
//	    [-name NAME] [-synthetic] [-shard-size BYTES] [-force] -out DIR
//
// The output appears atomically: a temporary directory beside DIR is checked
// with core's reader (manifest validation, shard sha256) and renamed to DIR
// at the end, and removed on any error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/tools/convert/convert"
)

// gcPercent: the caffemodel's blobs stay live for the whole conversion, so
// Go's default (a heap twice the live data before a collection) would double
// the peak; the garbage is small (tensor buffers are reused), so collecting
// at +25% costs little time and keeps the peak near the file's size.
const gcPercent = 25

func main() {
	debug.SetGCPercent(gcPercent)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: convert -caffemodel M [-prototxt P] [flags] -out DIR

Converts a Caffe model into residual's weights format (weights/README.md):
DIR/manifest.json and DIR/shard-000.bin, ... (float16, BatchNorm and Scale
folded into the convolutions, ReLU fused). DIR appears atomically.

Examples:
  # the official ResNet-50, with the authors' mean image and the ImageNet labels
  go run ./tools/convert -caffemodel ResNet-50-model.caffemodel \
      -prototxt weights/prototxt/ResNet-50-deploy.prototxt \
      -mean ResNet_mean.binaryproto -labels weights/synset_words.txt \
      -name ResNet-50 -out weights/resnet50

  # Caffe's MNIST LeNet: the caffemodel holds the training net, the prototxt
  # the net to run; the input scale 0.00390625 comes from the caffemodel
  go run ./tools/convert -caffemodel lenet_iter_10000.caffemodel \
      -prototxt lenet.prototxt -out weights/lenet

Flags:
`

// config is the parsed command line.
type config struct {
	opts       convert.Options
	meanValues string
	scale      string
}

func parse(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse errors become one line in run
	fs.Usage = func() {}     // -h prints the usage in run
	help := func() {
		fmt.Fprint(stderr, usage)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	o := &c.opts
	fs.StringVar(&o.Caffemodel, "caffemodel", "", "trained `model` (.caffemodel, binary NetParameter); required")
	fs.StringVar(&o.Prototxt, "prototxt", "", "deploy net definition (.prototxt); blobs are taken from the caffemodel by layer name")
	fs.StringVar(&o.Mean, "mean", "", "mean image (.binaryproto), center-cropped to the input size")
	fs.StringVar(&c.meanValues, "mean-values", "", "per-channel mean `values` in the input's channel order (BGR), e.g. 104,117,123")
	fs.StringVar(&c.scale, "scale", "", "input `scale` applied after the mean (default: the caffemodel's transform_param scale, else 1)")
	fs.IntVar(&o.Resize, "resize", 0, "shorter side before the center crop (default 256 for 224x224 inputs, else the input size)")
	fs.StringVar(&o.Labels, "labels", "", "class labels, one per line, Caffe's synset_words.txt form")
	fs.StringVar(&o.Name, "name", "", "model name for the manifest (default: the net's name)")
	fs.BoolVar(&o.Synthetic, "synthetic", false, "mark the model as random (generated) weights")
	fs.Int64Var(&o.ShardSize, "shard-size", weights.MaxShardSize, "largest shard, in `bytes` (at most 25 MiB)")
	fs.StringVar(&o.Out, "out", "", "output `directory`; required, must not exist or be empty (see -force)")
	fs.BoolVar(&o.Force, "force", false, "replace an existing non-empty output directory")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			help()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: every input is given by a flag", fs.Arg(0))
	}
	if o.Caffemodel == "" || o.Out == "" {
		return nil, errors.New("-caffemodel and -out are required")
	}
	if c.meanValues != "" {
		for _, f := range strings.Split(c.meanValues, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil {
				return nil, fmt.Errorf("-mean-values %q: %q is not a number", c.meanValues, f)
			}
			o.MeanValues = append(o.MeanValues, v)
		}
	}
	if c.scale != "" {
		v, err := strconv.ParseFloat(c.scale, 64)
		if err != nil || v == 0 {
			return nil, fmt.Errorf("-scale %q: want a non-zero number", c.scale)
		}
		o.Scale = &v
	}
	if o.ShardSize < 1 || o.ShardSize > weights.MaxShardSize {
		return nil, fmt.Errorf("-shard-size %d: must be between 1 and %d bytes", o.ShardSize, weights.MaxShardSize)
	}
	return c, nil
}

// run is the whole command: it returns the exit status. Errors are one line
// on stderr, "convert: ...".
func run(args []string, stdout, stderr io.Writer) int {
	c, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "convert: %v (see -h)\n", strings.TrimSuffix(err.Error(), " (see -h)"))
		return 1
	}
	bar := newProgress(stderr)
	c.opts.Progress = bar.update
	start := time.Now()
	sum, err := convert.Convert(c.opts)
	bar.finish()
	if err != nil {
		fmt.Fprintf(stderr, "convert: %s\n", oneLine(err.Error()))
		return 1
	}
	for _, w := range sum.Warnings {
		fmt.Fprintf(stderr, "convert: warning: %s\n", w)
	}
	printSummary(stdout, c.opts, sum, time.Since(start))
	return 0
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func printSummary(w io.Writer, o convert.Options, s *convert.Summary, took time.Duration) {
	m := s.Manifest
	counts := map[string]int{}
	var order []string
	for _, op := range m.Ops {
		if counts[op.Type] == 0 {
			order = append(order, op.Type)
		}
		counts[op.Type]++
	}
	var ops []string
	for _, t := range order {
		ops = append(ops, fmt.Sprintf("%d %s", counts[t], t))
	}
	f32 := 0
	for _, t := range s.Tensors {
		if t.DType == "f32" {
			f32++
		}
	}
	worst, worstNormal := "none", "none"
	if s.Worst.Name != "" {
		worst = fmt.Sprintf("%.3g (%s)", s.Worst.MaxRelError, s.Worst.Name)
	}
	if s.WorstNormal.Name != "" {
		worstNormal = fmt.Sprintf("%.3g (%s)", s.WorstNormal.MaxRelErrorNormal, s.WorstNormal.Name)
	}
	rows := [][2]string{
		{"model", m.Model},
		{"output", o.Out},
		{"layers in", strconv.Itoa(s.LayersIn)},
		{"ops out", fmt.Sprintf("%d (%s)", s.Ops, strings.Join(ops, ", "))},
		{"input", fmt.Sprintf("%s %dx%dx%d %s, resize %d, scale %g", m.Input.Name, m.Input.Channels, m.Input.Height, m.Input.Width,
			m.Preprocess.ChannelOrder, m.Preprocess.Resize, m.Preprocess.Scale)},
		{"parameters", fmt.Sprintf("%d", s.Params)},
		{"tensors", fmt.Sprintf("%d (%d float32)", len(s.Tensors), f32)},
		{"bytes", fmt.Sprintf("%d (%.1f MiB)", s.Bytes, float64(s.Bytes)/(1<<20))},
		{"shards", strconv.Itoa(len(m.Shards))},
		{"worst f16 rel. error", worstNormal + " for |x| >= 2^-14"},
		{"  incl. subnormals", fmt.Sprintf("%s; %d values stored as subnormals", worst, s.Subnormal)},
		{"flushed to zero", strconv.Itoa(s.Flushed)},
		{"time", fmt.Sprintf("%v (read %v, write %v)", took.Round(time.Millisecond),
			s.ReadTime.Round(time.Millisecond), s.WriteTime.Round(time.Millisecond))},
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-21s %s\n", r[0], r[1])
	}
}

// progress shows how far the conversion got. On a terminal it draws a bar
// per stage, redrawn in place. Anywhere else (a pipe, a file, a CI log) it
// prints nothing while working and one line at the end, also after a
// failure: how far each stage got, so a log says where a conversion stopped
// without pages of percentages.
type progress struct {
	w        io.Writer
	tty      bool
	stage    string
	lastPct  int
	lastDraw time.Time
	drawn    bool
	reached  []stageProgress // every stage seen, in order, with its last report
}

type stageProgress struct {
	stage       string
	done, total int64
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, tty: isTerminal(w), lastPct: -1}
}

// isTerminal reports whether w is a character device: a terminal (or
// /dev/null, where the bar is harmless). Pipes and regular files are not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

var stageNames = map[string]string{"read": "reading", "write": "writing", "verify": "verifying"}

// stageDone says what a stage did, for the closing line: "read", "bytes".
var stageDone = map[string][2]string{"read": {"read", "bytes"}, "write": {"wrote", "values"}, "verify": {"verified", "bytes"}}

func (p *progress) update(stage string, done, total int64) {
	if total <= 0 {
		return
	}
	if n := len(p.reached); n == 0 || p.reached[n-1].stage != stage {
		p.reached = append(p.reached, stageProgress{stage: stage})
	}
	p.reached[len(p.reached)-1].done, p.reached[len(p.reached)-1].total = done, total
	if !p.tty {
		return
	}
	pct := int(done * 100 / total)
	if stage != p.stage {
		if p.drawn {
			fmt.Fprintln(p.w)
		}
		p.stage, p.lastPct, p.drawn = stage, -1, false
	}
	if pct == p.lastPct && time.Since(p.lastDraw) < 100*time.Millisecond {
		return
	}
	const width = 40
	fill := int(done * width / total)
	fmt.Fprintf(p.w, "\rconvert: %-9s [%s%s] %3d%%", stageNames[stage], strings.Repeat("=", fill), strings.Repeat(" ", width-fill), pct)
	p.lastPct, p.lastDraw, p.drawn = pct, time.Now(), true
}

// finish ends the bar on a terminal, or prints the one closing line.
func (p *progress) finish() {
	if p.tty {
		if p.drawn {
			fmt.Fprintln(p.w)
		}
		return
	}
	if len(p.reached) == 0 {
		return
	}
	var parts []string
	for _, r := range p.reached {
		d := stageDone[r.stage]
		parts = append(parts, fmt.Sprintf("%s %d%% (%d of %d %s)", d[0], r.done*100/r.total, r.done, r.total, d[1]))
	}
	fmt.Fprintf(p.w, "convert: progress: %s\n", strings.Join(parts, ", "))
}
