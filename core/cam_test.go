package core_test

import (
	"errors"
	"image"
	"image/color"
	"math"
	"testing"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/backendtest"
	"github.com/residual-go/residual/core/kernels"
)

// camModel opens backendtest's small ResNet (global average pooling of 64 x
// 8 x 8 features, then a 10-class inner product and softmax) with maps.
func camModel(t *testing.T, o core.Options) *core.Model {
	t.Helper()
	b := backendtest.SmallResNet(21)
	b.M.Preprocess.Scale = 1.0 / 256 // keeps the random net's softmax from saturating
	fsys, err := b.MapFS()
	if err != nil {
		t.Fatal(err)
	}
	o.CAM = true
	m, err := core.Open(fsys, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	if !m.Info().CAM {
		t.Fatal("Info.CAM is false for a network ending in global average pooling and an inner product")
	}
	return m
}

// gradientImage is an asymmetric test picture: a color ramp with a bright
// disc off center.
func gradientImage(w, h int) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.NRGBA{R: uint8(255 * x / w), G: uint8(255 * y / h), B: 90, A: 255}
			if dx, dy := x-w/4, y-h/3; dx*dx+dy*dy < w*h/30 {
				c = color.NRGBA{R: 250, G: 250, B: 240, A: 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

// TestCAMIsTheLogit: the average of class c's map plus c's bias is c's
// logit (the identity that makes maps exact), so the softmax of those
// averages over all classes must give back the probabilities the model
// returns. Every position and every class of every crop takes part.
func TestCAMIsTheLogit(t *testing.T) {
	m := camModel(t, core.Options{Threads: 1})
	all := make([]int, 10)
	for i := range all {
		all[i] = i
	}
	bias := make([]float32, 10)
	kernels.WidenF16(bias, m.Weights().F16("fc10/b"))
	for _, crops := range []int{1, 10} {
		res, err := m.ClassifyImage(gradientImage(90, 70), core.ClassifyOptions{Top: 10, Crops: crops, CAM: true, CAMClasses: all})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Maps) != 11 || res.Maps[0].Class != res.Top[0].Index {
			t.Fatalf("%d maps, first of class %d; top-1 %d", len(res.Maps), res.Maps[0].Class, res.Top[0].Index)
		}
		probs := make([]float64, 10)
		for i := range crops {
			logits := make([]float64, 10)
			var sum float64
			for c := range 10 {
				cm := res.Maps[1+c]
				if cm.Class != c || cm.GridW != 8 || cm.GridH != 8 || len(cm.Crops) != crops {
					t.Fatalf("map %d: class %d, grid %dx%d, %d crops", c, cm.Class, cm.GridW, cm.GridH, len(cm.Crops))
				}
				var mean float64
				for _, v := range cm.Crops[i] {
					mean += float64(v)
				}
				logits[c] = mean/64 + float64(bias[c])
			}
			for c := range 10 {
				sum += math.Exp(logits[c])
			}
			for c := range 10 {
				probs[c] += math.Exp(logits[c]) / sum / float64(crops)
			}
		}
		var spread bool
		for _, p := range res.Top {
			if d := math.Abs(p.Prob - probs[p.Index]); d > 2e-6 {
				t.Errorf("crops=%d: class %d: probability %v, from the maps %v", crops, p.Index, p.Prob, probs[p.Index])
			}
			spread = spread || (p.Prob > 0.01 && p.Prob < 0.9)
		}
		if !spread {
			t.Errorf("crops=%d: saturated probabilities %+v: the check has no teeth", crops, res.Top)
		}
	}
}

// TestCAMOptions: maps need Options.CAM and classes in range.
func TestCAMOptions(t *testing.T) {
	fsys, err := backendtest.SmallResNet(21).MapFS()
	if err != nil {
		t.Fatal(err)
	}
	plain, err := core.Open(fsys, core.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	var oe *core.OptionError
	if _, err := plain.ClassifyImage(gradientImage(64, 64), core.ClassifyOptions{CAM: true}); !errors.As(err, &oe) || plain.Info().CAM {
		t.Errorf("CAM without Options.CAM: %v", err)
	}
	m := camModel(t, core.Options{})
	for _, o := range []core.ClassifyOptions{{CAM: true, CAMClasses: []int{10}}, {CAM: true, CAMClasses: []int{-1}}, {CAMClasses: []int{1}}} {
		if _, err := m.ClassifyImage(gradientImage(64, 64), o); !errors.As(err, &oe) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	res, err := m.ClassifyImage(gradientImage(64, 64), core.ClassifyOptions{})
	if err != nil || res.Maps != nil {
		t.Errorf("maps without asking: %v %v", res, err)
	}
}

// TestCAMWithReleasedWeights: in float32 mode the shard bytes are released,
// and the maps still come out (the inner product's weights were kept).
func TestCAMWithReleasedWeights(t *testing.T) {
	m16, m32 := camModel(t, core.Options{}), camModel(t, core.Options{Float32Weights: true})
	if m32.Weights().Shards() != nil {
		t.Fatal("float32 mode kept the shards")
	}
	o := core.ClassifyOptions{CAM: true, Crops: 10}
	a, err := m16.ClassifyImage(gradientImage(100, 64), o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m32.ClassifyImage(gradientImage(100, 64), o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Maps[0].Placed {
		x, y := a.Maps[0].Placed[i], b.Maps[0].Placed[i]
		if math.Float32bits(x) != math.Float32bits(y) {
			t.Fatalf("placed map value %d: %v in float16 mode, %v in float32 mode", i, x, y)
		}
	}
}
