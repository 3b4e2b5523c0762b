//go:build !(js && wasm)

package e2e

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/weights"
)

// camTol bounds max |CAM_core - CAM_ref| over the grid, relative to the
// range of the reference map. The map is the logit spread over the grid
// (its mean over the 49 positions plus the bias is the logit), but a single
// position does not average its errors away as the mean does: about
// sqrt(49) = 7 times the logits' relative error (logitTol) is expected.
// Measured: 2.9e-5 (ResNet-50), 8.6e-4 (ResNet-152). A map of the wrong
// class, position or crop is off by the whole range.
const camTol = 7 * logitTol

// camLayers finds the class activation map's ingredients in a converted
// ResNet: the blob pool5 averages (the last block's output) and the fc1000
// layer whose weights weigh it.
func camLayers(t *testing.T, m *weights.Manifest) (feature, fc string) {
	t.Helper()
	for _, op := range m.Ops {
		switch op.Type {
		case weights.OpPool:
			if op.Pool == "ave" {
				feature = op.Inputs[0]
			}
		case weights.OpInnerProduct:
			fc = op.Name
		}
	}
	if feature == "" || fc == "" {
		t.Fatalf("%s: no average pooling and inner product", m.Model)
	}
	return feature, fc
}

// TestEndToEndCAM: core's class activation map of the reference's top-1
// class, on the center crop, against CAM_c(x, y) = sum_k W[c,k] F_k(x, y)
// computed in float64 from the reference's own features F (its pool5 input)
// and the same float16 fc1000 weights W, for ResNet-50 and ResNet-152. The
// golden files keep only the reference's class and 7x7 grid.
func TestEndToEndCAM(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the class activation maps of generated ResNets")
	}
	for _, em := range []e2eModel{e2eModels[0], e2eModels[2]} {
		t.Run(em.name, func(t *testing.T) {
			dir := convertResNet(t, em)
			ref := loadRefModel(t, dir)
			feature, fcName := camLayers(t, ref.m)
			var fc []float64 // classes x channels, the reference net's (float16-exact) weights
			for _, l := range ref.net.Layers {
				if l.Name == fcName {
					fc = make([]float64, l.Blobs[0].Len())
					for i := range fc {
						fc[i] = l.Blobs[0].At(i)
					}
				}
			}
			classes := ref.classes()
			if len(fc) == 0 || len(fc)%classes != 0 {
				t.Fatalf("fc layer %s: %d weights for %d classes", fcName, len(fc), classes)
			}
			channels := len(fc) / classes
			derive := func(out map[string][]float64) map[string][]float64 {
				prob, f := out[ref.m.Output], out[feature]
				c := topIndices(prob, 1)[0]
				plane := len(f) / channels
				grid := make([]float64, plane)
				for k := range channels {
					w := fc[c*channels+k]
					for p := range plane {
						grid[p] += w * f[k*plane+p]
					}
				}
				return map[string][]float64{"cam_class": {float64(c)}, "cam_grid": grid}
			}

			model, err := core.Open(os.DirFS(dir), core.Options{CAM: true})
			if err != nil {
				t.Fatal(err)
			}
			defer model.Close()
			imgs := testImages(t, em)[:2]
			cases := make([]goldenCase, len(imgs))
			files := make([][]byte, len(imgs))
			for i, photo := range imgs {
				data, img := decodePhoto(t, photo)
				files[i] = data
				cases[i] = goldenCase{goldenFile(em.name, photo, ".cam"), ref.crops(t, img, 1)}
			}
			golden := ref.derivedOutputs(t, cases, []string{ref.m.Output, feature}, derive, []string{"cam_class", "cam_grid"})
			for i, photo := range imgs {
				want := golden[i][0]["cam_grid"]
				class := int(golden[i][0]["cam_class"][0])
				res, err := model.ClassifyBytes(files[i], core.ClassifyOptions{CAM: true, CAMClasses: []int{class}})
				if err != nil {
					t.Fatal(err)
				}
				if res.Top[0].Index != class || res.Maps[0].Class != class {
					t.Fatalf("%s: core's top-1 %d, the reference's %d", photo, res.Top[0].Index, class)
				}
				got := res.Maps[1].Center()
				if len(got) != len(want) || res.Maps[1].GridW != 7 || res.Maps[1].GridH != 7 {
					t.Fatalf("%s: grid of %d values (%dx%d), want 7x7", photo, len(got), res.Maps[1].GridW, res.Maps[1].GridH)
				}
				lo, hi, worst := math.Inf(1), math.Inf(-1), 0.0
				for p := range want {
					lo, hi = min(lo, want[p]), max(hi, want[p])
					worst = max(worst, math.Abs(float64(got[p])-want[p]))
				}
				what := fmt.Sprintf("%s %s class %d", em.name, filepath.Base(photo), class)
				if !(hi > lo) || !(worst <= camTol*(hi-lo)) {
					t.Errorf("%s: max |dCAM| %.3g over a map range of %.4g (bound %.g of the range)", what, worst, hi-lo, camTol)
				}
				t.Logf("%s: max |dCAM| %.3g, map range %.4g (relative %.2g)", what, worst, hi-lo, worst/(hi-lo))
			}
		})
	}
}
