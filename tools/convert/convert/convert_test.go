package convert

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/x448/float16"

	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/internal/testfiles"
	"github.com/residual-go/residual/tools/convert/caffe"
	"github.com/residual-go/residual/tools/convert/caffe/fixture"
	"github.com/residual-go/residual/tools/convert/caffe/reference"
)

// sharedFile is the path of a real Caffe file kept in the repository: the
// official prototxts, the labels and the files Caffe itself wrote.
func sharedFile(t testing.TB, name string) string { return testfiles.Caffe(t, name) }

var (
	modelMu    sync.Mutex
	modelCache = map[string]string{}
	modelDir   string
)

// TestMain provides the directory for generated caffemodels: a temporary
// one, or RESIDUAL_MODEL_CACHE (kept, reused across runs: generating a
// ResNet-152 takes a while).
func TestMain(m *testing.M) {
	modelDir = os.Getenv("RESIDUAL_MODEL_CACHE")
	if modelDir == "" {
		d, err := os.MkdirTemp("", "convert-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		modelDir = d
	} else if err := os.MkdirAll(modelDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if os.Getenv("RESIDUAL_MODEL_CACHE") == "" {
		os.RemoveAll(modelDir)
	}
	os.Exit(code)
}

// generatedModel writes (once per test binary) a caffemodel with fixture
// weights for the named ResNet prototxt and returns its path.
func generatedModel(t testing.TB, prototxt string, seed int64) string {
	modelMu.Lock()
	defer modelMu.Unlock()
	key := fmt.Sprintf("%s-%d", prototxt, seed)
	if p, ok := modelCache[key]; ok {
		return p
	}
	path := filepath.Join(modelDir, key+".caffemodel")
	if _, err := os.Stat(path); err == nil && os.Getenv("RESIDUAL_MODEL_CACHE") != "" {
		modelCache[key] = path
		return path
	}
	f, err := os.Create(path + ".part")
	if err != nil {
		t.Fatal(err)
	}
	if err := fixture.GenerateFile(sharedFile(t, prototxt), seed, f); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".part", path); err != nil {
		t.Fatal(err)
	}
	modelCache[key] = path
	return path
}

func parsePrototxt(t testing.TB, path string) *caffe.Net {
	t.Helper()
	net, err := caffe.ParsePrototxtFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return net
}

func readModelFile(t testing.TB, path string) *caffe.Net {
	t.Helper()
	net, err := caffe.ReadModelFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return net
}

// graphToCaffe rebuilds a Caffe net from an optimized graph, with the folded
// float64 tensors as Data64 blobs and fused ReLUs as in-place ReLU layers, so
// that package reference can run it.
func graphToCaffe(t testing.TB, g *Graph) *caffe.Net {
	in := g.Input
	net := &caffe.Net{Name: g.Name, Inputs: []caffe.Input{{Name: in.Name, Shape: []int{1, in.Channels, in.Height, in.Width}}}}
	blob := func(name string) *caffe.Blob {
		v, err := g.TensorF64(name)
		if err != nil {
			t.Fatal(err)
		}
		shape, _ := g.TensorShape(name)
		return &caffe.Blob{Shape: shape, Data64: v}
	}
	for _, n := range g.Nodes {
		op := n.Op
		l := &caffe.Layer{Name: op.Name, Bottoms: op.Inputs, Tops: []string{op.Output}, Phase: caffe.PhaseAny}
		switch op.Type {
		case weights.OpConv:
			p := caffe.DefaultConvolutionParam()
			p.NumOutput, p.BiasTerm, p.Group = op.OutShape[0], op.Bias != "", op.Group
			p.HasKernelHW, p.KernelH, p.KernelW = true, op.Kernel[0], op.Kernel[1]
			p.HasPadHW, p.PadH, p.PadW = true, op.Pad[0], op.Pad[1]
			p.HasStrideHW, p.StrideH, p.StrideW = true, op.Stride[0], op.Stride[1]
			p.Dilation = op.Dilation[:]
			l.Type, l.Conv = "Convolution", p
		case weights.OpInnerProduct:
			p := caffe.DefaultInnerProductParam()
			p.NumOutput, p.BiasTerm = op.OutShape[0], op.Bias != ""
			l.Type, l.InnerProd = "InnerProduct", p
		case weights.OpAffine:
			p := caffe.DefaultScaleParam()
			p.BiasTerm = true
			l.Type, l.Scale = "Scale", p
		case weights.OpPool:
			p := caffe.DefaultPoolingParam()
			p.Pool = map[string]int{"max": caffe.PoolMax, "ave": caffe.PoolAve}[op.Pool]
			p.RoundMode = map[string]int{"ceil": caffe.RoundCeil, "floor": caffe.RoundFloor}[op.RoundMode]
			p.GlobalPooling = op.Global
			if !op.Global {
				p.HasKernelHW, p.KernelH, p.KernelW = true, op.Kernel[0], op.Kernel[1]
				p.HasPadHW, p.PadH, p.PadW = true, op.Pad[0], op.Pad[1]
				p.HasStrideHW, p.StrideH, p.StrideW = true, op.Stride[0], op.Stride[1]
			}
			l.Type, l.Pooling = "Pooling", p
		case weights.OpEltwise:
			p := caffe.DefaultEltwiseParam()
			p.Operation = map[string]int{"sum": caffe.EltwiseSum, "prod": caffe.EltwiseProd, "max": caffe.EltwiseMax}[op.Operation]
			p.Coeff = op.Coeffs
			l.Type, l.Eltwise = "Eltwise", p
		case weights.OpReLU:
			l.Type, l.ReLU = "ReLU", &caffe.ReLUParam{NegativeSlope: op.NegativeSlope}
		case weights.OpSoftmax:
			l.Type, l.Softmax = "Softmax", caffe.DefaultSoftmaxParam()
		case weights.OpConcat:
			l.Type, l.Concat = "Concat", caffe.DefaultConcatParam()
		case weights.OpFlatten:
			l.Type, l.Flatten = "Flatten", caffe.DefaultFlattenParam()
		default:
			t.Fatalf("op type %q", op.Type)
		}
		if op.Weight != "" {
			l.Blobs = append(l.Blobs, blob(op.Weight))
		}
		if op.Bias != "" {
			l.Blobs = append(l.Blobs, blob(op.Bias))
		}
		net.Layers = append(net.Layers, l)
		if op.ReLU && op.Type != weights.OpReLU {
			net.Layers = append(net.Layers, &caffe.Layer{Name: op.Name + "/relu", Type: "ReLU", Bottoms: []string{op.Output},
				Tops: []string{op.Output}, ReLU: &caffe.ReLUParam{NegativeSlope: op.NegativeSlope}, Phase: caffe.PhaseAny})
		}
	}
	return net
}

// maxRelDiff is max|a-b| / max|a|.
func maxRelDiff(a, b []float64) float64 {
	var d, m float64
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
		m = math.Max(m, math.Abs(a[i]))
	}
	return d / m
}

