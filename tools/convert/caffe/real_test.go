package caffe

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/residual-go/residual/internal/testfiles"
)

// readCaffeFile returns a real Caffe file kept in the repository (see
// testfiles.Caffe); a missing file fails the test.
func readCaffeFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(testfiles.Caffe(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func countTypes(n *Net) map[string]int {
	c := map[string]int{}
	for _, l := range n.Layers {
		c[l.Type]++
	}
	return c
}

func TestResNetDeployPrototxts(t *testing.T) {
	// Counted independently with grep -c 'type: "X"' on the files.
	tests := []struct {
		file   string
		name   string
		layers int
		noBias int // convolutions with bias_term: false (grep -c)
		types  map[string]int
	}{
		{"ResNet-50-deploy.prototxt", "ResNet-50", 228, 52, map[string]int{"Convolution": 53, "BatchNorm": 53,
			"Scale": 53, "ReLU": 49, "Eltwise": 16, "Pooling": 2, "InnerProduct": 1, "Softmax": 1}},
		{"ResNet-101-deploy.prototxt", "ResNet-101", 449, 104, map[string]int{"Convolution": 104, "BatchNorm": 104,
			"Scale": 104, "ReLU": 100, "Eltwise": 33, "Pooling": 2, "InnerProduct": 1, "Softmax": 1}},
		{"ResNet-152-deploy.prototxt", "ResNet-152", 670, 155, map[string]int{"Convolution": 155, "BatchNorm": 155,
			"Scale": 155, "ReLU": 151, "Eltwise": 50, "Pooling": 2, "InnerProduct": 1, "Softmax": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParsePrototxt(bytes.NewReader(readCaffeFile(t, tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			if n.Name != tt.name {
				t.Errorf("name %q, want %q", n.Name, tt.name)
			}
			if len(n.Inputs) != 1 || n.Inputs[0].Name != "data" || !equalInts(n.Inputs[0].Shape, []int{1, 3, 224, 224}) {
				t.Errorf("inputs %+v, want data 1x3x224x224", n.Inputs)
			}
			if len(n.Layers) != tt.layers {
				t.Errorf("%d layers, want %d", len(n.Layers), tt.layers)
			}
			got := countTypes(n)
			for typ, want := range tt.types {
				if got[typ] != want {
					t.Errorf("%d %s layers, want %d", got[typ], typ, want)
				}
			}
			if len(got) != len(tt.types) {
				t.Errorf("layer types %v, want exactly %v", got, tt.types)
			}
			// The first layers, as written in every ResNet deploy file.
			conv1, bn, sc, relu := n.Layers[0], n.Layers[1], n.Layers[2], n.Layers[3]
			if conv1.Name != "conv1" || conv1.Conv == nil || conv1.Conv.NumOutput != 64 ||
				!equalInts(conv1.Conv.KernelSize, []int{7}) || !equalInts(conv1.Conv.Pad, []int{3}) ||
				!equalInts(conv1.Conv.Stride, []int{2}) || conv1.Conv.BiasTerm != (tt.noBias == 52) || conv1.Conv.Group != 1 ||
				!equalStrings(conv1.Bottoms, []string{"data"}) || !equalStrings(conv1.Tops, []string{"conv1"}) {
				t.Errorf("conv1 = %+v %+v", conv1, conv1.Conv)
			}
			if bn.Type != "BatchNorm" || bn.BatchNorm == nil || bn.BatchNorm.UseGlobalStats == nil ||
				!*bn.BatchNorm.UseGlobalStats || bn.BatchNorm.Eps != float64(float32(1e-5)) {
				t.Errorf("bn_conv1 = %+v %+v", bn, bn.BatchNorm)
			}
			if sc.Type != "Scale" || sc.Scale == nil || !sc.Scale.BiasTerm || sc.Scale.Axis != 1 {
				t.Errorf("scale_conv1 = %+v %+v", sc, sc.Scale)
			}
			if relu.Type != "ReLU" || relu.ReLU != nil || !equalStrings(relu.Bottoms, relu.Tops) {
				t.Errorf("conv1_relu = %+v", relu)
			}
			// ResNet-50's conv1 alone has a bias term; in 101 and 152 no convolution has one.
			var noBias int
			for _, l := range n.Layers {
				if l.Conv != nil && !l.Conv.BiasTerm {
					noBias++
				}
				if l.Phase != PhaseAny {
					t.Errorf("layer %q has phase %d; deploy layers have no include rule", l.Name, l.Phase)
				}
			}
			if noBias != tt.noBias {
				t.Errorf("%d convolutions without bias, want %d", noBias, tt.noBias)
			}
			pool5 := n.Layers[len(n.Layers)-3]
			if pool5.Name != "pool5" || pool5.Pooling == nil || pool5.Pooling.Pool != PoolAve ||
				pool5.Pooling.KernelSize != 7 || pool5.Pooling.Stride != 1 {
				t.Errorf("pool5 = %+v %+v", pool5, pool5.Pooling)
			}
			fc := n.Layers[len(n.Layers)-2]
			if fc.Name != "fc1000" || fc.InnerProd == nil || fc.InnerProd.NumOutput != 1000 || !fc.InnerProd.BiasTerm {
				t.Errorf("fc1000 = %+v %+v", fc, fc.InnerProd)
			}
			for _, l := range n.Layers {
				if l.Type == "Eltwise" && (len(l.Bottoms) != 2 || l.Eltwise != nil) {
					t.Errorf("eltwise %q = %+v", l.Name, l)
				}
			}
		})
	}
}

func TestLeNetPrototxt(t *testing.T) {
	n, err := ParsePrototxt(bytes.NewReader(readCaffeFile(t, "lenet/lenet.prototxt")))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, typ string }{{"data", "Input"}, {"conv1", "Convolution"}, {"pool1", "Pooling"},
		{"conv2", "Convolution"}, {"pool2", "Pooling"}, {"ip1", "InnerProduct"}, {"relu1", "ReLU"},
		{"ip2", "InnerProduct"}, {"prob", "Softmax"}}
	if len(n.Layers) != len(want) {
		t.Fatalf("%d layers, want %d", len(n.Layers), len(want))
	}
	for i, w := range want {
		if n.Layers[i].Name != w.name || n.Layers[i].Type != w.typ {
			t.Errorf("layer %d = %s/%s, want %s/%s", i, n.Layers[i].Name, n.Layers[i].Type, w.name, w.typ)
		}
	}
	if n.Name != "LeNet" || len(n.Inputs) != 0 {
		t.Errorf("name %q inputs %v", n.Name, n.Inputs)
	}
	in := n.Layers[0].Input
	if in == nil || len(in.Shapes) != 1 || !equalInts(in.Shapes[0], []int{64, 1, 28, 28}) {
		t.Errorf("Input layer param %+v, want one shape 64x1x28x28", in)
	}
	if p := n.Layers[2].Pooling; p == nil || p.Pool != PoolMax || p.KernelSize != 2 || p.Stride != 2 {
		t.Errorf("pool1 %+v", p)
	}
	if p := n.Layers[7].InnerProd; p == nil || p.NumOutput != 10 {
		t.Errorf("ip2 %+v", p)
	}
}

// scannedBlob is a blob found by walking the raw bytes with protowire,
// independently of the reader under test.
type scannedBlob struct {
	data  []float32
	shape []int
	off   int // file offset of the first data byte
}

// scanModel walks a caffemodel's layers (field 100) and their blobs
// (field 7) and packed data (5) / shape (7 { dim 1 }), as a naive check.
func scanModel(t *testing.T, file []byte) (names []string, blobs map[string][]scannedBlob) {
	t.Helper()
	blobs = map[string][]scannedBlob{}
	fields := func(b []byte, base int, f func(num protowire.Number, v []byte, off int)) {
		for pos := 0; pos < len(b); {
			num, typ, n := protowire.ConsumeTag(b[pos:])
			if n < 0 {
				t.Fatalf("scan: bad tag at %d", base+pos)
			}
			pos += n
			if typ != protowire.BytesType {
				m := protowire.ConsumeFieldValue(num, typ, b[pos:])
				if m < 0 {
					t.Fatalf("scan: bad value at %d", base+pos)
				}
				pos += m
				continue
			}
			v, m := protowire.ConsumeBytes(b[pos:])
			if m < 0 {
				t.Fatalf("scan: bad bytes at %d", base+pos)
			}
			f(num, v, base+pos+m-len(v))
			pos += m
		}
	}
	fields(file, 0, func(num protowire.Number, layer []byte, off int) {
		if num != 100 {
			return
		}
		var name string
		var bs []scannedBlob
		fields(layer, off, func(num protowire.Number, v []byte, off int) {
			switch num {
			case 1:
				name = string(v)
			case 7:
				var sb scannedBlob
				fields(v, off, func(num protowire.Number, v []byte, off int) {
					switch num {
					case 5:
						sb.off = off
						for i := 0; i+4 <= len(v); i += 4 {
							sb.data = append(sb.data, math.Float32frombits(binary.LittleEndian.Uint32(v[i:])))
						}
					case 7:
						for len(v) > 0 { // packed dims inside BlobShape field 1
							_, _, n := protowire.ConsumeTag(v)
							d, m := protowire.ConsumeBytes(v[n:])
							for len(d) > 0 {
								x, k := protowire.ConsumeVarint(d)
								sb.shape = append(sb.shape, int(x))
								d = d[k:]
							}
							v = v[n+m:]
						}
					}
				})
				bs = append(bs, sb)
			}
		})
		names = append(names, name)
		blobs[name] = bs
	})
	return names, blobs
}

func TestLeNetCaffemodel(t *testing.T) {
	file := readCaffeFile(t, "lenet/lenet_iter_10000.caffemodel")
	for _, size := range []int64{int64(len(file)), -1} {
		n, err := ReadModel(bytes.NewReader(file), size)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		want := []struct {
			name, typ string
			shapes    [][]int
		}{
			{"mnist", "Data", nil},
			{"conv1", "Convolution", [][]int{{20, 1, 5, 5}, {20}}},
			{"pool1", "Pooling", nil},
			{"conv2", "Convolution", [][]int{{50, 20, 5, 5}, {50}}},
			{"pool2", "Pooling", nil},
			{"ip1", "InnerProduct", [][]int{{500, 800}, {500}}},
			{"relu1", "ReLU", nil},
			{"ip2", "InnerProduct", [][]int{{10, 500}, {10}}},
			{"loss", "SoftmaxWithLoss", nil},
		}
		if n.Name != "LeNet" || len(n.Layers) != len(want) {
			t.Fatalf("net %q with %d layers, want LeNet with %d", n.Name, len(n.Layers), len(want))
		}
		for i, w := range want {
			l := n.Layers[i]
			if l.Name != w.name || l.Type != w.typ || len(l.Blobs) != len(w.shapes) {
				t.Errorf("layer %d = %s/%s with %d blobs, want %s/%s with %d", i, l.Name, l.Type, len(l.Blobs),
					w.name, w.typ, len(w.shapes))
				continue
			}
			for j, s := range w.shapes {
				if !equalInts(l.Blobs[j].Shape, s) || l.Blobs[j].Len() != l.Blobs[j].Count() || l.Blobs[j].Data64 != nil {
					t.Errorf("%s blob %d shape %v with %d values, want %v", l.Name, j, l.Blobs[j].Shape, l.Blobs[j].Len(), s)
				}
			}
		}
		mnist := n.Layers[0]
		if mnist.Phase != PhaseTrain || mnist.Transform == nil || !mnist.Transform.HasScale ||
			mnist.Transform.Scale != 0.00390625 || !equalStrings(mnist.Tops, []string{"data", "label"}) {
			t.Errorf("mnist layer %+v transform %+v", mnist, mnist.Transform)
		}
		for _, l := range n.Layers[1:] {
			if l.Phase != PhaseAny {
				t.Errorf("%s phase %d, want PhaseAny (no include rule)", l.Name, l.Phase)
			}
		}
		if c := n.Layers[1].Conv; c == nil || c.NumOutput != 20 || !equalInts(c.KernelSize, []int{5}) ||
			!equalInts(c.Stride, []int{1}) {
			t.Errorf("conv1 param %+v", c)
		}
		if p := n.Layers[2].Pooling; p == nil || p.Pool != PoolMax || p.KernelSize != 2 || p.Stride != 2 {
			t.Errorf("pool1 param %+v", p)
		}
		if p := n.Layers[7].InnerProd; p == nil || p.NumOutput != 10 {
			t.Errorf("ip2 param %+v", p)
		}
		relu := n.Layers[6]
		if !equalStrings(relu.Bottoms, []string{"ip1"}) || !equalStrings(relu.Tops, []string{"ip1"}) {
			t.Errorf("relu1 is not in place on ip1: %v -> %v", relu.Bottoms, relu.Tops)
		}

		// Values read back exactly. First, two read off a hexdump of the
		// file (xxd, offset 0x93: "31 07 46 3d 2c 76 3a 3e").
		w := n.Layers[1].Blobs[0].Data
		if math.Float32bits(w[0]) != 0x3d460731 || math.Float32bits(w[1]) != 0x3e3a762c {
			t.Errorf("conv1 weights start %08x %08x, want 3d460731 3e3a762c",
				math.Float32bits(w[0]), math.Float32bits(w[1]))
		}
		if got := binary.LittleEndian.Uint32(file[0x93:]); got != 0x3d460731 {
			t.Fatalf("hexdump offset is off: %08x", got)
		}
		// Then every value of every blob against a naive walk of the bytes.
		names, scanned := scanModel(t, file)
		if len(names) != len(n.Layers) {
			t.Fatalf("scan found %d layers, reader %d", len(names), len(n.Layers))
		}
		for _, l := range n.Layers {
			sb := scanned[l.Name]
			if len(sb) != len(l.Blobs) {
				t.Fatalf("%s: scan found %d blobs, reader %d", l.Name, len(sb), len(l.Blobs))
			}
			for j, b := range l.Blobs {
				if !equalInts(b.Shape, sb[j].shape) || len(b.Data) != len(sb[j].data) {
					t.Fatalf("%s blob %d: %v/%d values vs scanned %v/%d", l.Name, j, b.Shape, len(b.Data),
						sb[j].shape, len(sb[j].data))
				}
				for k := range b.Data {
					if math.Float32bits(b.Data[k]) != math.Float32bits(sb[j].data[k]) {
						t.Fatalf("%s blob %d value %d = %v, bytes say %v", l.Name, j, k, b.Data[k], sb[j].data[k])
					}
				}
				last := sb[j].off + 4*(len(b.Data)-1)
				if math.Float32bits(b.Data[len(b.Data)-1]) != binary.LittleEndian.Uint32(file[last:]) {
					t.Errorf("%s blob %d: last value differs from the bytes at offset %d", l.Name, j, last)
				}
			}
		}
	}
}

func TestMeanBinaryproto(t *testing.T) {
	file := readCaffeFile(t, "mean-227-cats-dogs.binaryproto")
	for _, size := range []int64{int64(len(file)), -1} {
		b, err := ReadBlobProto(bytes.NewReader(file), size)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !equalInts(b.Shape, []int{1, 3, 227, 227}) || len(b.Data) != 3*227*227 || b.Data64 != nil {
			t.Fatalf("shape %v with %d values", b.Shape, b.Len())
		}
		// The file is num, channels, height, width (08 01 10 03 18 e3 01 20 e3 01),
		// then data (2a, length ec de 25 = 618348 bytes) from offset 14 to the end.
		if len(file) != 14+4*len(b.Data) {
			t.Fatalf("file layout is not the expected one: %d bytes", len(file))
		}
		for _, i := range []int{0, 1, 2, 227*227 - 1, 227 * 227, len(b.Data) / 2, len(b.Data) - 1} {
			want := binary.LittleEndian.Uint32(file[14+4*i:])
			if math.Float32bits(b.Data[i]) != want {
				t.Errorf("value %d = %08x, file bytes %08x", i, math.Float32bits(b.Data[i]), want)
			}
		}
		// From a hexdump: "8b d8 fa 42 63 cf ff 42".
		if math.Float32bits(b.Data[0]) != 0x42fad88b || math.Float32bits(b.Data[1]) != 0x42ffcf63 {
			t.Errorf("first values %v %v", b.Data[0], b.Data[1])
		}
		// A mean image is in 0..255, and a BGR cats/dogs mean is near 100-130.
		for c := 0; c < 3; c++ {
			var sum float64
			for _, v := range b.Data[c*227*227 : (c+1)*227*227] {
				sum += float64(v)
			}
			if m := sum / (227 * 227); m < 80 || m > 160 {
				t.Errorf("channel %d mean %v is implausible", c, m)
			}
		}
	}
}

func TestMeanLegacyRoundTripIsByteExact(t *testing.T) {
	// Writing the mean back in the legacy form reproduces Caffe's bytes.
	file := readCaffeFile(t, "mean-227-cats-dogs.binaryproto")
	b, err := ReadBlobProto(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteBlobProtoLegacy(&out, b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), file) {
		t.Errorf("legacy rewrite differs from Caffe's file (%d vs %d bytes)", out.Len(), len(file))
	}
}

func TestSynsetWords(t *testing.T) {
	ids, names, err := ReadLabels(bytes.NewReader(readCaffeFile(t, "synset_words.txt")))
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1000 || len(names) != 1000 {
		t.Fatalf("%d ids, %d names, want 1000", len(ids), len(names))
	}
	if ids[0] != "n01440764" || names[0] != "tench, Tinca tinca" {
		t.Errorf("class 0 = %q %q", ids[0], names[0])
	}
	if ids[1] != "n01443537" || names[1] != "goldfish, Carassius auratus" {
		t.Errorf("class 1 = %q %q", ids[1], names[1])
	}
	for i, id := range ids {
		if !isWordNetID(id) || names[i] == "" {
			t.Errorf("class %d = %q %q", i, id, names[i])
		}
		if i > 0 && id <= ids[i-1] {
			t.Errorf("ids not sorted at %d: %s after %s", i, id, ids[i-1])
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// dump renders a net for failure messages.
func dump(n *Net) string {
	if b, err := json.MarshalIndent(n, "", " "); err == nil {
		return string(b)
	}
	return fmt.Sprintf("%+v", *n)
}
