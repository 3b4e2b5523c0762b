package main

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/residual-go/residual/core"
)

// TestWilsonPublished checks the interval against the worked examples of
// Newcombe, "Two-sided confidence intervals for the single proportion:
// comparison of seven methods", Statistics in Medicine 17 (1998), Table I,
// method 3 (score interval without continuity correction), given there to
// four decimals.
func TestWilsonPublished(t *testing.T) {
	for _, tc := range []struct {
		k, n   int
		lo, hi float64
	}{
		{81, 263, 0.2553, 0.3662},
		{15, 148, 0.0624, 0.1605},
		{0, 20, 0.0000, 0.1611},
		{1, 29, 0.0061, 0.1718},
	} {
		lo, hi := wilson(tc.k, tc.n, z95)
		if math.Abs(lo-tc.lo) > 0.5e-4 || math.Abs(hi-tc.hi) > 0.5e-4 {
			t.Errorf("wilson(%d, %d) = [%.5f, %.5f], Newcombe 1998: [%.4f, %.4f]", tc.k, tc.n, lo, hi, tc.lo, tc.hi)
		}
	}
}

// TestWilsonScoreInversion checks the closed form against its definition:
// the bounds are the proportions p at which the score statistic
// |k/n - p| / sqrt(p(1-p)/n) equals z, found here by bisection.
func TestWilsonScoreInversion(t *testing.T) {
	score := func(k, n int, p float64) float64 {
		return math.Abs(float64(k)/float64(n)-p) / math.Sqrt(p*(1-p)/float64(n))
	}
	// root finds p in (a, b) with score = z, score decreasing from a to b if down.
	root := func(k, n int, a, b float64, down bool) float64 {
		for range 200 {
			m := (a + b) / 2
			if (score(k, n, m) > z95) == down {
				a = m
			} else {
				b = m
			}
		}
		return (a + b) / 2
	}
	for _, n := range []int{1, 2, 7, 50, 1000, 50000} {
		for _, k := range []int{0, 1, n / 3, n / 2, n - 1, n} {
			if k < 0 || k > n {
				continue
			}
			lo, hi := wilson(k, n, z95)
			p := float64(k) / float64(n)
			wantLo, wantHi := 0.0, 1.0
			if k > 0 {
				wantLo = root(k, n, 0, p, true)
			}
			if k < n {
				wantHi = root(k, n, p, 1, false)
			}
			if math.Abs(lo-wantLo) > 1e-12 || math.Abs(hi-wantHi) > 1e-12 {
				t.Errorf("wilson(%d, %d) = [%.15f, %.15f], score inversion [%.15f, %.15f]", k, n, lo, hi, wantLo, wantHi)
			}
			if !(lo <= p && p <= hi) {
				t.Errorf("wilson(%d, %d) = [%v, %v] does not hold %v", k, n, lo, hi, p)
			}
		}
	}
	if lo, hi := wilson(0, 0, z95); lo != 0 || hi != 1 {
		t.Errorf("wilson(0, 0) = [%v, %v], want [0, 1]", lo, hi)
	}
}

// handScored: class 0 right, class 0 in top-5 only, class 0 wrong twice
// over, class 1 wrong, class 2 right (a model with fewer than five classes
// gives a shorter top), class 3 wrong at top-1 only.
var handScored = []scored{
	{0, []int{0, 1, 2, 3, 4}},
	{0, []int{1, 0, 2, 3, 4}},
	{0, []int{1, 2, 3, 4, 5}},
	{1, []int{2, 3, 4, 5, 6}},
	{2, []int{2}},
	{3, []int{1, 3, 0, 2, 4}},
}

