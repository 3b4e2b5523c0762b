package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/kernels"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/core/weights/weightstest"
	"github.com/residual-go/residual/tools/convert/caffe"
	"github.com/residual-go/residual/tools/convert/caffe/fixture"
	"github.com/residual-go/residual/tools/convert/convert"
)

// miniNet is a small ResNet-shaped Caffe net (conv+BN+Scale+ReLU stem, max
// pool, one bottleneck block with a projection shortcut, global average pool,
// 10-way inner product, softmax) on 3x32x32 inputs, in the deploy prototxt
// form of the official ResNet files.
const miniNet = `name: "MiniResNet"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 32
input_dim: 32
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 stride: 2 bias_term: false } }
layer { name: "bn_conv1" type: "BatchNorm" bottom: "conv1" top: "conv1" batch_norm_param { use_global_stats: true } }
layer { name: "scale_conv1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "conv1_relu" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { kernel_size: 3 stride: 2 pool: MAX } }
layer { name: "res2a_branch1" type: "Convolution" bottom: "pool1" top: "res2a_branch1"
  convolution_param { num_output: 16 kernel_size: 1 bias_term: false } }
layer { name: "bn2a_branch1" type: "BatchNorm" bottom: "res2a_branch1" top: "res2a_branch1" batch_norm_param { use_global_stats: true } }
layer { name: "scale2a_branch1" type: "Scale" bottom: "res2a_branch1" top: "res2a_branch1" scale_param { bias_term: true } }
layer { name: "res2a_branch2a" type: "Convolution" bottom: "pool1" top: "res2a_branch2a"
  convolution_param { num_output: 4 kernel_size: 1 bias_term: false } }
layer { name: "bn2a_branch2a" type: "BatchNorm" bottom: "res2a_branch2a" top: "res2a_branch2a" batch_norm_param { use_global_stats: true } }
layer { name: "scale2a_branch2a" type: "Scale" bottom: "res2a_branch2a" top: "res2a_branch2a" scale_param { bias_term: true } }
layer { name: "res2a_branch2a_relu" type: "ReLU" bottom: "res2a_branch2a" top: "res2a_branch2a" }
layer { name: "res2a_branch2b" type: "Convolution" bottom: "res2a_branch2a" top: "res2a_branch2b"
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "bn2a_branch2b" type: "BatchNorm" bottom: "res2a_branch2b" top: "res2a_branch2b" batch_norm_param { use_global_stats: true } }
layer { name: "scale2a_branch2b" type: "Scale" bottom: "res2a_branch2b" top: "res2a_branch2b" scale_param { bias_term: true } }
layer { name: "res2a" type: "Eltwise" bottom: "res2a_branch1" bottom: "res2a_branch2b" top: "res2a" }
layer { name: "res2a_relu" type: "ReLU" bottom: "res2a" top: "res2a" }
layer { name: "pool5" type: "Pooling" bottom: "res2a" top: "pool5" pooling_param { kernel_size: 8 stride: 1 pool: AVE } }
layer { name: "fc10" type: "InnerProduct" bottom: "pool5" top: "fc10" inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "fc10" top: "prob" }
`

