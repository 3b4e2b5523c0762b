package core_test

import (
	"errors"
	"fmt"
	"image"
	"io/fs"
	"math"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/backendtest"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/core/weights/weightstest"
)

// stageModel is backendtest's small ResNet with a mean image (the front
// stage must keep it) and shards small enough that every stage reads only
// some of them.
func stageModel(t *testing.T) (*weightstest.Builder, fstest.MapFS) {
	t.Helper()
	b := backendtest.SmallResNet(33)
	b.M.Preprocess.Scale = 1.0 / 256
	b.F32("mean", []int{3, 64, 64}, b.Random(3*64*64, 120))
	b.M.Preprocess.MeanTensor = "mean"
	b.M.Preprocess.MeanValues = nil
	b.ShardSize = 16 << 10
	fsys, err := b.MapFS()
	if err != nil {
		t.Fatal(err)
	}
	return b, fsys
}

// openFS counts the files opened.
type openFS struct {
	fs.FS
	opened map[string]int
}

func (o *openFS) Open(name string) (fs.File, error) {
	o.opened[name]++
	return o.FS.Open(name)
}

// splits lists the ways to cut the ops at the given cut indices into 1, 2
// and 3 ranges.
func splits(ops int, cuts []core.Cut) [][]core.Range {
	out := [][]core.Range{{{First: 0, End: ops}}}
	for a := range cuts {
		out = append(out, []core.Range{{First: 0, End: cuts[a].Op}, {First: cuts[a].Op, End: ops}})
		for b := a + 1; b < len(cuts); b += 2 {
			out = append(out, []core.Range{{First: 0, End: cuts[a].Op}, {First: cuts[a].Op, End: cuts[b].Op}, {First: cuts[b].Op, End: ops}})
		}
	}
	return out
}