// checkFold runs the reference forward pass over the original net and over
// the net rebuilt from the folded graph, and compares every final value.
func checkFold(t *testing.T, net *caffe.Net, input []float64, blobs []string, tol float64) {
	t.Helper()
	want, err := reference.Forward(net, input)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Lower(net)
	if err != nil {
		t.Fatal(err)
	}
	g.Optimize()
	got, err := reference.Forward(graphToCaffe(t, g), input)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range blobs {
		if len(got[name]) != len(want[name]) || len(want[name]) == 0 {
			t.Fatalf("blob %q: %d values folded, %d original", name, len(got[name]), len(want[name]))
		}
		if d := maxRelDiff(want[name], got[name]); d > tol || math.IsNaN(d) {
			t.Errorf("blob %q: folded differs from the original by %.3g relative (tolerance %g)", name, d, tol)
		} else {
			t.Logf("blob %q: folded vs original %.3g relative", name, d)
		}
	}
}

// tameLogits scales the blobs of the inner product that computes logits so
// that they stay within +-2: the softmax is then far from one-hot and the
// probabilities are a meaningful thing to compare.
func tameLogits(t *testing.T, net *caffe.Net, input []float64, ip string) {
	out, err := reference.Forward(net, input)
	if err != nil {
		t.Fatal(err)
	}
	m := 0.0
	for _, v := range out[ip] {
		m = math.Max(m, math.Abs(v))
	}
	for _, b := range layer(net, ip).Blobs {
		for i := range b.Data {
			b.Data[i] = float32(float64(b.Data[i]) * 2 / m)
		}
	}
}

func TestFoldExactMini(t *testing.T) {
	net := miniResNet(3)
	in := make([]float64, 3*8*8)
	for i := range in {
		in[i] = math.Sin(float64(i)) * 50
	}
	tameLogits(t, net, in, "fc10")
	checkFold(t, net, in, []string{"fc10", "prob"}, 1e-12)
}

