package caffe

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// benchNet is a ResNet-like stack of 3x3 convolutions with BatchNorm and
// Scale: layers conv/bn/scale repeated, about mb megabytes of float32.
func benchNet(mb int) *Net {
	rng := rand.New(rand.NewPCG(17, 18))
	const c = 256 // 256x256x3x3 floats = 2.25 MiB per convolution
	n := &Net{Name: "bench", Inputs: []Input{{Name: "data", Shape: []int{1, c, 14, 14}}}}
	prev := "data"
	for i := 0; len(n.Layers) == 0 || i*c*c*9*4 < mb<<20; i++ {
		name := "conv" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		n.Layers = append(n.Layers,
			&Layer{Name: name, Type: "Convolution", Bottoms: []string{prev}, Tops: []string{name}, Phase: PhaseAny,
				Conv:  &ConvolutionParam{NumOutput: c, KernelSize: []int{3}, Pad: []int{1}, Group: 1, Axis: 1},
				Blobs: []*Blob{randBlob(rng, c, c, 3, 3)}},
			&Layer{Name: "bn_" + name, Type: "BatchNorm", Bottoms: []string{name}, Tops: []string{name}, Phase: PhaseAny,
				Blobs: []*Blob{randBlob(rng, c), randBlob(rng, c), {Shape: []int{1}, Data: []float32{1}}}},
			&Layer{Name: "scale_" + name, Type: "Scale", Bottoms: []string{name}, Tops: []string{name}, Phase: PhaseAny,
				Scale: &ScaleParam{Axis: 1, NumAxes: 1, BiasTerm: true}, Blobs: []*Blob{randBlob(rng, c), randBlob(rng, c)}})
		prev = name
	}
	return n
}

// BenchmarkReadModel reads a generated ~50 MB caffemodel. The converter's
// target is 150 MB/s end to end, so the reader should be well above that.
func BenchmarkReadModel(b *testing.B) {
	var buf bytes.Buffer
	if err := WriteModel(&buf, benchNet(50)); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	for _, bc := range []struct {
		name string
		size int64
	}{{"size-known", int64(len(data))}, {"size-unknown", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ReadModel(bytes.NewReader(data), bc.size); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestReadModelMemory checks the streaming claim: reading allocates about
// the decoded blobs (the file's size) plus a buffer for the largest layer,
// not a second copy of the file.
func TestReadModelMemory(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteModel(&buf, benchNet(16)); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	const largestLayer = 256 * 256 * 9 * 4
	for _, size := range []int64{int64(len(data)), -1} {
		var err error
		got := allocatedBy(func() { _, err = ReadModel(bytes.NewReader(data), size) })
		if err != nil {
			t.Fatal(err)
		}
		limit := uint64(len(data)) + 3*largestLayer + 1<<20
		t.Logf("size %d: file %d bytes, allocated %d (%.2fx)", size, len(data), got, float64(got)/float64(len(data)))
		if got > limit {
			t.Errorf("size %d: reading a %d-byte model allocated %d bytes, more than %d", size, len(data), got, limit)
		}
	}
}