// TestStagesEqualModel chains stages the way the Worker does (front:
// image -> first slice; middle: tensor -> tensor; last: probabilities and
// the maps' features; top-k and placing the maps in the front) over every
// split into one, two and three stages, and gets exactly Model's result:
// the same predictions with the same float64 probabilities, and the same
// class activation maps, for 1 and 10 crops.
func TestStagesEqualModel(t *testing.T) {
	_, fsys := stageModel(t)
	model, err := core.Open(fsys, core.Options{Threads: 1, CAM: true})
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	m := model.Manifest()
	img := gradientImage(97, 75)
	opts := []core.ClassifyOptions{{Top: 4}, {Top: 10, Crops: 10}, {Top: 3, CAM: true, CAMClasses: []int{7, 2}}, {Crops: 10, CAM: true}}
	want := make([]*core.Result, len(opts))
	for i, o := range opts {
		if want[i], err = model.ClassifyImage(img, o); err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for _, s := range m.Shards {
		total += s.Size
	}
	for _, split := range splits(len(m.Ops), core.Cuts(m)) {
		t.Run(fmt.Sprint(split), func(t *testing.T) {
			stages := make([]*core.Stage, len(split))
			var kept int64
			pool, _, _ := core.MapsOp(m)
			cam := split[len(split)-1].First <= pool
			for k, r := range split {
				ofs := &openFS{FS: fsys, opened: map[string]int{}}
				s, err := core.OpenStage(ofs, core.StageOptions{First: r.First, End: r.End, Threads: 1, CAM: cam, MaxBatch: 10 * (k % 2)})
				if err != nil {
					t.Fatal(err)
				}
				if k == len(split)-1 && !cam {
					// Past the features: a last stage there cannot give maps.
					if _, err := core.OpenStage(fsys, core.StageOptions{First: r.First, CAM: true}); err == nil {
						t.Error("a last stage past the features opened with CAM")
					}
				}
				defer s.Close()
				stages[k] = s
				info := s.Info()
				if info.Front != (k == 0) || info.Last != (k == len(split)-1) || info.First != r.First || info.End != r.End {
					t.Fatalf("stage %d: info %+v", k, info)
				}
				if k > 0 && info.Input != stages[k-1].Info().Output {
					t.Fatalf("stage %d reads %v, stage %d writes %v", k, info.Input, k-1, stages[k-1].Info().Output)
				}
				// Only the shards holding the slice's tensors are read.
				var read int64
				for _, sh := range m.Shards {
					if ofs.opened[sh.File] > 0 {
						read += sh.Size
					}
				}
				if len(split) > 1 && read == total && info.WeightBytes < total/2 {
					t.Errorf("stage %d read every shard for %d bytes of weights", k, info.WeightBytes)
				}
				kept += info.WeightBytes
			}
			if len(split) == 1 && kept < total-int64(len(m.Tensors))*weights.Alignment {
				t.Errorf("one stage keeps %d bytes of the %d", kept, total)
			}
			for i, o := range opts {
				if o.CAM && !cam {
					continue
				}
				got := runStages(t, stages, img, o)
				sameResult(t, fmt.Sprintf("%+v", o), got, want[i])
			}
		})
	}
}

// runStages is the Worker's pipeline in one process.
func runStages(t *testing.T, stages []*core.Stage, img image.Image, o core.ClassifyOptions) *core.Result {
	t.Helper()
	front, last := stages[0], stages[len(stages)-1]
	o, err := front.Normalize(o)
	if err != nil {
		t.Fatal(err)
	}
	out, layout, err := front.RunImage(img, o.Crops)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stages[1:] {
		// A copy, as a hop makes one: the next stage must not read the
		// previous one's buffers.
		if out, err = s.Run(slices.Clone(out.Values), o.Crops); err != nil {
			t.Fatal(err)
		}
	}
	res := &core.Result{}
	if res.Top, err = front.Top(slices.Clone(out.Values), o.Crops, o); err != nil {
		t.Fatal(err)
	}
	if o.CAM {
		if res.Maps, err = last.Maps(out, o.Crops, append([]int{res.Top[0].Index}, o.CAMClasses...)); err != nil {
			t.Fatal(err)
		}
		for i := range res.Maps {
			res.Maps[i].Place(layout)
		}
	}
	return res
}

// sameResult compares two results bit for bit.
func sameResult(t *testing.T, what string, got, want *core.Result) {
	t.Helper()
	if len(got.Top) != len(want.Top) {
		t.Fatalf("%s: %d predictions, want %d", what, len(got.Top), len(want.Top))
	}
	for i := range got.Top {
		if got.Top[i] != want.Top[i] {
			t.Errorf("%s: prediction %d is %+v, want %+v", what, i, got.Top[i], want.Top[i])
		}
	}
	if len(got.Maps) != len(want.Maps) {
		t.Fatalf("%s: %d maps, want %d", what, len(got.Maps), len(want.Maps))
	}
	bits := func(a, b []float32) bool {
		return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
	}
	for i, g := range got.Maps {
		w := want.Maps[i]
		if g.Class != w.Class || g.GridW != w.GridW || g.GridH != w.GridH || len(g.Crops) != len(w.Crops) ||
			g.Layout.W != w.Layout.W || g.Layout.H != w.Layout.H || !slices.Equal(g.Layout.Crops, w.Layout.Crops) {
			t.Fatalf("%s: map %d: class %d %dx%d, %d crops; want class %d %dx%d, %d crops", what, i, g.Class, g.GridW, g.GridH, len(g.Crops), w.Class, w.GridW, w.GridH, len(w.Crops))
		}
		for c := range g.Crops {
			if !bits(g.Crops[c], w.Crops[c]) {
				t.Errorf("%s: map %d crop %d differs", what, i, c)
			}
		}
		if !bits(g.Placed, w.Placed) {
			t.Errorf("%s: map %d placed differently", what, i)
		}
	}
}

// TestStageErrors: what a stage refuses, and that it says why.
func TestStageErrors(t *testing.T) {
	_, fsys := stageModel(t)
	m, err := weights.ReadManifest(fsys)
	if err != nil {
		t.Fatal(err)
	}
	cuts := core.Cuts(m)
	mid := cuts[len(cuts)/2].Op
	if _, err := core.OpenStage(fsys, core.StageOptions{First: 3}); err == nil || cuts[0].Op == 3 {
		t.Errorf("a stage starting inside a block opened: %v", err)
	}
	front, err := core.OpenStage(fsys, core.StageOptions{End: mid, CAM: true})
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	last, err := core.OpenStage(fsys, core.StageOptions{First: mid})
	if err != nil {
		t.Fatal(err)
	}
	defer last.Close()
	if front.Info().CAM || last.Info().CAM || !last.Info().ModelCAM {
		t.Errorf("CAM: front %v, last without StageOptions.CAM %v, model %v", front.Info().CAM, last.Info().CAM, last.Info().ModelCAM)
	}
	if _, _, err := last.RunImage(gradientImage(64, 64), 1); err == nil {
		t.Error("a middle stage ran an image")
	}
	if _, _, err := front.RunImage(gradientImage(64, 64), 3); core.KindOf(err) != core.KindOption {
		t.Errorf("3 crops: %v", err)
	}
	if _, err := last.Run(make([]float32, 5), 1); err == nil {
		t.Error("a stage ran a tensor of the wrong size")
	}
	in := last.Info().Input.Shape
	out, err := last.Run(make([]float32, 2*in[0]*in[1]*in[2]), 2)
	if err != nil {
		t.Fatal(err)
	}
	var oe *core.OptionError
	if _, err := last.Maps(out, 2, []int{0}); !errors.As(err, &oe) {
		t.Errorf("maps from a stage opened without CAM: %v", err)
	}
	if _, err := last.Top(out.Values[:7], 1, core.ClassifyOptions{Top: 1}); err == nil {
		t.Error("top of 7 probabilities for 10 classes")
	}
	if _, err := front.Normalize(core.ClassifyOptions{CAMClasses: []int{10}, CAM: true}); !errors.As(err, &oe) {
		t.Errorf("class 10 of 10: %v", err)
	}
	if _, _, err := front.RunImage(gradientImage(3, 3000), 1); core.KindOf(err) != core.KindImage {
		t.Errorf("a 3x3000 image: %v (%s), want an image error", err, core.KindOf(err))
	}
	front.Close()
	if _, _, err := front.RunImage(gradientImage(64, 64), 1); !errors.Is(err, core.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}