// TestFoldExactResNet50 is the proof that the rewrite is exact: a float64
// forward pass over a generated ResNet-50's Caffe blobs (BatchNorm and Scale
// as Caffe defines them) against one over the folded float64 weights.
func TestFoldExactResNet50(t *testing.T) {
	if testing.Short() {
		t.Skip("two float64 ResNet-50 forward passes")
	}
	net := parsePrototxt(t, sharedFile(t, "ResNet-50-deploy.prototxt"))
	if err := fixture.Generate(net, 1); err != nil {
		t.Fatal(err)
	}
	checkFold(t, net, fixture.SmoothImage([]int{3, 224, 224}, 42), []string{"fc1000", "prob"}, 1e-9)
}

// verifyOutput checks a written model directory independently of the
// converter: shard files, sizes and sha256, tensor placement, and the
// manifest through core/weights' strict parser.
func verifyOutput(t *testing.T, dir string, shardLimit int64) *weights.Manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m weights.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if _, err := weights.ParseManifest(data); err != nil {
		t.Errorf("core/weights refuses the manifest: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != len(m.Shards)+1 {
		t.Errorf("%d files in the output, want %d shards + manifest.json", len(ents), len(m.Shards))
	}
	shards := make([][]byte, len(m.Shards))
	for i, s := range m.Shards {
		if s.File != ShardName(i) {
			t.Errorf("shard %d is %q", i, s.File)
		}
		b, err := os.ReadFile(filepath.Join(dir, s.File))
		if err != nil {
			t.Fatal(err)
		}
		shards[i] = b
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != s.SHA256 || int64(len(b)) != s.Size {
			t.Errorf("shard %s: size %d sha256 %x; manifest says %d %s", s.File, len(b), sum, s.Size, s.SHA256)
		}
		if s.Size > shardLimit {
			t.Errorf("shard %s has %d bytes, more than %d", s.File, s.Size, shardLimit)
		}
	}
	end := make([]int64, len(m.Shards))
	for _, tn := range m.Tensors {
		n := int64(1)
		for _, d := range tn.Shape {
			n *= int64(d)
		}
		if tn.Length != n*int64(weights.DTypeSize(tn.DType)) {
			t.Errorf("tensor %s: length %d for shape %v %s", tn.Name, tn.Length, tn.Shape, tn.DType)
		}
		if tn.Offset%weights.Alignment != 0 || tn.Offset < end[tn.Shard] || tn.Offset+tn.Length > m.Shards[tn.Shard].Size {
			t.Errorf("tensor %s at shard %d offset %d length %d: misaligned, overlapping or outside", tn.Name, tn.Shard, tn.Offset, tn.Length)
		}
		end[tn.Shard] = tn.Offset + tn.Length
	}
	return &m
}

// tensorBytes returns the stored bytes of a tensor.
func tensorBytes(t *testing.T, dir string, m *weights.Manifest, name string) (weights.Tensor, []byte) {
	for _, tn := range m.Tensors {
		if tn.Name == name {
			b, err := os.ReadFile(filepath.Join(dir, m.Shards[tn.Shard].File))
			if err != nil {
				t.Fatal(err)
			}
			return tn, b[tn.Offset : tn.Offset+tn.Length]
		}
	}
	t.Fatalf("no tensor %q", name)
	return weights.Tensor{}, nil
}

func opCounts(m *weights.Manifest) map[string]int {
	c := map[string]int{}
	for _, op := range m.Ops {
		c[op.Type]++
		if op.ReLU && op.Type != weights.OpReLU {
			c["fused relu"]++
		}
	}
	return c
}