// convertedModel generates random weights for miniNet with the fixture
// writer and converts them with the converter library: the path real models
// take.
func convertedModel(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	net, err := caffe.ParsePrototxt(strings.NewReader(miniNet))
	if err != nil {
		t.Fatal(err)
	}
	if err := fixture.Generate(net, 11); err != nil {
		t.Fatal(err)
	}
	var model bytes.Buffer
	if err := caffe.WriteModel(&model, net); err != nil {
		t.Fatal(err)
	}
	labels := ""
	for i := range 10 {
		labels += fmt.Sprintf("n%08d thing %d, other name\n", i, i)
	}
	files := map[string]string{"mini.caffemodel": model.String(), "deploy.prototxt": miniNet, "labels.txt": labels}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "model")
	_, err = convert.Convert(convert.Options{
		Caffemodel: filepath.Join(dir, "mini.caffemodel"), Prototxt: filepath.Join(dir, "deploy.prototxt"),
		Labels: filepath.Join(dir, "labels.txt"), Synthetic: true, Out: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// handModel is a model built without the converter: 3x8x8 input, one conv,
// global average pool, inner product to 4 classes, softmax.
func handModel(t *testing.T) string {
	t.Helper()
	b := weightstest.New("hand", 3, 8, 8, 5)
	b.Conv("data", "conv", 3, 6, 3, 1, 1, true, 0.5)
	b.Op(weights.Op{Type: weights.OpPool, Inputs: []string{"conv"}, Output: "pool", Pool: "ave", RoundMode: "ceil", Global: true,
		Kernel: [2]int{8, 8}, Stride: [2]int{1, 1}})
	b.InnerProduct("pool", "fc", 6, 4, false, 2)
	b.Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"fc"}, Output: "prob"})
	b.M.Preprocess.MeanValues = []float64{100}
	b.M.Preprocess.Scale = 1.0 / 50
	b.M.Labels = []string{"red", "green", "blue", "gray"}
	dir := t.TempDir()
	if err := b.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeImages writes a PNG, a JPEG and a file that is no image; it returns their paths.
func writeImages(t *testing.T) (good []string, bad string) {
	t.Helper()
	dir := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 45, 40))
	for y := range 40 {
		for x := range 45 {
			img.Set(x, y, color.RGBA{uint8(5 * x), uint8(6 * y), uint8(x * y), 255})
		}
	}
	var p, j bytes.Buffer
	if err := png.Encode(&p, img); err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(&j, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	good = []string{filepath.Join(dir, "a.png"), filepath.Join(dir, "b.jpg")}
	bad = filepath.Join(dir, "notes.txt")
	for path, data := range map[string][]byte{good[0]: p.Bytes(), good[1]: j.Bytes(), bad: []byte("not an image")} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return good, bad
}

func runCLI(args ...string) (status int, stdout, stderr string) {
	var out, errb bytes.Buffer
	status = run(args, &out, &errb)
	return status, out.String(), errb.String()
}

// TestJSON checks -json output line by line against core on the same files:
// one object per image, predictions sorted, the bad file reported, exit 1.
func TestJSON(t *testing.T) {
	good, bad := writeImages(t)
	for _, tc := range []struct {
		name  string
		model func(*testing.T) string
	}{{"converted", convertedModel}, {"hand", handModel}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.model(t)
			m, err := core.Open(os.DirFS(dir), core.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			for _, crops := range []string{"1", "10"} {
				files := []string{good[0], bad, good[1]}
				status, stdout, stderr := runCLI(append([]string{"-model", dir, "-json", "-top", "3", "-crops", crops, "-threads", "2"}, files...)...)
				if status != 1 {
					t.Errorf("status %d with a bad file, want 1; stderr %s", status, stderr)
				}
				if !strings.Contains(stderr, "synthetic weights: predictions are meaningless") {
					t.Errorf("no synthetic warning on stderr: %q", stderr)
				}
				lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
				if len(lines) != len(files) {
					t.Fatalf("%d lines for %d files:\n%s", len(lines), len(files), stdout)
				}
				for i, line := range lines {
					var got struct {
						File  string            `json:"file"`
						Top   []core.Prediction `json:"top"`
						Error string            `json:"error"`
					}
					dec := json.NewDecoder(strings.NewReader(line))
					dec.DisallowUnknownFields()
					if err := dec.Decode(&got); err != nil {
						t.Fatalf("line %d %q: %v", i, line, err)
					}
					if got.File != files[i] {
						t.Errorf("line %d is for %q, want %q", i, got.File, files[i])
					}
					if files[i] == bad {
						if got.Error == "" || got.Top != nil || !strings.Contains(got.Error, "image") {
							t.Errorf("bad file: %q", line)
						}
						continue
					}
					data, _ := os.ReadFile(files[i])
					n := 1
					if crops == "10" {
						n = 10
					}
					want, err := m.ClassifyBytes(data, core.ClassifyOptions{Top: 3, Crops: n})
					if err != nil {
						t.Fatal(err)
					}
					if len(got.Top) != 3 {
						t.Fatalf("line %d: %d predictions, want 3", i, len(got.Top))
					}
					for k, p := range got.Top {
						if p != want.Top[k] || p.Label == "" || (k > 0 && p.Prob > got.Top[k-1].Prob) {
							t.Errorf("line %d prediction %d: %+v, want %+v, sorted descending", i, k, p, want.Top[k])
						}
					}
				}
			}
		})
	}
}

