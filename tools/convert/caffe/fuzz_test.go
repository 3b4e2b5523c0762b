package caffe

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

const (
	fuzzSeedMax  = 16 << 10 // real files are cut to this for seeds (small seeds minimize fast)
	fuzzInputMax = 1 << 20  // larger fuzz inputs are skipped
)

func seedCut(b []byte) []byte { return b[:min(len(b), fuzzSeedMax)] }

// textSeedCut cuts a prototxt after the last complete top-level message
// that fits, so the seed stays valid.
func textSeedCut(b []byte) []byte {
	b = seedCut(b)
	if i := bytes.LastIndex(b, []byte("\n}\n")); i >= 0 {
		return b[:i+3]
	}
	return b
}

func writtenModel(t testing.TB, n *Net) []byte {
	var buf bytes.Buffer
	if err := WriteModel(&buf, n); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// smallModel is LeNet's caffemodel with its blobs cut to a few values, so
// the fuzzer sees every real layer's bytes in a small input.
func smallModel(t testing.TB) []byte {
	file := readCaffeFile(t, "lenet/lenet_iter_10000.caffemodel")
	n, err := ReadModel(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range n.Layers {
		for i, b := range l.Blobs {
			l.Blobs[i] = &Blob{Shape: []int{2}, Data: b.Data[:2]}
		}
	}
	return writtenModel(t, n)
}

// checkModelError fails unless err is one of the package's typed errors.
func checkModelError(t *testing.T, err error) {
	var fe *FormatError
	var le *LegacyFormatError
	var be *BlobSizeError
	if !errors.As(err, &fe) && !errors.As(err, &le) && !errors.As(err, &be) {
		t.Fatalf("untyped error %T: %v", err, err)
	}
}

func FuzzReadModel(f *testing.F) {
	f.Add(seedCut(readCaffeFile(f, "lenet/lenet_iter_10000.caffemodel")))
	f.Add(smallModel(f))
	f.Add(writtenModel(f, fixtureNet(rand.New(rand.NewPCG(11, 12)))))
	f.Add(seedCut(readCaffeFile(f, "mean-227-cats-dogs.binaryproto")))
	f.Add([]byte{0x12, 0x00}) // a V1 `layers` field
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzInputMax {
			return
		}
		for _, size := range []int64{int64(len(data)), -1} {
			n, err := ReadModel(bytes.NewReader(data), size)
			if err != nil {
				checkModelError(t, err)
				continue
			}
			for _, l := range n.Layers {
				for _, b := range l.Blobs {
					if b.Len() != b.Count() {
						t.Fatalf("layer %q: blob %v with %d values accepted", l.Name, b.Shape, b.Len())
					}
				}
			}
			// What was read writes back, and reading that gives the same bytes again.
			var w1, w2 bytes.Buffer
			if err := WriteModel(&w1, n); err != nil {
				t.Fatalf("writing a net that was read: %v", err)
			}
			n2, err := ReadModel(bytes.NewReader(w1.Bytes()), int64(w1.Len()))
			if err != nil {
				t.Fatalf("reading back what was written: %v", err)
			}
			if err := WriteModel(&w2, n2); err != nil || !bytes.Equal(w1.Bytes(), w2.Bytes()) {
				t.Fatalf("write/read/write is not stable (%v)", err)
			}
		}
	})
}

func FuzzParsePrototxt(f *testing.F) {
	for _, name := range []string{"ResNet-50-deploy.prototxt", "ResNet-152-deploy.prototxt", "lenet/lenet.prototxt"} {
		f.Add(textSeedCut(readCaffeFile(f, name)))
	}
	var buf bytes.Buffer
	if err := WritePrototxt(&buf, fixtureNet(rand.New(rand.NewPCG(13, 14)))); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`name: 'x\101\x41\u00e9' input: "d" input_shape { dim: [1, 2] } layer: < name: "a"; type: "Pooling" pooling_param { pool: AVE } >`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzInputMax {
			return
		}
		n, err := ParsePrototxt(bytes.NewReader(data))
		if err != nil {
			var se *SyntaxError
			var le *LegacyFormatError
			var be *BlobSizeError
			if !errors.As(err, &se) && !errors.As(err, &le) && !errors.As(err, &be) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		var w1, w2 bytes.Buffer
		if err := WritePrototxt(&w1, n); err != nil {
			t.Fatalf("writing a net that was parsed: %v", err)
		}
		n2, err := ParsePrototxt(bytes.NewReader(w1.Bytes()))
		if err != nil {
			t.Fatalf("parsing what was written: %v\n%s", err, w1.String())
		}
		if err := WritePrototxt(&w2, n2); err != nil || w1.String() != w2.String() {
			t.Fatalf("write/parse/write is not stable (%v):\n%s\n---\n%s", err, w1.String(), w2.String())
		}
	})
}

func FuzzReadBlobProto(f *testing.F) {
	f.Add(seedCut(readCaffeFile(f, "mean-227-cats-dogs.binaryproto")))
	rng := rand.New(rand.NewPCG(15, 16))
	for _, legacy := range []bool{false, true} {
		var buf bytes.Buffer
		if err := writeBlob(&buf, randBlob(rng, 1, 3, 4, 4), legacy); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	var buf bytes.Buffer
	if err := WriteBlobProto(&buf, &Blob{Shape: []int{2}, Data64: []float64{1, 2}}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzInputMax {
			return
		}
		for _, size := range []int64{int64(len(data)), -1} {
			b, err := ReadBlobProto(bytes.NewReader(data), size)
			if err != nil {
				checkModelError(t, err)
				continue
			}
			if b.Len() != b.Count() {
				t.Fatalf("blob %v with %d values accepted", b.Shape, b.Len())
			}
			var w1, w2 bytes.Buffer
			if err := WriteBlobProto(&w1, b); err != nil {
				t.Fatal(err)
			}
			b2, err := ReadBlobProto(bytes.NewReader(w1.Bytes()), int64(w1.Len()))
			if err != nil {
				t.Fatalf("reading back what was written: %v", err)
			}
			if err := WriteBlobProto(&w2, b2); err != nil || !bytes.Equal(w1.Bytes(), w2.Bytes()) {
				t.Fatalf("write/read/write is not stable (%v)", err)
			}
		}
	})
}
