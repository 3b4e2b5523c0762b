//go:build !(js && wasm)

package e2e

// End to end: the official ResNet-50, -101 and -152 deploy prototxts with
// random weights from the fixture writer, converted by the converter library,
// opened with core.Open and run on real photographs and synthetic images,
// against the float64 reference (reference_test.go explains the comparison
// and its bounds). The generation and the conversion are seeded and happen in
// every run; the reference's outputs come from the committed golden files
// (golden_test.go), so a run costs the conversions and core's time only.
//
// Not built for js/wasm: generating and converting a ResNet-152 there would
// take many minutes.

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/preprocess"
	"github.com/residual-go/residual/internal/testfiles"
	"github.com/residual-go/residual/tools/convert/caffe"
	"github.com/residual-go/residual/tools/convert/caffe/fixture"
	"github.com/residual-go/residual/tools/convert/convert"
)

// ---------------------------------------------------------------- fixtures

// e2eModel is one official topology with the seed of its random weights.
type e2eModel struct {
	name     string
	prototxt string
	seed     int64
	images   int  // images to classify (0: all): the synthetic one, then the photos; each is a 16 KB golden file
	meanFile bool // convert with a generated 224x224 mean .binaryproto
}

var e2eModels = []e2eModel{
	{"ResNet-50", "ResNet-50-deploy.prototxt", 50, 0, true},
	{"ResNet-101", "ResNet-101-deploy.prototxt", 101, 2, false},
	{"ResNet-152", "ResNet-152-deploy.prototxt", 152, 2, false},
}

// converted holds this process's conversions by model name, in workDir
// (main_test.go): both tests below use ResNet-50, converted once.
var converted = struct {
	sync.Mutex
	dirs map[string]string
}{dirs: map[string]string{}}