// TestWeightModesAgree: -f32 prints exactly what the float16-resident mode prints.
func TestWeightModesAgree(t *testing.T) {
	dir := convertedModel(t)
	good, _ := writeImages(t)
	args := append([]string{"-model", dir, "-json", "-top", "10", "-crops", "10"}, good...)
	s1, out16, _ := runCLI(args...)
	s2, out32, _ := runCLI(append([]string{"-f32", "-threads", "1"}, args...)...)
	if s1 != 0 || s2 != 0 || out16 != out32 || out16 == "" {
		t.Errorf("status %d/%d; f16 output\n%s\nf32 output\n%s", s1, s2, out16, out32)
	}
}

func TestTable(t *testing.T) {
	dir := handModel(t)
	good, _ := writeImages(t)
	status, stdout, stderr := runCLI(append([]string{"-model", dir, "-top", "4"}, good...)...)
	if status != 0 {
		t.Fatalf("status %d: %s", status, stderr)
	}
	m, err := core.Open(os.DirFS(dir), core.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, file := range good {
		i := strings.Index(stdout, "\n"+file+" (1 crop, ")
		if i < 0 {
			t.Fatalf("no header for %s in\n%s", file, stdout)
		}
		lines := strings.Split(stdout[i+1:], "\n")
		if got := strings.Fields(lines[1]); strings.Join(got, " ") != "rank prob label index" {
			t.Errorf("column header %q", lines[1])
		}
		data, _ := os.ReadFile(file)
		want, err := m.ClassifyBytes(data, core.ClassifyOptions{Top: 4})
		if err != nil {
			t.Fatal(err)
		}
		for k, p := range want.Top {
			row := fmt.Sprintf("  %4d  %5.1f%%  %-5s  %5d", k+1, 100*p.Prob, p.Label, p.Index)
			if lines[2+k] != row {
				t.Errorf("%s row %d:\n got %q\nwant %q", file, k+1, lines[2+k], row)
			}
		}
	}
}

func TestInfo(t *testing.T) {
	dir := handModel(t)
	status, stdout, stderr := runCLI("-model", dir, "-info")
	var info core.Info
	if err := json.Unmarshal([]byte(stdout), &info); status != 0 || err != nil {
		t.Fatalf("status %d, %v; stdout %q stderr %q", status, err, stdout, stderr)
	}
	if info.Model != "hand" || info.Classes != 4 || info.Params != 3*6*9+6+6*4+4 || info.WeightMode != "f16" {
		t.Errorf("info %+v", info)
	}
}

func TestUsage(t *testing.T) {
	dir := handModel(t)
	for _, tc := range []struct {
		args   []string
		status int
		stderr string
	}{
		{[]string{"-h"}, 0, "Examples:"},
		{[]string{"x.jpg"}, 2, "-model is required"},
		{[]string{"-model", dir}, 2, "no images"},
		{[]string{"-model", dir, "-crops", "3", "x.jpg"}, 2, "option crops: 3"},
		{[]string{"-model", dir, "-top", "0", "x.jpg"}, 2, "option top: 0"},
		{[]string{"-model", dir, "-threads", "-2", "x.jpg"}, 2, "-threads"},
		{[]string{"-bogus"}, 2, "flag provided but not defined"},
		{[]string{"-model", t.TempDir(), "x.jpg"}, 1, "re-run tools/convert"},
	} {
		status, _, stderr := runCLI(tc.args...)
		if status != tc.status || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("%v: status %d, stderr %q; want %d and %q", tc.args, status, stderr, tc.status, tc.stderr)
		}
	}
}

