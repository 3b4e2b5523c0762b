package core

import (
	"fmt"
	"strings"
	"testing"
)

// TestPartitionIsOptimal compares Partition with an exhaustive search over
// every subset of cuts, on the test graphs, for a range of budgets: the
// same number of stages, the same costliest stage, the same values moved.
func TestPartitionIsOptimal(t *testing.T) {
	seen := map[int]int{} // stages -> cases
	for gi, b := range testGraphs() {
		m := readWeights(t, b).Manifest
		cuts := Cuts(m)
		if len(cuts) > 14 {
			cuts = cuts[:14] // keeps the exhaustive search small
		}
		// A cost with the shape of the Worker's: weights, activations and
		// the crossing tensors, plus a constant.
		cost := func(p *Program) int64 {
			return p.WeightBytes() + int64(p.ActivationFloats()/8+p.InputSize()+p.OutputSize()) + 100
		}
		whole, err := Compile(m, CompileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, frac := range []float64{1.01, 0.8, 0.6, 0.45, 0.35, 0.25, 0.15} {
			budget := int64(float64(cost(whole)) * frac)
			name := fmt.Sprintf("%d-%s/budget%.2f", gi, b.M.Model, frac)
			// Exhaustive: every subset of cuts.
			type score struct {
				stages      int
				worst, move int64
			}
			var best *score
			for mask := 0; mask < 1<<len(cuts); mask++ {
				bounds := []int{0}
				var move int64
				for k, c := range cuts {
					if mask&(1<<k) != 0 {
						bounds = append(bounds, c.Op)
						move += int64(c.Shape[0] * c.Shape[1] * c.Shape[2])
					}
				}
				bounds = append(bounds, len(m.Ops))
				s := score{stages: len(bounds) - 1, move: move}
				ok := true
				for k := 1; k < len(bounds) && ok; k++ {
					p, err := Compile(m, CompileOptions{First: bounds[k-1], End: bounds[k]})
					if err != nil {
						t.Fatal(err)
					}
					c := cost(p)
					s.worst = max(s.worst, c)
					ok = c <= budget
				}
				if ok && (best == nil || s.stages < best.stages || s.stages == best.stages && (s.worst < best.worst || s.worst == best.worst && s.move < best.move)) {
					best = &s
				}
			}
			// Partition over the same cuts only.
			kept := map[int]bool{}
			for _, c := range cuts {
				kept[c.Op] = true
			}
			got, err := Partition(m, PartitionOptions{Budget: budget, Cost: cost, Skip: func(c Cut) bool { return !kept[c.Op] }})
			if best == nil {
				seen[0]++
				if err == nil || !strings.Contains(err.Error(), "more than the budget") {
					t.Errorf("%s: no split fits, Partition says %v, %v", name, got, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			s := score{stages: len(got)}
			for k, r := range got {
				if k > 0 && r.First != got[k-1].End || r.First >= r.End {
					t.Fatalf("%s: ranges %v are not contiguous", name, got)
				}
				p, err := Compile(m, CompileOptions{First: r.First, End: r.End})
				if err != nil {
					t.Fatalf("%s: range %v: %v", name, r, err)
				}
				s.worst = max(s.worst, cost(p))
				if k > 0 {
					s.move += int64(p.InputSize())
				}
			}
			if got[0].First != 0 || got[len(got)-1].End != len(m.Ops) {
				t.Fatalf("%s: ranges %v do not cover the ops", name, got)
			}
			seen[s.stages]++
			if s != *best {
				t.Errorf("%s: Partition %v scores %+v, the exhaustive search %+v", name, got, s, *best)
			}
		}
	}
	t.Logf("cases by number of stages: %v", seen)
	if seen[1] == 0 || seen[2] == 0 || seen[3] == 0 {
		t.Errorf("cases by number of stages: %v; want splits into 1, 2 and 3 stages", seen)
	}
}