// convertResNet generates random weights for the model's official prototxt
// with the fixture writer, writes the .caffemodel and converts it with the
// converter library, once per test process. Nothing is cached across runs:
// a cached conversion would hide a change in the fixture writer or the
// converter, the very things the golden files' model digest checks.
func convertResNet(t *testing.T, em e2eModel) string {
	t.Helper()
	converted.Lock()
	defer converted.Unlock()
	if dir, ok := converted.dirs[em.name]; ok {
		return dir
	}
	prototxt := testfiles.Path(t, testfiles.Prototxt(em.prototxt))
	labels := testfiles.Path(t, testfiles.Labels)
	proto, err := os.ReadFile(prototxt)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	deploy, err := caffe.ParsePrototxt(bytes.NewReader(proto))
	if err != nil {
		t.Fatalf("%s: %v", prototxt, err)
	}
	if err := fixture.Generate(deploy, em.seed); err != nil {
		t.Fatalf("fixture for %s: %v", em.name, err)
	}
	tmp := t.TempDir() // the .caffemodel (up to 240 MB) goes when the test ends
	writeFile := func(name string, write func(f *os.File) error) string {
		path := filepath.Join(tmp, name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := write(f); err != nil {
			f.Close()
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	caffemodel := writeFile(em.name+".caffemodel", func(f *os.File) error { return caffe.WriteModel(f, deploy) })
	deploy = nil
	opts := convert.Options{
		Caffemodel: caffemodel, Prototxt: prototxt, Labels: labels,
		Name: em.name, Synthetic: true, Out: filepath.Join(workDir, em.name),
	}
	if em.meanFile {
		// A 224x224 mean image, as ResNet_mean.binaryproto is: exercises the
		// mean-tensor path (the others use the per-channel mean values).
		opts.Mean = writeFile("mean.binaryproto", func(f *os.File) error {
			return caffe.WriteBlobProto(f, fixture.MeanImage(3, 224, 224, em.seed))
		})
	}
	sum, err := convert.Convert(opts)
	if err != nil {
		t.Fatalf("converting %s: %v", em.name, err)
	}
	t.Logf("%s: generated (seed %d) and converted in %v: %d ops, %d params, %d shard bytes; worst f16 tensor %s rel. error %.3g",
		em.name, em.seed, time.Since(start).Round(time.Millisecond), sum.Ops, sum.Params, sum.Bytes, sum.Worst.Name, sum.Worst.MaxRelError)
	converted.dirs[em.name] = opts.Out
	return opts.Out
}

// testImages lists what a model classifies: the synthetic image first, then
// the repository's photographs (testdata/photos), em.images of them in all
// (0: every one).
func testImages(t *testing.T, em e2eModel) []string {
	t.Helper()
	imgs := append([]string{smoothPhoto}, testfiles.AllPhotos(t)...)
	if em.images > 0 && em.images < len(imgs) {
		imgs = imgs[:em.images]
	}
	return imgs
}

// tenCropPhoto is the image of TestEndToEndTenCrop: the synthetic one has
// spread-out probabilities (see smoothImagePNG) and 288x256 pixels, so the
// corners, center and mirrors are ten different crops.
const tenCropPhoto = smoothPhotoWide

// goldenFile names the golden file of a model and image ("ResNet-50",
// ".../video-001.jpeg" -> "ResNet-50/video-001.jpeg.f64"); suffix tells
// cases of the same image apart (".10crop").
func goldenFile(model, image, suffix string) string {
	return model + "/" + filepath.Base(image) + suffix + ".f64"
}

// Names of the synthetic test images (see smoothImagePNG): 224x224, used as
// is, and 288x256, whose 10 crops differ.
const (
	smoothPhoto     = "fixture-smooth-224x224.png"
	smoothPhotoWide = "fixture-smooth-288x256.png"
)

// smoothImagePNG is a 224x224 PNG from fixture.SmoothImage: the kind of
// input the fixture calibrated its random weights on (the final logits
// spread with a standard deviation of about 5 there), plus the ImageNet
// channel means, rounded and clamped to 0..255. On real photographs the
// random nets are often saturated (top-1 p ~ 1), which makes |dp| tiny
// whatever happens; on this image the probabilities are spread, so the 2e-3
// bound has teeth. Being exactly 224x224 it also takes the "used as is" path.
func smoothImagePNG(t *testing.T, w, h int) []byte {
	t.Helper()
	v := fixture.SmoothImage([]int{3, h, w}, 7)
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	px := func(x float64) uint8 { return uint8(math.Max(0, math.Min(255, math.Round(x)))) }
	plane := w * h
	for y := range h {
		for x := range w {
			i := y*w + x
			// SmoothImage is in BGR order, like the network input.
			img.SetNRGBA(x, y, color.NRGBA{R: px(v[2*plane+i] + 123), G: px(v[plane+i] + 117), B: px(v[i] + 104), A: 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decodePhoto(t *testing.T, path string) ([]byte, image.Image) {
	t.Helper()
	var data []byte
	var err error
	if path == smoothPhoto {
		data = smoothImagePNG(t, 224, 224)
	} else if path == smoothPhotoWide {
		data = smoothImagePNG(t, 288, 256)
	} else if data, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	img, err := preprocess.Decode(data, 0)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return data, img
}

// ---------------------------------------------------------------- tests

func TestEndToEndResNet(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the ResNet end-to-end runs (three ResNets generated and converted)")
	}
	for _, em := range e2eModels {
		t.Run(em.name, func(t *testing.T) {
			dir := convertResNet(t, em)
			ref := loadRefModel(t, dir)
			if !ref.m.Synthetic || len(ref.m.Labels) != 1000 {
				t.Fatalf("manifest: synthetic %v, %d labels; want true, 1000", ref.m.Synthetic, len(ref.m.Labels))
			}
			if pp := ref.m.Preprocess; em.meanFile != (pp.MeanTensor != "") || !em.meanFile && len(pp.MeanValues) != 3 {
				t.Fatalf("manifest preprocessing %+v: want a mean tensor %v, else 3 mean values", pp, em.meanFile)
			}
			imgs := testImages(t, em)
			modes := []bool{false} // float16 resident
			if em.name == "ResNet-50" {
				modes = append(modes, true) // and float32 widened at load
			}
			models := make([]*core.Model, len(modes))
			for i, f32 := range modes {
				m, err := core.Open(os.DirFS(dir), core.Options{Float32Weights: f32})
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				info := m.Info()
				if want := map[bool]string{false: "f16", true: "f32"}[f32]; info.WeightMode != want || info.Classes != 1000 || !info.Synthetic {
					t.Errorf("Info %+v: want weight mode %s, 1000 classes, synthetic", info, want)
				}
				models[i] = m
			}
			// The same net without its softmax: core returns logits.
			ldir, logitsBlob := logitsModel(t, dir, ref.m)
			lmodel, err := core.Open(os.DirFS(ldir), core.Options{})
			if err != nil {
				t.Fatalf("opening the logits copy: %v", err)
			}
			defer lmodel.Close()
			// The reference outputs of every image (golden files; -update
			// computes them all in parallel).
			files := make([][]byte, len(imgs))
			cases := make([]goldenCase, len(imgs))
			for i, photo := range imgs {
				var img image.Image
				files[i], img = decodePhoto(t, photo)
				cases[i] = goldenCase{goldenFile(em.name, photo, ""), ref.crops(t, img, 1)}
			}
			golden := ref.referenceOutputs(t, cases, ref.m.Output, logitsBlob)
			worst, worstLogit := 0.0, 0.0
			for j, photo := range imgs {
				data, want := files[j], golden[j][0][ref.m.Output]
				for i, m := range models {
					res, err := m.ClassifyBytes(data, core.ClassifyOptions{Top: ref.classes()})
					if err != nil {
						t.Fatalf("%s: %v", photo, err)
					}
					got := probsByIndex(t, res, ref)
					mode := map[bool]string{false: "f16", true: "f32"}[modes[i]]
					what := fmt.Sprintf("%s %s %s", em.name, mode, filepath.Base(photo))
					st := checkProbs(t, what, got, want, probTol)
					t.Logf("%s: %v (core %v)", what, st, res.Elapsed.Round(time.Millisecond))
					worst = max(worst, st.dp)
				}
				res, err := lmodel.ClassifyBytes(data, core.ClassifyOptions{Top: ref.classes()})
				if err != nil {
					t.Fatalf("%s (logits): %v", photo, err)
				}
				what := fmt.Sprintf("%s f16 %s logits", em.name, filepath.Base(photo))
				d, scale := checkLogits(t, what, probsByIndex(t, res, ref), golden[j][0][logitsBlob])
				t.Logf("%s: max |dlogit| %.3g, logit range %.4g (relative %.2g)", what, d, scale, d/scale)
				worstLogit = max(worstLogit, d/scale)
			}
			t.Logf("%s: over %d image(s) max |dp| = %.3g (bound %.g), max |dlogit|/range = %.2g (bound %.g)",
				em.name, len(imgs), worst, probTol, worstLogit, logitTol)
		})
	}
}

// TestEndToEndTenCrop: 10-crop mode of ResNet-50 on one image against the
// reference's ten passes (corners, center and their mirrors) with the
// softmax outputs averaged.
func TestEndToEndTenCrop(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 10-crop end-to-end run (a ResNet-50 generated and converted)")
	}
	em := e2eModels[0]
	dir := convertResNet(t, em)
	ref := loadRefModel(t, dir)
	model, err := core.Open(os.DirFS(dir), core.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	photo := tenCropPhoto
	data, img := decodePhoto(t, photo)
	crops := ref.crops(t, img, 10)
	for i := 1; i < len(crops); i++ {
		if slices.Equal(crops[i], crops[0]) {
			t.Fatalf("%s: crop %d equals crop 0: the image does not exercise 10-crop mode", photo, i)
		}
	}
	golden := ref.referenceOutputs(t, []goldenCase{{goldenFile(em.name, photo, ".10crop"), crops}}, ref.m.Output)
	want := ref.average(golden[0])
	res, err := model.ClassifyBytes(data, core.ClassifyOptions{Top: ref.classes(), Crops: 10})
	if err != nil {
		t.Fatal(err)
	}
	st := checkProbs(t, "ResNet-50 10-crop "+filepath.Base(photo), probsByIndex(t, res, ref), want, probTol)
	t.Logf("ResNet-50 10-crop %s: %v (core %v)", filepath.Base(photo), st, res.Elapsed.Round(time.Millisecond))
}

// TestGoldenFiles: every file under testdata/golden belongs to a case the
// tests above run (no leftovers of removed images or models), and every
// case has its file.
func TestGoldenFiles(t *testing.T) {
	want := map[string]bool{goldenFile(e2eModels[0].name, tenCropPhoto, ".10crop"): true}
	for _, em := range e2eModels {
		for _, img := range testImages(t, em) {
			want[goldenFile(em.name, img, "")] = true
		}
	}
	for _, em := range []e2eModel{e2eModels[0], e2eModels[2]} { // TestEndToEndCAM
		for _, img := range testImages(t, em)[:2] {
			want[goldenFile(em.name, img, ".cam")] = true
		}
	}
	have := map[string]bool{}
	err := filepath.WalkDir(goldenDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || path == filepath.Join(goldenDir, "README.md") {
			return err
		}
		rel, err := filepath.Rel(goldenDir, path)
		have[filepath.ToSlash(rel)] = true
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for f := range have {
		if !want[f] {
			t.Errorf("e2e/%s/%s belongs to no test case: delete it", goldenDir, f)
		}
	}
	for f := range want {
		if !have[f] {
			t.Errorf("e2e/%s/%s is missing: run %s", goldenDir, f, regenerate)
		}
	}
}