// TestCAM: -cam writes one PNG per image at the image's own size, and the
// JSON line's grid is the raw map of the converted model's features (8 x 8
// for miniNet's pool5 of kernel 8: the official prototxts' form, an
// average pooling over the whole input rather than global_pooling),
// whose mean plus the class's bias is its logit.
func TestCAM(t *testing.T) {
	model := convertedModel(t)
	good, bad := writeImages(t)
	camDir := filepath.Join(t.TempDir(), "maps")
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"-model", model, "-json", "-cam", camDir, "-top", "10"}, append(good, bad)...), &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d (one bad file: want 1); stderr %s", code, stderr.String())
	}
	m, err := core.Open(os.DirFS(model), core.Options{CAM: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var fc weights.Op
	for _, op := range m.Manifest().Ops {
		if op.Type == weights.OpInnerProduct {
			fc = op
		}
	}
	bias := make([]float32, 10)
	kernels.WidenF16(bias, m.Weights().F16(fc.Bias))
	if fc.Bias == "" || bias[0] == 0 {
		t.Fatalf("no inner product bias found in %+v", fc)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines: %s", len(lines), stdout.String())
	}
	for i, line := range lines[:2] {
		var got jsonLine
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatal(err)
		}
		if got.CAM == nil || got.CAM.Index != got.Top[0].Index || len(got.CAM.Grid) != 8 || len(got.CAM.Grid[0]) != 8 {
			t.Fatalf("line %d: cam %+v", i, got.CAM)
		}
		if want := filepath.Join(camDir, filepath.Base(good[i])+".cam.png"); got.CAM.PNG != want {
			t.Errorf("png %q, want %q", got.CAM.PNG, want)
		}
		f, err := os.Open(got.CAM.PNG)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || cfg.Width != 45 || cfg.Height != 40 {
			t.Errorf("%s: %dx%d (%v), want the image's 45x40", got.CAM.PNG, cfg.Width, cfg.Height, err)
		}
		// The second class's map from the library: mean(map) + bias is the
		// logit, so log(p1/p2) is the difference of the two.
		second := got.Top[1].Index
		res, err := m.ClassifyBytes(must(os.ReadFile(good[i])), core.ClassifyOptions{CAM: true, CAMClasses: []int{second}})
		if err != nil {
			t.Fatal(err)
		}
		logit := func(grid []float32, class int) float64 {
			var s float64
			for _, v := range grid {
				s += float64(v)
			}
			return s/float64(len(grid)) + float64(bias[class])
		}
		var flat []float32
		for _, row := range got.CAM.Grid {
			flat = append(flat, row...)
		}
		// This random net's logits are large (inputs 0..255, no scaling), so
		// float32 sums inside the network carry errors of about 1e-6 of
		// their size, which is the bound.
		l1, l2 := logit(flat, got.CAM.Index), logit(res.Maps[1].Center(), second)
		if want := math.Log(got.Top[0].Prob / got.Top[1].Prob); math.Abs(l1-l2-want) > 1e-4+1e-5*(math.Abs(l1)+math.Abs(l2)) {
			t.Errorf("%s: logit difference from the maps %v (logits %v, %v), from the probabilities %v", good[i], l1-l2, l1, l2, want)
		}
	}
	if !strings.Contains(lines[2], `"error"`) || strings.Contains(lines[2], `"cam"`) {
		t.Errorf("bad file line: %s", lines[2])
	}
	entries, _ := os.ReadDir(camDir)
	if len(entries) != 2 {
		t.Errorf("%d files in the map directory, want 2", len(entries))
	}

	// A model without a global average pooling + inner product end: a clear error.
	noCAM := t.TempDir()
	b := weightstest.New("nocam", 3, 8, 8, 5)
	b.Conv("data", "conv", 3, 4, 3, 1, 1, true, 0.5)
	b.Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"conv"}, Output: "prob"})
	if err := b.WriteDir(noCAM); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := run([]string{"-model", noCAM, "-cam", camDir, good[0]}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "no class activation maps") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
