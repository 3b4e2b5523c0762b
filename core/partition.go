package core

import (
	"fmt"
	"slices"

	"github.com/residual-go/residual/core/weights"
)

// Range is the op range [First, End) of one stage of a partitioned network.
type Range struct {
	First int `json:"first"`
	End   int `json:"end"`
}

// PartitionOptions configure Partition.
type PartitionOptions struct {
	// Budget is the most a stage may cost.
	Budget int64
	// Cost is what running the compiled range p takes, in the caller's
	// terms: for a Worker, the bytes of p's weights, activations and scratch
	// plus the tensors crossing its ends and what the front end around it
	// needs. A range that does not fit the Budget must cost more than it;
	// Partition assumes that a range costs at least its weights
	// (p.WeightBytes()), which grow with the range.
	Cost func(p *Program) int64
	// Skip, if set, says which cuts must not end a stage (a Worker keeps
	// the features of class activation maps and the layers after them in
	// its last stage, see MapsOp).
	Skip func(c Cut) bool
}

// Partition splits the ops of the validated manifest m into contiguous
// ranges cut at cuts (see Cuts), each within o.Budget:
//
//  1. as few ranges as possible (every stage is an isolate that loads
//     its slice and a hop that moves a tensor);
//  2. among those, the split whose costliest range costs least (the
//     tightest stage keeps the most headroom);
//  3. among those, the one moving the fewest values across its cuts.
//
// The search is exact: every range between two cuts (those o.Skip allows)
// whose weights fit the budget is compiled and costed once (a few thousand for ResNet-152, well
// under a second), then a shortest-path count, a bottleneck threshold and
// a sum are solved over them. It fails when some stretch between two
// consecutive cuts alone costs more than the budget.
func Partition(m *weights.Manifest, o PartitionOptions) ([]Range, error) {
	bounds := []int{0}
	cross := []int64{0} // values crossing at bounds[i] (0 at the ends)
	for _, c := range Cuts(m) {
		if o.Skip != nil && o.Skip(c) {
			continue
		}
		bounds = append(bounds, c.Op)
		cross = append(cross, int64(c.Shape[0]*c.Shape[1]*c.Shape[2]))
	}
	bounds = append(bounds, len(m.Ops))
	cross = append(cross, 0)
	nb := len(bounds)

	// cost[i][j-i-1] is the cost of [bounds[i], bounds[j]), for the ranges
	// whose weights alone fit (the others are never candidates).
	cost := make([][]int64, nb)
	for i := range nb - 1 {
		for j := i + 1; j < nb; j++ {
			p, err := Compile(m, CompileOptions{First: bounds[i], End: bounds[j]})
			if err != nil {
				return nil, err // cuts always compile: a bug
			}
			if p.WeightBytes() > o.Budget {
				break
			}
			cost[i] = append(cost[i], o.Cost(p))
		}
	}
	costOf := func(i, j int) (int64, bool) {
		if k := j - i - 1; k < len(cost[i]) {
			return cost[i][k], true
		}
		return 0, false
	}

	// fewest returns the least number of ranges from bound 0 to the end,
	// using only ranges costing at most limit, and -1 when there is none.
	fewest := func(limit int64) int {
		best := make([]int, nb)
		for j := 1; j < nb; j++ {
			best[j] = -1
			for i := range j {
				if c, ok := costOf(i, j); ok && c <= limit && best[i] >= 0 && (best[j] < 0 || best[i]+1 < best[j]) {
					best[j] = best[i] + 1
				}
			}
		}
		return best[nb-1]
	}
	stages := fewest(o.Budget)
	if stages < 0 {
		for i := range nb - 1 {
			if c, ok := costOf(i, i+1); !ok || c > o.Budget {
				p, _ := Compile(m, CompileOptions{First: bounds[i], End: bounds[i+1]})
				return nil, fmt.Errorf("core: Partition: ops [%d, %d) (%s .. %s), between two consecutive cuts, cost %d alone, more than the budget of %d",
					bounds[i], bounds[i+1], m.Ops[bounds[i]].Name, m.Ops[bounds[i+1]-1].Name, o.Cost(p), o.Budget)
			}
		}
		return nil, fmt.Errorf("core: Partition: no split fits the budget of %d", o.Budget) // not reached
	}

	// The least bottleneck with that many ranges.
	var limits []int64
	for i := range cost {
		for _, c := range cost[i] {
			if c <= o.Budget {
				limits = append(limits, c)
			}
		}
	}
	slices.Sort(limits)
	limits = slices.Compact(limits)
	lo, hi := 0, len(limits)-1 // fewest(limits[hi]) == stages; fewer stages never fit
	for lo < hi {
		mid := (lo + hi) / 2
		if fewest(limits[mid]) == stages {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	limit := limits[lo]

	// Among the splits into that many ranges within the bottleneck, the one
	// moving the fewest values: moved[k][j] is the least sum of crossings
	// reaching bound j with k ranges (-1: unreachable).
	moved := make([][]int64, stages+1)
	from := make([][]int, stages+1)
	for k := range moved {
		moved[k] = make([]int64, nb)
		from[k] = make([]int, nb)
		for j := range moved[k] {
			moved[k][j] = -1
		}
	}
	moved[0][0] = 0
	for k := 1; k <= stages; k++ {
		for j := 1; j < nb; j++ {
			for i := range j {
				c, ok := costOf(i, j)
				if !ok || c > limit || moved[k-1][i] < 0 {
					continue
				}
				if v := moved[k-1][i] + cross[j]; moved[k][j] < 0 || v < moved[k][j] {
					moved[k][j], from[k][j] = v, i
				}
			}
		}
	}
	ranges := make([]Range, stages)
	for k, j := stages, nb-1; k > 0; k-- {
		i := from[k][j]
		ranges[k-1] = Range{First: bounds[i], End: bounds[j]}
		j = i
	}
	return ranges, nil
}
