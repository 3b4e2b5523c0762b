package main

// Error rates, their confidence intervals, per-class errors and the most
// confused pairs, computed from the per-image top-5.

import (
	"cmp"
	"math"
	"slices"
)

// z95 is the 97.5% quantile of the standard normal distribution: a two-sided
// 95% interval.
const z95 = 1.959963984540054

// wilson returns the Wilson score interval for k successes in n trials at the
// normal quantile z: the set of proportions p for which a two-sided score
// test of p does not reject the observed k/n. Unlike the normal
// approximation k/n ± z·sqrt(p(1-p)/n) (the "Wald" interval), it stays inside
// [0, 1] and keeps close to its nominal coverage for proportions near 0 or 1,
// such as the 0.86% top-1 error of LeNet on MNIST or a top-5 error on a few
// images (Brown, Cai and DasGupta, Statistical Science 2001; Newcombe,
// Statistics in Medicine 1998). With n = 0 nothing is known: [0, 1].
func wilson(k, n int, z float64) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	nf, p := float64(n), float64(k)/float64(n)
	z2 := z * z
	denom := 1 + z2/nf
	center := (p + z2/(2*nf)) / denom
	half := z / denom * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	lo, hi = center-half, center+half
	// The exact bounds for k = 0 and k = n are 0 and 1; rounding can miss them.
	if k == 0 {
		lo = 0
	}
	if k == n {
		hi = 1
	}
	return max(lo, 0), min(hi, 1)
}

// scored is one classified image: its true class and the predicted classes,
// most probable first (at most five).
type scored struct {
	Label int
	Top   []int
}

// hit1 and hit5 tell whether the label is the top prediction, or among the
// first five.
func (s scored) hit1() bool { return len(s.Top) > 0 && s.Top[0] == s.Label }
func (s scored) hit5() bool { return slices.Contains(s.Top[:min(5, len(s.Top))], s.Label) }

// classStat is the error of one class, over the scored images labelled with it.
type classStat struct {
	Class     int     `json:"class"`
	Label     string  `json:"label,omitempty"`
	Images    int     `json:"images"`
	Top1Error float64 `json:"top1_error"`
	Top5Error float64 `json:"top5_error"`
}

// confusedPair counts the images of class True whose top-1 prediction was
// Predicted (a different class). Share is Count over the images of True.
type confusedPair struct {
	True           int     `json:"true"`
	TrueLabel      string  `json:"true_label,omitempty"`
	Predicted      int     `json:"predicted"`
	PredictedLabel string  `json:"predicted_label,omitempty"`
	Count          int     `json:"count"`
	Share          float64 `json:"share"`
}

// stats summarizes scored images.
type stats struct {
	N, Wrong1, Wrong5 int
	PerClass          []classStat    // classes with at least one image, by class index
	Confused          []confusedPair // all pairs, most frequent first
}

// computeStats tallies the images. labels (possibly nil or short) names the
// classes.
func computeStats(images []scored, labels []string) stats {
	type tally struct{ n, w1, w5 int }
	var st stats
	classes := map[int]*tally{}
	pairs := map[[2]int]int{}
	for _, s := range images {
		c := classes[s.Label]
		if c == nil {
			c = &tally{}
			classes[s.Label] = c
		}
		st.N++
		c.n++
		if !s.hit1() {
			st.Wrong1++
			c.w1++
			if len(s.Top) > 0 {
				pairs[[2]int{s.Label, s.Top[0]}]++
			}
		}
		if !s.hit5() {
			st.Wrong5++
			c.w5++
		}
	}
	name := func(i int) string {
		if i >= 0 && i < len(labels) {
			return labels[i]
		}
		return ""
	}
	for class, c := range classes {
		st.PerClass = append(st.PerClass, classStat{
			Class: class, Label: name(class), Images: c.n,
			Top1Error: float64(c.w1) / float64(c.n), Top5Error: float64(c.w5) / float64(c.n),
		})
	}
	slices.SortFunc(st.PerClass, func(a, b classStat) int { return cmp.Compare(a.Class, b.Class) })
	for p, n := range pairs {
		st.Confused = append(st.Confused, confusedPair{
			True: p[0], TrueLabel: name(p[0]), Predicted: p[1], PredictedLabel: name(p[1]),
			Count: n, Share: float64(n) / float64(classes[p[0]].n),
		})
	}
	// Most frequent first; ties by true class, then predicted class, so the
	// listing is the same on every run.
	slices.SortFunc(st.Confused, func(a, b confusedPair) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.True, b.True), cmp.Compare(a.Predicted, b.Predicted))
	})
	return st
}

// hardest returns up to k classes by top-1 error, highest first (ties: more
// images first, then class index).
func (st stats) hardest(k int) []classStat {
	c := slices.Clone(st.PerClass)
	slices.SortStableFunc(c, func(a, b classStat) int {
		return cmp.Or(cmp.Compare(b.Top1Error, a.Top1Error), cmp.Compare(b.Images, a.Images), cmp.Compare(a.Class, b.Class))
	})
	return c[:min(k, len(c))]
}