func TestConvertResNets(t *testing.T) {
	cases := []struct {
		prototxt   string
		convs, sum int
		slow       bool
	}{
		{"ResNet-50-deploy.prototxt", 53, 16, false},
		{"ResNet-101-deploy.prototxt", 104, 33, true},
		{"ResNet-152-deploy.prototxt", 155, 50, true},
	}
	for _, c := range cases {
		t.Run(c.prototxt, func(t *testing.T) {
			if c.slow && testing.Short() {
				t.Skip("generating the weights takes a while")
			}
			model := generatedModel(t, c.prototxt, 1)
			out := filepath.Join(t.TempDir(), "model")
			sum, err := Convert(Options{
				Caffemodel: model, Prototxt: sharedFile(t, c.prototxt), Labels: sharedFile(t, "synset_words.txt"),
				Synthetic: true, Out: out,
			})
			if err != nil {
				t.Fatal(err)
			}
			m := verifyOutput(t, out, weights.MaxShardSize)
			// ReLUs in ResNet: conv1's, two per bottleneck block (after its first
			// two convs) and one after each sum: all fused.
			want := map[string]int{"conv": c.convs, "pool": 2, "eltwise": c.sum, "inner_product": 1, "softmax": 1,
				"fused relu": 1 + 3*c.sum, "relu": 0, "affine": 0}
			for k, v := range want {
				if got := opCounts(m)[k]; got != v {
					t.Errorf("%d %s ops, want %d", got, k, v)
				}
			}
			if len(m.Ops) != c.convs+2+c.sum+2 {
				t.Errorf("%d ops: %v", len(m.Ops), opCounts(m))
			}
			if !m.Synthetic || m.Output != "prob" || len(m.Labels) != 1000 || m.LabelIDs[0] != "n01440764" {
				t.Errorf("synthetic %v output %q labels %d ids %v", m.Synthetic, m.Output, len(m.Labels), m.LabelIDs[:1])
			}
			pp := m.Preprocess
			if pp.ChannelOrder != "BGR" || pp.Resize != 256 || pp.Scale != 1 || fmt.Sprint(pp.MeanValues) != "[104 117 123]" {
				t.Errorf("preprocess %+v", pp)
			}
			if m.Input != (weights.Input{Name: "data", Channels: 3, Height: 224, Width: 224}) {
				t.Errorf("input %+v", m.Input)
			}
			if lo, hi := 2*sum.Params, 2*sum.Params+int64(weights.Alignment*len(m.Tensors)); sum.Bytes < lo || sum.Bytes > hi {
				t.Errorf("%d bytes for %d parameters: want 2 bytes each plus alignment", sum.Bytes, sum.Params)
			}
			if !strings.Contains(strings.Join(sum.Warnings, "\n"), "104, G 117, R 123") {
				t.Errorf("no warning about the default mean: %q", sum.Warnings)
			}
			// Shapes against the reference's independent inference.
			shapes, err := reference.Shapes(parsePrototxt(t, sharedFile(t, c.prototxt)))
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range m.Ops {
				s := shapes[op.Output]
				for len(s) < 3 { // the reference keeps inner products 1-D
					s = append(s, 1)
				}
				if fmt.Sprint(s) != fmt.Sprint(op.OutShape[:]) {
					t.Errorf("op %s output %s: shape %v, reference %v", op.Name, op.Output, op.OutShape, s)
				}
			}
			if c.prototxt == "ResNet-50-deploy.prototxt" {
				logRoundingReport(t, sum)
			}
		})
	}
}

// logRoundingReport logs the fp16 error report (go test -v shows it).
func logRoundingReport(t *testing.T, sum *Summary) {
	var worstBias TensorSummary
	for _, ts := range sum.Tensors {
		if strings.HasSuffix(ts.Name, "/bias") && ts.MaxRelError > worstBias.MaxRelError {
			worstBias = ts
		}
	}
	t.Logf("fp16 report: %d tensors, %d parameters; worst relative error %.4g in %s (normal range: %.4g in %s); "+
		"worst bias %.4g in %s; %d subnormal, %d flushed to zero",
		len(sum.Tensors), sum.Params, sum.Worst.MaxRelError, sum.Worst.Name, sum.WorstNormal.MaxRelErrorNormal, sum.WorstNormal.Name,
		worstBias.MaxRelError, worstBias.Name, sum.Subnormal, sum.Flushed)
	// Correct rounding in the normal range is within half an ulp: 2^-11 relative.
	if e := sum.WorstNormal.MaxRelErrorNormal; e > 0x1p-11 || e < 0x1p-12 {
		t.Errorf("worst relative error in float16's normal range %g, want in [2^-12, 2^-11]", e)
	}
}