func TestComputeStats(t *testing.T) {
	labels := []string{"n0 zero", "n1 one", "n2 two"} // class 3 has no label
	st := computeStats(handScored, labels)
	if st.N != 6 || st.Wrong1 != 4 || st.Wrong5 != 2 {
		t.Errorf("N %d, wrong %d top-1, %d top-5; want 6, 4, 2", st.N, st.Wrong1, st.Wrong5)
	}
	wantClasses := []classStat{
		{Class: 0, Label: "n0 zero", Images: 3, Top1Error: 2.0 / 3, Top5Error: 1.0 / 3},
		{Class: 1, Label: "n1 one", Images: 1, Top1Error: 1, Top5Error: 1},
		{Class: 2, Label: "n2 two", Images: 1},
		{Class: 3, Images: 1, Top1Error: 1},
	}
	if !reflect.DeepEqual(st.PerClass, wantClasses) {
		t.Errorf("per class %+v\nwant %+v", st.PerClass, wantClasses)
	}
	wantPairs := []confusedPair{
		{True: 0, TrueLabel: "n0 zero", Predicted: 1, PredictedLabel: "n1 one", Count: 2, Share: 2.0 / 3},
		{True: 1, TrueLabel: "n1 one", Predicted: 2, PredictedLabel: "n2 two", Count: 1, Share: 1},
		{True: 3, Predicted: 1, PredictedLabel: "n1 one", Count: 1, Share: 1},
	}
	if !reflect.DeepEqual(st.Confused, wantPairs) {
		t.Errorf("confused %+v\nwant %+v", st.Confused, wantPairs)
	}
	hard := st.hardest(3)
	if len(hard) != 3 || hard[0].Class != 1 || hard[1].Class != 3 || hard[2].Class != 0 {
		t.Errorf("hardest %+v, want classes 1, 3, 0", hard)
	}
}

// TestTextReport checks the text report of handScored line by line.
func TestTextReport(t *testing.T) {
	st := computeStats(handScored, []string{"n0 zero", "n1 one", "n2 two"})
	info := core.Info{Model: "Hand"}
	var b bytes.Buffer
	writeText(&b, config{crops: 1, confused: 2}, info, st, 2)
	want := `Hand, 1 crop (center): 6 images scored, 2 failed

           error   95% CI (Wilson score)
top-1     66.67%   [30.00%, 90.32%]
top-5     33.33%   [9.68%, 70.00%]

2 image(s) failed (see the error lines) and are not in these rates; counted as wrong, top-1 error would be 75.00% and top-5 50.00%

classes with the highest top-1 error (4 of 4; -per-class lists all):
  class  images    top-1    top-5  label
      1       1  100.00%  100.00%  n1 one
      3       1  100.00%    0.00%  -
      0       3   66.67%   33.33%  n0 zero
      2       1    0.00%    0.00%  n2 two

most confused pairs (true class -> top-1 prediction; 2 of 3 pairs):
  images   share  true -> predicted
       2   66.7%  0 n0 zero -> 1 n1 one
       1  100.0%  1 n1 one -> 2 n2 two
`
	if b.String() != want {
		t.Errorf("text report:\n%s\nwant\n%s", b.String(), want)
	}

	// -per-class lists every class by index; the published row appears for
	// the official models only.
	b.Reset()
	writeText(&b, config{crops: 10, perClass: true}, core.Info{Model: "ResNet-50"}, st, 0)
	for _, s := range []string{
		"ResNet-50, 10 crops (corners, center, mirrors): 6 images scored, 0 failed",
		"published 22.9% top-1, 6.7% top-5 (ResNet-50 release, 50,000 ILSVRC2012 val images)",
		"error per class (4 classes with images):\n  class  images    top-1    top-5  label\n      0       3   66.67%   33.33%  n0 zero\n      1 ",
	} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("-per-class report lacks %q:\n%s", s, b.String())
		}
	}
	if strings.Contains(b.String(), "most confused") {
		t.Errorf("-confused 0 still lists pairs:\n%s", b.String())
	}
	b.Reset()
	writeText(&b, config{crops: 1}, core.Info{Model: "ResNet-50", Synthetic: true}, st, 0)
	if strings.Contains(b.String(), "published") {
		t.Errorf("a synthetic model is compared with the published error:\n%s", b.String())
	}
}

