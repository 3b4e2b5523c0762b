package convert

import (
	"math/rand/v2"

	"github.com/residual-go/residual/tools/convert/caffe"
)

// builder assembles small Caffe nets by hand for tests, with seeded random
// blobs of the right shapes.
type builder struct {
	net *caffe.Net
	rng *rand.Rand
}

func newBuilder(seed uint64, c, h, w int) *builder {
	return &builder{
		net: &caffe.Net{Name: "test", Inputs: []caffe.Input{{Name: "data", Shape: []int{1, c, h, w}}}},
		rng: rand.New(rand.NewPCG(seed, 1)),
	}
}

func (b *builder) blob(shape ...int) *caffe.Blob {
	n := 1
	for _, d := range shape {
		n *= d
	}
	bl := &caffe.Blob{Shape: shape, Data: make([]float32, n)}
	for i := range bl.Data {
		bl.Data[i] = float32(b.rng.NormFloat64() * 0.3)
	}
	return bl
}

func (b *builder) posBlob(lo float64, shape ...int) *caffe.Blob {
	bl := b.blob(shape...)
	for i := range bl.Data {
		bl.Data[i] = float32(lo + b.rng.Float64())
	}
	return bl
}

func (b *builder) add(l *caffe.Layer) *caffe.Layer {
	l.Phase = caffe.PhaseAny
	b.net.Layers = append(b.net.Layers, l)
	return l
}

func (b *builder) conv(name, bottom, top string, cin, oc, k, stride, pad int, bias bool) *caffe.Layer {
	p := caffe.DefaultConvolutionParam()
	p.NumOutput, p.BiasTerm = oc, bias
	p.KernelSize, p.Stride, p.Pad = []int{k}, []int{stride}, []int{pad}
	l := &caffe.Layer{Name: name, Type: "Convolution", Bottoms: []string{bottom}, Tops: []string{top}, Conv: p,
		Blobs: []*caffe.Blob{b.blob(oc, cin, k, k)}}
	if bias {
		l.Blobs = append(l.Blobs, b.blob(oc))
	}
	return b.add(l)
}

// bnScale adds an in-place BatchNorm (scale factor s) and Scale with bias on blob.
func (b *builder) bnScale(name, blob string, c int, s float32) {
	t := true
	b.add(&caffe.Layer{Name: "bn_" + name, Type: "BatchNorm", Bottoms: []string{blob}, Tops: []string{blob},
		BatchNorm: &caffe.BatchNormParam{UseGlobalStats: &t, Eps: 1e-5},
		Blobs:     []*caffe.Blob{b.blob(c), b.posBlob(0.5, c), {Shape: []int{1}, Data: []float32{s}}}})
	sp := caffe.DefaultScaleParam()
	sp.BiasTerm = true
	b.add(&caffe.Layer{Name: "scale_" + name, Type: "Scale", Bottoms: []string{blob}, Tops: []string{blob},
		Scale: sp, Blobs: []*caffe.Blob{b.posBlob(0.5, c), b.blob(c)}})
}

func (b *builder) relu(name, blob string) {
	b.add(&caffe.Layer{Name: name, Type: "ReLU", Bottoms: []string{blob}, Tops: []string{blob}, ReLU: &caffe.ReLUParam{}})
}

func (b *builder) pool(name, bottom, top string, method, k, stride, pad int, global bool) *caffe.Layer {
	p := caffe.DefaultPoolingParam()
	p.Pool, p.KernelSize, p.Stride, p.Pad, p.GlobalPooling = method, k, stride, pad, global
	return b.add(&caffe.Layer{Name: name, Type: "Pooling", Bottoms: []string{bottom}, Tops: []string{top}, Pooling: p})
}

// miniResNet is a residual block in ResNet's style: 3x8x8 input, conv1 with
// BN+Scale+ReLU, max pool, a projection branch and a two-conv branch summed,
// ReLU, global average pool, a 10-way inner product and softmax.
func miniResNet(seed uint64) *caffe.Net {
	b := newBuilder(seed, 3, 8, 8)
	b.conv("conv1", "data", "conv1", 3, 8, 3, 1, 1, false)
	b.bnScale("conv1", "conv1", 8, 0.9)
	b.relu("conv1_relu", "conv1")
	b.pool("pool1", "conv1", "pool1", caffe.PoolMax, 3, 2, 0, false) // 8 -> ceil(5/2)+1 = 4
	b.conv("res_a", "pool1", "res_a", 8, 6, 1, 1, 0, false)
	b.bnScale("res_a", "res_a", 6, 1)
	b.conv("res_b1", "pool1", "res_b1", 8, 4, 3, 1, 1, true)
	b.bnScale("res_b1", "res_b1", 4, 2)
	b.relu("res_b1_relu", "res_b1")
	b.conv("res_b2", "res_b1", "res_b2", 4, 6, 1, 1, 0, false)
	b.bnScale("res_b2", "res_b2", 6, 0.5)
	b.add(&caffe.Layer{Name: "res", Type: "Eltwise", Bottoms: []string{"res_a", "res_b2"}, Tops: []string{"res"},
		Eltwise: caffe.DefaultEltwiseParam()})
	b.relu("res_relu", "res")
	b.pool("pool5", "res", "pool5", caffe.PoolAve, 0, 1, 0, true)
	ip := caffe.DefaultInnerProductParam()
	ip.NumOutput = 10
	b.add(&caffe.Layer{Name: "fc10", Type: "InnerProduct", Bottoms: []string{"pool5"}, Tops: []string{"fc10"},
		InnerProd: ip, Blobs: []*caffe.Blob{b.blob(10, 6), b.blob(10)}})
	b.add(&caffe.Layer{Name: "prob", Type: "Softmax", Bottoms: []string{"fc10"}, Tops: []string{"prob"}, Softmax: caffe.DefaultSoftmaxParam()})
	return b.net
}

// layer returns the named layer of net.
func layer(net *caffe.Net, name string) *caffe.Layer {
	for _, l := range net.Layers {
		if l.Name == name {
			return l
		}
	}
	panic("no layer " + name)
}