// TestLeNet converts the files Caffe itself wrote: the caffemodel holds the
// training net (a Data layer with transform_param scale, a loss), the deploy
// prototxt the net to run.
func TestLeNet(t *testing.T) {
	model, proto := sharedFile(t, "lenet/lenet_iter_10000.caffemodel"), sharedFile(t, "lenet/lenet.prototxt")
	out := filepath.Join(t.TempDir(), "lenet")
	sum, err := Convert(Options{Caffemodel: model, Prototxt: proto, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	m := verifyOutput(t, out, weights.MaxShardSize)
	var ops []string
	for _, op := range m.Ops {
		s := op.Name + ":" + op.Type
		if op.ReLU {
			s += "+relu"
		}
		ops = append(ops, s)
	}
	if got := strings.Join(ops, " "); got != "conv1:conv pool1:pool conv2:conv pool2:pool ip1:inner_product+relu ip2:inner_product prob:softmax" {
		t.Errorf("ops %s", got)
	}
	pp := m.Preprocess
	if pp.ChannelOrder != "GRAY" || pp.Scale != 0.00390625 || pp.Resize != 28 || pp.MeanValues != nil || pp.MeanTensor != "" {
		t.Errorf("preprocess %+v", pp)
	}
	if m.Input.Channels != 1 || m.Input.Height != 28 || m.Model != "LeNet" || m.Synthetic {
		t.Errorf("input %+v model %q synthetic %v", m.Input, m.Model, m.Synthetic)
	}
	digest := sha256.New()
	raw, _ := os.ReadFile(model)
	digest.Write(raw)
	if m.Source.CaffemodelSHA256 != hex.EncodeToString(digest.Sum(nil)) {
		t.Errorf("caffemodel sha256 %s", m.Source.CaffemodelSHA256)
	}
	if len(sum.Warnings) != 0 {
		t.Errorf("warnings %q", sum.Warnings)
	}
	// Known values come through: every stored ip1 weight is the float16
	// rounding of the caffemodel's float32 (LeNet has nothing to fold).
	trained := readModelFile(t, model)
	var ip1 *caffe.Layer
	for _, l := range trained.Layers {
		if l.Name == "ip1" {
			ip1 = l
		}
	}
	tn, b := tensorBytes(t, out, m, "ip1/weight")
	if fmt.Sprint(tn.Shape) != "[500 800]" || tn.DType != "f16" {
		t.Fatalf("ip1/weight %v %s", tn.Shape, tn.DType)
	}
	for i, v := range ip1.Blobs[0].Data {
		if got, want := binary.LittleEndian.Uint16(b[2*i:]), uint16(float16.Fromfloat32(v)); got != want {
			t.Fatalf("ip1/weight[%d] = %#04x, want %#04x (from %v)", i, got, want, v)
		}
	}
}

// tinyNet is a 3 x h x w classifier: a 1x1 conv, global average pool, softmax.
func tinyNet(h, w int) *caffe.Net {
	b := newBuilder(9, 3, h, w)
	b.conv("conv", "data", "conv", 3, 4, 1, 1, 0, true)
	b.pool("pool", "conv", "pool", caffe.PoolAve, 0, 1, 0, true)
	b.add(&caffe.Layer{Name: "prob", Type: "Softmax", Bottoms: []string{"pool"}, Tops: []string{"prob"}, Softmax: caffe.DefaultSoftmaxParam()})
	b.net.Name = "tiny"
	return b.net
}

func writeModel(t *testing.T, net *caffe.Net) string {
	var buf bytes.Buffer
	if err := caffe.WriteModel(&buf, net); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), net.Name+".caffemodel")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMeanFile: the 227x227 mean Caffe wrote is center-cropped to 224x224 and
// stored exactly, as float32; a mean smaller than the input is refused.
func TestMeanFile(t *testing.T) {
	meanPath := sharedFile(t, "mean-227-cats-dogs.binaryproto")
	model := writeModel(t, tinyNet(224, 224))
	out := filepath.Join(t.TempDir(), "m")
	if _, err := Convert(Options{Caffemodel: model, Mean: meanPath, Out: out}); err != nil {
		t.Fatal(err)
	}
	m := verifyOutput(t, out, weights.MaxShardSize)
	if m.Preprocess.MeanTensor != "mean" || m.Preprocess.MeanValues != nil || m.Source.Mean != filepath.Base(meanPath) {
		t.Errorf("preprocess %+v source %+v", m.Preprocess, m.Source)
	}
	tn, b := tensorBytes(t, out, m, "mean")
	if tn.DType != "f32" || fmt.Sprint(tn.Shape) != "[3 224 224]" {
		t.Fatalf("mean tensor %+v", tn)
	}
	f, _ := os.Open(meanPath)
	defer f.Close()
	blob, err := caffe.ReadBlobProto(f, -1)
	if err != nil {
		t.Fatal(err)
	}
	for c := 0; c < 3; c++ {
		for y := 0; y < 224; y++ {
			for x := 0; x < 224; x++ {
				want := float32(blob.At((c*227+y+1)*227 + x + 1)) // offset (227-224)/2 = 1
				got := math.Float32frombits(binary.LittleEndian.Uint32(b[4*((c*224+y)*224+x):]))
				if got != want {
					t.Fatalf("mean[%d,%d,%d] = %v, want %v", c, y, x, got, want)
				}
			}
		}
	}
	_, err = Convert(Options{Caffemodel: writeModel(t, tinyNet(228, 228)), Mean: meanPath, Out: filepath.Join(t.TempDir(), "x")})
	if err == nil || !strings.Contains(err.Error(), "is 227x227, smaller than the input 228x228") {
		t.Errorf("mean smaller than the input: %v", err)
	}
}

// TestPreprocessOptions: flags override the data layer's transform_param.
func TestPreprocessOptions(t *testing.T) {
	net := tinyNet(32, 32)
	net.Layers = append([]*caffe.Layer{{Name: "data_src", Type: "Data", Tops: []string{"data", "label"}, Phase: caffe.PhaseTrain,
		Transform: &caffe.TransformParam{Scale: 0.5, HasScale: true, MeanValue: []float64{1, 2, 3}}}}, net.Layers...)
	model := writeModel(t, net)
	two := 2.0
	cases := []struct {
		name string
		opt  Options
		want weights.Preprocess
		err  string
	}{
		{"from the data layer", Options{}, weights.Preprocess{ChannelOrder: "BGR", Resize: 32, Scale: 0.5, MeanValues: []float64{1, 2, 3}}, ""},
		{"flags", Options{Scale: &two, MeanValues: []float64{7}, Resize: 40}, weights.Preprocess{ChannelOrder: "BGR", Resize: 40, Scale: 2, MeanValues: []float64{7, 7, 7}}, ""},
		{"wrong count", Options{MeanValues: []float64{1, 2}}, weights.Preprocess{}, "-mean-values has 2 values"},
		{"both means", Options{MeanValues: []float64{1}, Mean: "x"}, weights.Preprocess{}, "not both"},
		{"resize too small", Options{Resize: 16}, weights.Preprocess{}, "-resize 16 is smaller"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.opt
			o.Caffemodel, o.Out = model, filepath.Join(t.TempDir(), "o")
			sum, err := Convert(o)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := sum.Manifest.Preprocess; fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("preprocess %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestShardsAndAtomicity: a small shard size spreads tensors over several
// shards, never straddling; too small a size fails and leaves nothing; an
// existing output is refused, and replaced with Force.
func TestShardsAndAtomicity(t *testing.T) {
	model := writeModel(t, miniResNet(4))
	parent := t.TempDir()
	out := filepath.Join(parent, "out")
	sum, err := Convert(Options{Caffemodel: model, Out: out, ShardSize: 1200})
	if err != nil {
		t.Fatal(err)
	}
	m := verifyOutput(t, out, 1200)
	if len(m.Shards) < 2 {
		t.Errorf("%d shards with a 1200-byte limit for %d bytes", len(m.Shards), sum.Bytes)
	}
	// Refused: exists.
	if _, err := Convert(Options{Caffemodel: model, Out: out}); err == nil || !strings.Contains(err.Error(), "-force") {
		t.Errorf("existing output: %v", err)
	}
	// Too small a shard for conv1's weight (8*3*3*3*2 = 432 bytes): nothing partial.
	_, err = Convert(Options{Caffemodel: model, Out: out, ShardSize: 300, Force: true})
	if err == nil || !strings.Contains(err.Error(), `tensor "conv1/weight" needs 432 bytes, more than the shard size 300`) {
		t.Errorf("small shard: %v", err)
	}
	ents, _ := os.ReadDir(parent)
	if len(ents) != 1 || ents[0].Name() != "out" {
		t.Errorf("parent holds %v after a failed conversion", ents)
	}
	verifyOutput(t, out, 1200) // the old output is intact
	// Force replaces it.
	if _, err := Convert(Options{Caffemodel: model, Out: out, Force: true, Name: "again"}); err != nil {
		t.Fatal(err)
	}
	if m := verifyOutput(t, out, weights.MaxShardSize); m.Model != "again" || len(m.Shards) != 1 {
		t.Errorf("after -force: model %q, %d shards", m.Model, len(m.Shards))
	}
	ents, _ = os.ReadDir(parent)
	if len(ents) != 1 {
		t.Errorf("parent holds %v after -force", ents)
	}
}

func TestF32Fallback(t *testing.T) {
	net := tinyNet(4, 4)
	layer(net, "conv").Blobs[1].Data[2] = 70000 // beyond float16
	out := filepath.Join(t.TempDir(), "o")
	sum, err := Convert(Options{Caffemodel: writeModel(t, net), Out: out})
	if err != nil {
		t.Fatal(err)
	}
	m := verifyOutput(t, out, weights.MaxShardSize)
	tn, b := tensorBytes(t, out, m, "conv/bias")
	if tn.DType != "f32" || math.Float32frombits(binary.LittleEndian.Uint32(b[8:])) != 70000 {
		t.Errorf("conv/bias %+v", tn)
	}
	if !strings.Contains(strings.Join(sum.Warnings, "\n"), `tensor "conv/bias" has 1 values beyond float16's range`) {
		t.Errorf("warnings %q", sum.Warnings)
	}
	if tw, _ := tensorBytes(t, out, m, "conv/weight"); tw.DType != "f16" {
		t.Errorf("conv/weight stored as %s", tw.DType)
	}
}

// TestFoldExactLayerZoo runs the fold check over every supported layer kind
// and parameter the ResNets do not use: dilation, groups, leaky ReLU, padded
// average pooling, PROD and MAX eltwise, an affine that stays standalone,
// concat, flatten, dropout, a transposed inner product with a Scale folded in.
func TestFoldExactLayerZoo(t *testing.T) {
	b := newBuilder(21, 4, 9, 9)
	a := b.conv("a", "data", "a", 4, 6, 3, 1, 2, true)
	a.Conv.Dilation, a.Conv.Group = []int{2}, 2
	a.Blobs[0] = b.blob(6, 2, 3, 3)
	b.bnScale("a", "a", 6, 3)
	layer(b.net, "scale_a").Scale.BiasTerm = false
	l := layer(b.net, "scale_a")
	l.Blobs = l.Blobs[:1]
	b.add(&caffe.Layer{Name: "a_relu", Type: "ReLU", Bottoms: []string{"a"}, Tops: []string{"a"}, ReLU: &caffe.ReLUParam{NegativeSlope: 0.1}})
	b.pool("p", "a", "p", caffe.PoolAve, 3, 2, 1, false) // 9 -> 5
	b.conv("bconv", "p", "bconv", 6, 6, 1, 1, 0, false)
	b.add(&caffe.Layer{Name: "prod", Type: "Eltwise", Bottoms: []string{"p", "bconv"}, Tops: []string{"prod"},
		Eltwise: &caffe.EltwiseParam{Operation: caffe.EltwiseProd}})
	b.add(&caffe.Layer{Name: "mx", Type: "Eltwise", Bottoms: []string{"prod", "p"}, Tops: []string{"mx"},
		Eltwise: &caffe.EltwiseParam{Operation: caffe.EltwiseMax}})
	b.bnScale("mx", "mx", 6, 0)
	b.add(&caffe.Layer{Name: "cat", Type: "Concat", Bottoms: []string{"mx", "bconv"}, Tops: []string{"cat"}, Concat: caffe.DefaultConcatParam()})
	b.add(&caffe.Layer{Name: "flat", Type: "Flatten", Bottoms: []string{"cat"}, Tops: []string{"flat"}, Flatten: caffe.DefaultFlattenParam()})
	b.add(&caffe.Layer{Name: "drop", Type: "Dropout", Bottoms: []string{"flat"}, Tops: []string{"flat"}, Dropout: caffe.DefaultDropoutParam()})
	ip := caffe.DefaultInnerProductParam()
	ip.NumOutput, ip.Transpose = 7, true
	b.add(&caffe.Layer{Name: "ip", Type: "InnerProduct", Bottoms: []string{"flat"}, Tops: []string{"ip"}, InnerProd: ip,
		Blobs: []*caffe.Blob{b.blob(12*5*5, 7), b.blob(7)}})
	sp := caffe.DefaultScaleParam()
	sp.BiasTerm = true
	b.add(&caffe.Layer{Name: "ip_scale", Type: "Scale", Bottoms: []string{"ip"}, Tops: []string{"ip"}, Scale: sp,
		Blobs: []*caffe.Blob{b.posBlob(0.5, 7), b.blob(7)}})
	b.relu("ip_relu", "ip")
	ip2 := caffe.DefaultInnerProductParam()
	ip2.NumOutput = 5
	b.add(&caffe.Layer{Name: "ip2", Type: "InnerProduct", Bottoms: []string{"ip"}, Tops: []string{"ip2"}, InnerProd: ip2,
		Blobs: []*caffe.Blob{b.blob(5, 7), b.blob(5)}})
	b.add(&caffe.Layer{Name: "prob", Type: "Softmax", Bottoms: []string{"ip2"}, Tops: []string{"prob"}, Softmax: caffe.DefaultSoftmaxParam()})

	g, err := Lower(b.net)
	if err != nil {
		t.Fatal(err)
	}
	g.Optimize()
	// BN+Scale fold into conv "a", then its leaky ReLU fuses; the BN+Scale
	// after the MAX eltwise stay one standalone affine.
	want := "a:conv+relu[6 9 9] p:pool[6 5 5] bconv:conv[6 5 5] prod:eltwise[6 5 5] mx:eltwise[6 5 5] " +
		"bn_mx:affine[6 5 5] cat:concat[12 5 5] flat:flatten[300 1 1] ip:inner_product+relu[7 1 1] ip2:inner_product[5 1 1] prob:softmax[5 1 1]"
	if got := opSummary(g); got != want {
		t.Errorf("ops:\n got %s\nwant %s", got, want)
	}
	in := make([]float64, 4*9*9)
	for i := range in {
		in[i] = math.Cos(float64(i)*0.7) * 3
	}
	tameLogits(t, b.net, in, "ip2")
	checkFold(t, b.net, in, []string{"ip2", "prob"}, 1e-12)
}

// TestWriteVerifies: Write checks the model it wrote with core's reader
// before the rename. A net the converter lowers but core refuses (here a
// pooling whose pad, 2^21, is beyond core's weights.MaxDim) fails with a
// *VerifyError and leaves nothing at the output, nor a temporary directory
// beside it; an existing output replaced with Force stays as it was. A good
// model passes and opens with weights.Read.
func TestWriteVerifies(t *testing.T) {
	b := newBuilder(3, 1, 8, 8)
	p := caffe.DefaultPoolingParam()
	p.KernelSize, p.Pad, p.Stride = 1<<21+1, 1<<21, 1<<22
	b.add(&caffe.Layer{Name: "pool", Type: "Pooling", Bottoms: []string{"data"}, Tops: []string{"pool"}, Pooling: p})
	b.net.Name = "beyond"
	if _, err := Lower(b.net); err != nil {
		t.Fatalf("the converter should accept this net (the test needs one core refuses): %v", err)
	}
	model := writeModel(t, b.net)
	parent := t.TempDir()
	out := filepath.Join(parent, "sub", "out")
	_, err := Convert(Options{Caffemodel: model, Out: out})
	var ve *VerifyError
	var fe *weights.FormatError
	if !errors.As(err, &ve) || !errors.As(err, &fe) || !strings.Contains(err.Error(), "out of range") ||
		strings.Contains(err.Error(), "re-run tools/convert") {
		t.Fatalf("error %v (%T), want a *VerifyError wrapping core's *weights.FormatError", err, err)
	}
	t.Logf("refused: %v", err)
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Errorf("parent holds %v after a failed verification", ents)
	}

	good := writeModel(t, tinyNet(4, 4))
	out = filepath.Join(parent, "out")
	if _, err := Convert(Options{Caffemodel: good, Out: out}); err != nil {
		t.Fatal(err)
	}
	if _, err := weights.Read(os.DirFS(out), weights.ReadOptions{}); err != nil {
		t.Fatalf("core does not open a model the converter verified: %v", err)
	}
	before, _ := os.ReadFile(filepath.Join(out, "manifest.json"))
	if _, err := Convert(Options{Caffemodel: model, Out: out, Force: true}); !errors.As(err, &ve) {
		t.Fatalf("error %v, want a *VerifyError", err)
	}
	after, _ := os.ReadFile(filepath.Join(out, "manifest.json"))
	if ents, _ := os.ReadDir(parent); len(ents) != 1 || !bytes.Equal(before, after) {
		t.Errorf("after a failed -force: parent holds %v, manifest changed: %v", ents, !bytes.Equal(before, after))
	}
}