// TestJSONSummary checks the summary object: the contract's fields, null
// errors when nothing was scored, per_class only with -per-class.
func TestJSONSummary(t *testing.T) {
	var b bytes.Buffer
	writeSummary(&b, config{crops: 10, confused: 1, perClass: true}, "Hand", computeStats(handScored, nil), 1)
	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil || !strings.HasSuffix(b.String(), "}\n") || strings.Count(b.String(), "\n") != 1 {
		t.Fatalf("summary %q: %v", b.String(), err)
	}
	lo1, hi1 := wilson(4, 6, z95)
	lo5, hi5 := wilson(2, 6, z95)
	want := map[string]any{
		"images": 6.0, "failed": 1.0, "crops": 10.0, "top1_error": 4.0 / 6, "top5_error": 2.0 / 6,
		"top1_ci95": []any{lo1, hi1}, "top5_ci95": []any{lo5, hi5}, "model": "Hand", "interval": "wilson",
	}
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if c, ok := got["confused"].([]any); !ok || len(c) != 1 {
		t.Errorf("confused = %v, want 1 pair", got["confused"])
	}
	if c, ok := got["per_class"].([]any); !ok || len(c) != 4 {
		t.Errorf("per_class = %v, want 4 classes", got["per_class"])
	}

	b.Reset()
	writeSummary(&b, config{crops: 1, confused: 10}, "Hand", computeStats(nil, nil), 3)
	const empty = `{"images":0,"failed":3,"crops":1,"top1_error":null,"top5_error":null,"top1_ci95":[0,1],"top5_ci95":[0,1],"model":"Hand","interval":"wilson","confused":[]}` + "\n"
	if b.String() != empty {
		t.Errorf("summary of nothing:\n%s\nwant\n%s", b.String(), empty)
	}
}

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		p    progress
		want string
	}{
		{progress{Total: 100}, "[------------------------]   0.0%  0/100  -- img/s  ETA --"},
		{progress{Total: 100, Done: 25, Elapsed: 5 * time.Second, Scored: 20, Wrong1: 5},
			"[######------------------]  25.0%  25/100  5.0 img/s  ETA 15s  top-1 err 25.0%"},
		{progress{Total: 50000, Done: 1000, Elapsed: 100 * time.Second, Scored: 1000, Wrong1: 247},
			"[------------------------]   2.0%  1000/50000  10.0 img/s  ETA 1h21m40s  top-1 err 24.7%"},
		{progress{Total: 8, Done: 8, Elapsed: 2 * time.Second, Scored: 9, Wrong1: 0},
			"[########################] 100.0%  8/8  4.0 img/s  ETA 0s  top-1 err 0.0%"},
		{progress{Total: 0, Scored: 4, Wrong1: 1}, "[########################] 100.0%  0/0  -- img/s  ETA --  top-1 err 25.0%"},
	} {
		if got := tc.p.line(); got != tc.want {
			t.Errorf("%+v:\n got %q\nwant %q", tc.p, got, tc.want)
		}
	}
}

// TestProgressNotOnPipes: stderr that is not a terminal gets no bar, only
// the final line.
func TestProgressNotOnPipes(t *testing.T) {
	images, list := writeDigits(t, 12)
	status, _, stderr := runCmd(t, "-model", lenet(t), "-images", images, "-labels", list)
	if status != 0 || strings.ContainsAny(stderr, "\r\x1b") || strings.Count(stderr, "\n") != 1 ||
		!strings.HasPrefix(stderr, "eval: 12 images scored, 0 failed; 12 classified in ") || !strings.Contains(stderr, "img/s") {
		t.Errorf("status %d, stderr %q; want one final line", status, stderr)
	}
}
