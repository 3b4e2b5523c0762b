package convert

import (
	"bytes"
	"testing"

	"github.com/residual-go/residual/tools/convert/caffe"
)

// FuzzLower feeds arbitrary bytes, read as a caffemodel, through Lower,
// Optimize and the float16 encoding of every tensor: none of them may panic,
// and a net that lowers must give tensors of the shapes it declares. (The
// reader has its own fuzz tests; the file writing is tested in
// TestShardsAndAtomicity.) Seeds: two small nets in the real format.
func FuzzLower(f *testing.F) {
	for _, net := range []*caffe.Net{miniResNet(1), tinyNet(4, 4)} {
		var buf bytes.Buffer
		if err := caffe.WriteModel(&buf, net); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		net, err := caffe.ReadModel(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		g, err := Lower(net)
		if err != nil {
			return
		}
		g.Optimize()
		for _, name := range g.Tensors() {
			v, err := g.TensorF64(name)
			if err != nil {
				t.Fatal(err)
			}
			shape, _ := g.TensorShape(name)
			n := 1
			for _, d := range shape {
				n *= d
			}
			if n != len(v) {
				t.Fatalf("tensor %s: shape %v but %d values", name, shape, len(v))
			}
			encode(make([]byte, 2*len(v)), v, false)
		}
	})
}
