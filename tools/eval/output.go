package main

// The summary: a text report or the final JSON object.

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/residual-go/residual/core"
)

// summary is the last line of -json output. The first seven fields are the
// contract (issue 12); the rest add context.
type summary struct {
	Images    int            `json:"images"` // scored: the denominator of the errors
	Failed    int            `json:"failed"` // not scored (see the per-image error lines)
	Crops     int            `json:"crops"`
	Top1Error *float64       `json:"top1_error"` // null when no image was scored
	Top5Error *float64       `json:"top5_error"`
	Top1CI    [2]float64     `json:"top1_ci95"`
	Top5CI    [2]float64     `json:"top5_ci95"`
	Model     string         `json:"model"`
	Interval  string         `json:"interval"` // how the CIs are computed
	Confused  []confusedPair `json:"confused"` // the -confused most frequent pairs
	PerClass  []classStat    `json:"per_class,omitempty"`
}

func newSummary(cfg config, model string, st stats, failed int) summary {
	s := summary{
		Images: st.N, Failed: failed, Crops: cfg.crops, Model: model, Interval: "wilson",
		Confused: st.Confused[:min(cfg.confused, len(st.Confused))],
	}
	if s.Confused == nil {
		s.Confused = []confusedPair{}
	}
	if st.N > 0 {
		e1, e5 := float64(st.Wrong1)/float64(st.N), float64(st.Wrong5)/float64(st.N)
		s.Top1Error, s.Top5Error = &e1, &e5
	}
	s.Top1CI[0], s.Top1CI[1] = wilson(st.Wrong1, st.N, z95)
	s.Top5CI[0], s.Top5CI[1] = wilson(st.Wrong5, st.N, z95)
	if cfg.perClass {
		s.PerClass = st.PerClass
	}
	return s
}

func writeSummary(w io.Writer, cfg config, model string, st stats, failed int) {
	line, _ := json.Marshal(newSummary(cfg, model, st, failed))
	fmt.Fprintf(w, "%s\n", line)
}

// published is the validation error of the released models
// (KaimingHe/deep-residual-networks README; weights/OFFICIAL.md), as
// fractions: 1-crop top-1, top-5, 10-crop top-1, top-5. Keyed by the model
// name tools/convert gives them (the prototxt's name).
var published = map[string][4]float64{
	"ResNet-50":  {0.247, 0.078, 0.229, 0.067},
	"ResNet-101": {0.236, 0.071, 0.218, 0.061},
	"ResNet-152": {0.230, 0.067, 0.214, 0.057},
}

// writeText prints the report:
//
//	LeNet, 1 crop: 10000 images scored, 0 failed
//
//	         error   95% CI (Wilson score)
//	top-1    0.86%   [0.70%, 1.06%]
//	top-5    0.01%   [0.00%, 0.06%]
//
// then the hardest classes (or, with -per-class, every class) and the most
// confused pairs.
func writeText(w io.Writer, cfg config, info core.Info, st stats, failed int) {
	s := newSummary(cfg, info.Model, st, failed)
	mode := "1 crop (center)"
	if cfg.crops == 10 {
		mode = "10 crops (corners, center, mirrors)"
	}
	fmt.Fprintf(w, "%s, %s: %d images scored, %d failed\n", info.Model, mode, st.N, failed)
	if st.N == 0 {
		fmt.Fprintln(w, "no image was scored: no error to report")
		return
	}
	fmt.Fprintf(w, "\n         %7s   %s\n", "error", "95% CI (Wilson score)")
	fmt.Fprintf(w, "top-1    %6.2f%%   [%.2f%%, %.2f%%]\n", 100**s.Top1Error, 100*s.Top1CI[0], 100*s.Top1CI[1])
	fmt.Fprintf(w, "top-5    %6.2f%%   [%.2f%%, %.2f%%]\n", 100**s.Top5Error, 100*s.Top5CI[0], 100*s.Top5CI[1])
	if p, ok := published[info.Model]; ok && !info.Synthetic {
		i := 0
		if cfg.crops == 10 {
			i = 2
		}
		fmt.Fprintf(w, "published %.1f%% top-1, %.1f%% top-5 (%s release, 50,000 ILSVRC2012 val images)\n",
			100*p[i], 100*p[i+1], info.Model)
	}
	if failed > 0 {
		n := float64(st.N + failed)
		fmt.Fprintf(w, "\n%d image(s) failed (see the error lines) and are not in these rates; counted as wrong, "+
			"top-1 error would be %.2f%% and top-5 %.2f%%\n",
			failed, 100*float64(st.Wrong1+failed)/n, 100*float64(st.Wrong5+failed)/n)
	}

	if cfg.perClass {
		fmt.Fprintf(w, "\nerror per class (%d classes with images):\n", len(st.PerClass))
		writeClasses(w, st.PerClass)
	} else if len(st.PerClass) > 1 {
		h := st.hardest(10)
		fmt.Fprintf(w, "\nclasses with the highest top-1 error (%d of %d; -per-class lists all):\n", len(h), len(st.PerClass))
		writeClasses(w, h)
	}
	if len(s.Confused) > 0 {
		fmt.Fprintf(w, "\nmost confused pairs (true class -> top-1 prediction; %d of %d pairs):\n", len(s.Confused), len(st.Confused))
		fmt.Fprintf(w, "  %6s  %6s  %s\n", "images", "share", "true -> predicted")
		for _, p := range s.Confused {
			fmt.Fprintf(w, "  %6d  %5.1f%%  %s -> %s\n", p.Count, 100*p.Share, className(p.True, p.TrueLabel), className(p.Predicted, p.PredictedLabel))
		}
	}
}

func writeClasses(w io.Writer, classes []classStat) {
	fmt.Fprintf(w, "  %5s  %6s  %7s  %7s  %s\n", "class", "images", "top-1", "top-5", "label")
	for _, c := range classes {
		fmt.Fprintf(w, "  %5d  %6d  %6.2f%%  %6.2f%%  %s\n", c.Class, c.Images, 100*c.Top1Error, 100*c.Top5Error, orElse(shorten(c.Label, 40), "-"))
	}
}

// className is "index label", the label shortened.
func className(i int, label string) string {
	if label == "" {
		return fmt.Sprint(i)
	}
	return fmt.Sprintf("%d %s", i, shorten(label, 32))
}

// shorten cuts s to at most n runes, marking the cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return strings.TrimSpace(string(r[:n-1])) + "…"
}
