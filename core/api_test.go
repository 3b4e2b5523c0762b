package core

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/residual-go/residual/core/preprocess"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/core/weights/weightstest"
)

// testImage is a deterministic w x h color pattern.
func testImage(w, h int, seed uint8) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x*7) + seed, uint8(y*13) ^ seed, uint8(x*y) + 3*seed, 255})
		}
	}
	return img
}

func pngBytes(t testing.TB, img image.Image) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func openTiny(t testing.TB, seed uint64, o Options) *Model {
	t.Helper()
	m, err := Open(buildFS(t, tinyResNet(seed)), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func TestInfo(t *testing.T) {
	for _, f32 := range []bool{false, true} {
		m := openTiny(t, 1, Options{Float32Weights: f32, Threads: 1})
		info := m.Info()
		b := tinyResNet(1)
		var params, f16Bytes int64
		for _, tn := range b.M.Tensors {
			n := int64(1)
			for _, d := range tn.Shape {
				n *= int64(d)
			}
			params += n
			f16Bytes += 2 * n
		}
		if info.Model != "tiny-resnet" || !info.Synthetic || info.Classes != 7 || info.Ops != len(b.M.Ops) || info.Params != params {
			t.Errorf("f32=%v: Info = %+v (want %d ops, %d params)", f32, info, len(b.M.Ops), params)
		}
		wantMode, wantBytes := "f16", m.Weights().ShardBytes()
		if f32 {
			wantMode, wantBytes = "f32", 2*f16Bytes
			if m.Weights().Shards() != nil {
				t.Error("float32 mode kept the float16 shards")
			}
		}
		if info.WeightMode != wantMode || info.WeightBytes != wantBytes || info.ActivationBytes <= 0 {
			t.Errorf("f32=%v: mode %q, %d weight bytes (want %q, %d), %d activation bytes", f32, info.WeightMode, info.WeightBytes, wantMode, wantBytes, info.ActivationBytes)
		}
		if k := info.Kernels; k != "simd" && k != "scalar" && k != "asm-avx512" && k != "asm-avx2" {
			t.Errorf("Kernels = %q", info.Kernels)
		}
	}
}

// TestClassifyOneCrop checks ClassifyImage against Forward on the
// preprocessed center crop, and ClassifyBytes against ClassifyImage.
func TestClassifyOneCrop(t *testing.T) {
	m := openTiny(t, 2, Options{Threads: 1})
	img := testImage(40, 31, 1)
	res, err := m.ClassifyImage(img, ClassifyOptions{Top: 7})
	if err != nil {
		t.Fatal(err)
	}
	in := [][]float32{make([]float32, 3*20*18)}
	if err := preprocess.Crops(img, m.Spec(), 1, in); err != nil {
		t.Fatal(err)
	}
	probs, err := m.Forward(in[0])
	if err != nil {
		t.Fatal(err)
	}
	checkTop(t, res.Top, probs, 7)
	if res.Elapsed <= 0 {
		t.Error("Elapsed not set")
	}
	fromBytes, err := m.ClassifyBytes(pngBytes(t, img), ClassifyOptions{Top: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(fromBytes.Top) != 3 {
		t.Fatalf("Top 3 gave %d predictions", len(fromBytes.Top))
	}
	for i, p := range fromBytes.Top {
		if p != res.Top[i] {
			t.Errorf("ClassifyBytes top %d = %+v, ClassifyImage %+v", i, p, res.Top[i])
		}
	}
}

// checkTop verifies top against probabilities: the k largest, descending,
// ties by index, labels "class i".
func checkTop(t *testing.T, top []Prediction, probs []float32, k int) {
	t.Helper()
	if len(top) != k {
		t.Fatalf("%d predictions, want %d", len(top), k)
	}
	seen := map[int]bool{}
	for i, p := range top {
		if p.Prob != float64(probs[p.Index]) || p.Label != fmt.Sprintf("class %d", p.Index) || seen[p.Index] {
			t.Errorf("prediction %d = %+v; prob[%d] = %v", i, p, p.Index, probs[p.Index])
		}
		seen[p.Index] = true
		if i > 0 && (top[i-1].Prob < p.Prob || top[i-1].Prob == p.Prob && top[i-1].Index > p.Index) {
			t.Errorf("predictions %d and %d out of order: %+v %+v", i-1, i, top[i-1], p)
		}
	}
	for j, q := range probs {
		if !seen[j] && float64(q) > top[k-1].Prob {
			t.Errorf("class %d (prob %v) is missing from the top %d", j, q, k)
		}
	}
}

// TestClassifyTenCrops: the 10-crop result is the mean of the softmax outputs
// of the ten preprocessed crops.
func TestClassifyTenCrops(t *testing.T) {
	m := openTiny(t, 3, Options{Threads: 2})
	img := testImage(50, 37, 9)
	res, err := m.ClassifyImage(img, ClassifyOptions{Top: 7, Crops: 10})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([][]float32, 10)
	for i := range dst {
		dst[i] = make([]float32, 3*20*18)
	}
	if err := preprocess.Crops(img, m.Spec(), 10, dst); err != nil {
		t.Fatal(err)
	}
	mean := make([]float64, 7)
	for _, in := range dst {
		p, err := m.Forward(in)
		if err != nil {
			t.Fatal(err)
		}
		for j := range p {
			mean[j] += float64(p[j]) / 10
		}
	}
	one, err := m.ClassifyImage(img, ClassifyOptions{Top: 1})
	if err != nil {
		t.Fatal(err)
	}
	differs := false
	for _, p := range res.Top {
		if math.Abs(p.Prob-mean[p.Index]) > 1e-12 {
			t.Errorf("class %d: 10-crop prob %v, mean of crops %v", p.Index, p.Prob, mean[p.Index])
		}
		if p.Index == one.Top[0].Index && p.Prob != one.Top[0].Prob {
			differs = true
		}
	}
	if !differs {
		t.Error("10-crop probability equals the center crop's: crops not averaged?")
	}
}

// TestTopTies: a network whose inner product has zero weights outputs a
// uniform softmax; the top-k must then list the lowest indices in order.
func TestTopTies(t *testing.T) {
	b := weightstest.New("uniform", 1, 4, 4, 1)
	b.F16("w", []int{9, 16}, make([]float32, 9*16))
	b.Op(weights.Op{Type: weights.OpInnerProduct, Inputs: []string{"data"}, Output: "fc", Weight: "w"})
	b.Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"fc"}, Output: "prob"})
	m, err := Open(buildFS(t, b), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	gray := image.NewGray(image.Rect(0, 0, 4, 4))
	for _, k := range []int{1, 4, 9, 20} {
		res, err := m.ClassifyImage(gray, ClassifyOptions{Top: k})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Top) != min(k, 9) {
			t.Fatalf("top %d: %d predictions", k, len(res.Top))
		}
		for i, p := range res.Top {
			if p.Index != i || math.Abs(p.Prob-1.0/9) > 1e-7 || p.Label != "" {
				t.Errorf("top %d, #%d: %+v, want index %d prob 1/9 no label", k, i, p, i)
			}
		}
	}
}

func TestInsertTop(t *testing.T) {
	probs := []float64{0.1, 0.3, 0.3, math.NaN(), 0.05, 0.3, 0.2}
	var top []Prediction
	for j, p := range probs {
		top = insertTop(top, 4, j, p)
	}
	want := []int{1, 2, 5, 6}
	for i, p := range top {
		if p.Index != want[i] || p.Prob != probs[want[i]] {
			t.Errorf("top[%d] = %+v, want index %d", i, p, want[i])
		}
	}
}

func TestClassifyErrors(t *testing.T) {
	m := openTiny(t, 1, Options{Threads: 1})
	img := testImage(30, 30, 0)
	for _, tc := range []struct {
		o      ClassifyOptions
		option string
	}{{ClassifyOptions{Crops: 5}, OptCrops}, {ClassifyOptions{Top: -1}, OptTop}, {ClassifyOptions{CAMClasses: []int{1}}, OptCAMClasses}} {
		_, err := m.ClassifyImage(img, tc.o)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Option != tc.option {
			t.Errorf("%+v: error %v, want *OptionError for %s", tc.o, err, tc.option)
		}
	}
	for _, data := range [][]byte{nil, []byte("GIF89a not really"), []byte("hello")} {
		_, err := m.ClassifyBytes(data, ClassifyOptions{})
		var ie *preprocess.ImageError
		if !errors.As(err, &ie) {
			t.Errorf("ClassifyBytes(%q): error %v (%T), want a *preprocess.ImageError", data, err, err)
		}
	}
	// An image so thin that the crop does not fit is the image's fault.
	_, err := m.ClassifyImage(image.NewRGBA(image.Rect(0, 0, 1, 0)), ClassifyOptions{})
	var ie *preprocess.ImageError
	if !errors.As(err, &ie) {
		t.Errorf("empty image: error %v (%T), want a *preprocess.ImageError", err, err)
	}
	_, err = Open(buildFS(t, tinyResNet(1)), Options{Threads: -1})
	var oe *OptionError
	if !errors.As(err, &oe) {
		t.Errorf("Threads -1: error %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	fsys := buildFS(t, tinyResNet(1))
	fsys["shard-001.bin"].Data[3] ^= 1
	_, err := Open(fsys, Options{})
	var ce *weights.ChecksumError
	if !errors.As(err, &ce) || ce.Shard != "shard-001.bin" {
		t.Errorf("flipped bit: error %v, want *weights.ChecksumError for shard-001.bin", err)
	}
	delete(fsys, "manifest.json")
	_, err = Open(fsys, Options{})
	var fe *weights.FormatError
	if !errors.As(err, &fe) {
		t.Errorf("no manifest: error %v, want *weights.FormatError", err)
	}
}

// panicky is a Backend that fails the way a kernel bug would.
type panicky struct{ runs int }

func (p *panicky) Run(in []float32, n int) (Output, error) {
	p.runs++
	var s []float32
	return Output{Values: s[:len(in)]}, nil // index out of range
}
func (p *panicky) Describe() BackendInfo { return BackendInfo{Name: "panicky", HostWeights: true} }
func (p *panicky) Close()                {}

// TestBackendSeam plugs a Backend in through Options.Backend, and checks that
// a panic inside it comes back as an *InternalError and leaves the Model usable.
func TestBackendSeam(t *testing.T) {
	var got *weights.Weights
	bk := &panicky{}
	m, err := Open(buildFS(t, tinyResNet(1)), Options{Backend: func(p *Program, w *weights.Weights, o Options) (Backend, error) {
		got = w
		return bk, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.F16("conv1/w") == nil || m.Info().Kernels != "panicky" {
		t.Fatalf("backend factory got weights %v; Info %+v", got, m.Info())
	}
	for range 2 {
		_, err = m.ClassifyImage(testImage(30, 30, 0), ClassifyOptions{})
		var ie *InternalError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), "out of range") || !strings.Contains(ie.Stack, "panicky") {
			t.Fatalf("error %v (%T), want an *InternalError with the panic", err, err)
		}
	}
	if bk.runs != 2 {
		t.Errorf("backend ran %d times, want 2 (the mutex must be released after a panic)", bk.runs)
	}
	wantErr := errors.New("no adapter")
	_, err = Open(buildFS(t, tinyResNet(1)), Options{Backend: func(*Program, *weights.Weights, Options) (Backend, error) { return nil, wantErr }})
	if !errors.Is(err, wantErr) {
		t.Errorf("factory error not returned: %v", err)
	}
}

func TestClosed(t *testing.T) {
	m := openTiny(t, 1, Options{Threads: 2})
	m.Close()
	m.Close() // idempotent
	if _, err := m.ClassifyImage(testImage(30, 30, 0), ClassifyOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if _, err := m.Forward(make([]float32, 3*20*18)); !errors.Is(err, ErrClosed) {
		t.Errorf("Forward after Close: %v", err)
	}
}

// TestConcurrent classifies from several goroutines at once (run with -race):
// every result must equal the serial one.
func TestConcurrent(t *testing.T) {
	m := openTiny(t, 4, Options{Threads: 2})
	imgs := make([][]byte, 4)
	want := make([]*Result, len(imgs))
	for i := range imgs {
		imgs[i] = pngBytes(t, testImage(25+i*6, 33, uint8(i)))
		var err error
		if want[i], err = m.ClassifyBytes(imgs[i], ClassifyOptions{Top: 3, Crops: 1 + 9*(i%2)}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for r := range 5 {
				i := (g + r) % len(imgs)
				res, err := m.ClassifyBytes(imgs[i], ClassifyOptions{Top: 3, Crops: 1 + 9*(i%2)})
				if err != nil {
					t.Error(err)
					return
				}
				for j := range res.Top {
					if res.Top[j] != want[i].Top[j] {
						t.Errorf("goroutine %d image %d: %+v, want %+v", g, i, res.Top[j], want[i].Top[j])
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestProgress: Open reports shard reading from 0 to the total.
func TestProgress(t *testing.T) {
	var last, total int64 = -1, 0
	m, err := Open(buildFS(t, tinyResNet(1)), Options{Progress: func(done, tot int64) {
		if done < last {
			t.Errorf("progress went back: %d after %d", done, last)
		}
		last, total = done, tot
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if last != total || total != m.Weights().ShardBytes() {
		t.Errorf("progress ended at %d/%d, shards hold %d", last, total, m.Weights().ShardBytes())
	}
}

// TestClassifyAllocs: beyond the executor's zero (TestNoAllocs), a whole
// ClassifyImage allocates only a handful of small objects (the Result, its
// Top slice, the preprocessing's per-call pixel reader), the same number for
// 1 and 10 crops: no buffer is allocated per inference or per crop.
func TestClassifyAllocs(t *testing.T) {
	m := openTiny(t, 1, Options{Threads: 1})
	img := testImage(40, 31, 1)
	var allocs [2]float64
	for i, crops := range []int{1, 10} {
		if _, err := m.ClassifyImage(img, ClassifyOptions{Crops: crops}); err != nil { // buffers grow once
			t.Fatal(err)
		}
		allocs[i] = testing.AllocsPerRun(10, func() {
			if _, err := m.ClassifyImage(img, ClassifyOptions{Crops: crops}); err != nil {
				t.Fatal(err)
			}
		})
	}
	if allocs[0] > 8 || allocs[1] != allocs[0] {
		t.Errorf("ClassifyImage allocates %v times with 1 crop, %v with 10; want a few, independent of crops", allocs[0], allocs[1])
	}
}
