package webgpu

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/internal/testfiles"
)

// TestResNetDispatches plans the generated ResNets (make synthetic-all;
// those missing are skipped) and checks what one inference submits: one
// dispatch per convolution (the residual sums are fused into them), one per
// pool, the inner product and the softmax, plus one reduce per split-K conv.
func TestResNetDispatches(t *testing.T) {
	for _, name := range []string{"resnet50-synthetic", "resnet101-synthetic", "resnet152-synthetic"} {
		dir := filepath.Join(testfiles.Root(), "weights", name)
		m, err := weights.ReadManifest(os.DirFS(dir))
		if err != nil {
			t.Logf("%s: skipped (%v)", name, err)
			continue
		}
		p, err := core.Compile(m, core.CompileOptions{FuseResidual: true})
		if err != nil {
			t.Fatal(err)
		}
		convs := 0
		for _, s := range p.Steps {
			if s.Kind == weights.OpConv {
				convs++
			}
			if s.Kind == weights.OpEltwise {
				t.Errorf("%s: eltwise %s was not fused", name, s.Name)
			}
		}
		a := NewArena(p)
		for _, n := range []int{1, 10} {
			pl, err := BuildPlan(p, a, n, Tiling{})
			if err != nil {
				t.Fatal(err)
			}
			counts, total := pl.Counts()
			if counts["conv.wgsl:main"] != convs || total != convs+counts["conv.wgsl:reduce"]+4 {
				t.Errorf("%s batch %d: %v (%d) for %d convs", name, n, counts, total, convs)
			}
			t.Logf("%s batch %d: %d dispatches %v, %d pipelines, split-K scratch %.1f MB", name, n, total, counts,
				len(pl.Keys()), float64(pl.PartialFloats)*4/1e6)
		}
	}
}
