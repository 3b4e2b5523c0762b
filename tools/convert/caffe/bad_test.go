package caffe

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// topLevelEnds returns the offsets at which a top-level field of a binary
// message ends (a cut there leaves a shorter but valid file).
func topLevelEnds(t *testing.T, b []byte) map[int]bool {
	ends := map[int]bool{0: true}
	for pos := 0; pos < len(b); {
		num, typ, n := protowire.ConsumeTag(b[pos:])
		m := protowire.ConsumeFieldValue(num, typ, b[pos+n:])
		if n < 0 || m < 0 {
			t.Fatalf("fixture is not valid protobuf at %d", pos)
		}
		pos += n + m
		ends[pos] = true
	}
	return ends
}

// readModelSafely calls ReadModel and turns a panic into a test failure.
func readModelSafely(t *testing.T, b []byte, size int64) (n *Net, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("ReadModel panicked on %d bytes (size %d): %v", len(b), size, r)
		}
	}()
	return ReadModel(bytes.NewReader(b), size)
}

func TestTruncatedModels(t *testing.T) {
	var fixture bytes.Buffer
	if err := WriteModel(&fixture, fixtureNet(rand.New(rand.NewPCG(7, 8)))); err != nil {
		t.Fatal(err)
	}
	files := []struct {
		name string
		b    []byte
		step int
	}{
		{"fixture", fixture.Bytes(), 1},                                         // every cut point
		{"lenet", readCaffeFile(t, "lenet/lenet_iter_10000.caffemodel"), 28751}, // 60 cuts, and the boundaries
	}
	for _, f := range files {
		ends := topLevelEnds(t, f.b)
		layersBefore := func(cut int) int {
			k := 0
			for pos := 0; pos < cut; {
				num, typ, n := protowire.ConsumeTag(f.b[pos:])
				m := protowire.ConsumeFieldValue(num, typ, f.b[pos+n:])
				if num == netLayer {
					k++
				}
				pos += n + m
			}
			return k
		}
		cuts := []int{}
		for cut := 0; cut < len(f.b); cut += f.step {
			cuts = append(cuts, cut)
		}
		for e := range ends { // and every boundary, plus one byte either side
			cuts = append(cuts, e, e+1, e-1)
		}
		for _, cut := range cuts {
			if cut < 0 || cut >= len(f.b) {
				continue
			}
			for _, size := range []int64{int64(cut), -1, int64(len(f.b))} {
				n, err := readModelSafely(t, f.b[:cut], size)
				switch {
				case ends[cut] && size != int64(len(f.b)) && layersBefore(cut) > 0 && err == nil:
					if len(n.Layers) != layersBefore(cut) {
						t.Errorf("%s cut %d: %d layers, want %d", f.name, cut, len(n.Layers), layersBefore(cut))
					}
				case err == nil:
					t.Errorf("%s cut at %d of %d (size %d): no error", f.name, cut, len(f.b), size)
				default:
					var fe *FormatError
					if !errors.As(err, &fe) {
						t.Errorf("%s cut %d: error %T %v, want *FormatError", f.name, cut, err, err)
					}
				}
			}
		}
	}
}

func TestTruncatedBlobProto(t *testing.T) {
	file := readCaffeFile(t, "mean-227-cats-dogs.binaryproto")
	for cut := 0; cut < len(file); cut += 9973 {
		for _, size := range []int64{int64(cut), -1, int64(len(file))} {
			_, err := ReadBlobProto(bytes.NewReader(file[:cut]), size)
			if err == nil {
				t.Errorf("cut %d size %d: no error", cut, size)
			}
		}
	}
}

func TestRandomBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for i := 0; i < 1000; i++ {
		b := make([]byte, rng.IntN(300))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if i%2 == 1 && len(b) > 3 { // half of them start like a real caffemodel layer
			copy(b, []byte{0xa2, 0x06})
		}
		for _, size := range []int64{int64(len(b)), -1} {
			// Only the prefixed ones can (rarely) form a valid layer.
			if _, err := readModelSafely(t, b, size); err == nil && i%2 == 0 {
				t.Errorf("random input %d (% x) parsed as a caffemodel", i, b)
			}
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("panic on %x: %v", b, r)
					}
				}()
				ReadBlobProto(bytes.NewReader(b), size) // may parse: a BlobProto is lax
				ParsePrototxt(bytes.NewReader(b))
			}()
		}
	}
}

func TestWrongFileKind(t *testing.T) {
	prototxt := readCaffeFile(t, "ResNet-50-deploy.prototxt")
	caffemodel := readCaffeFile(t, "lenet/lenet_iter_10000.caffemodel")
	mean := readCaffeFile(t, "mean-227-cats-dogs.binaryproto")
	tests := []struct {
		name string
		read func() error
		want string
	}{
		{"prototxt as caffemodel", func() error {
			_, err := ReadModel(bytes.NewReader(prototxt), int64(len(prototxt)))
			return err
		}, "not a binary caffemodel: it looks like a text prototxt"},
		{"prototxt as binaryproto", func() error {
			_, err := ReadBlobProto(bytes.NewReader(prototxt), int64(len(prototxt)))
			return err
		}, "looks like a text prototxt"},
		{"caffemodel as prototxt", func() error {
			_, err := ParsePrototxt(bytes.NewReader(caffemodel))
			return err
		}, "binary data, not a text prototxt"},
		{"binaryproto as caffemodel", func() error {
			_, err := ReadModel(bytes.NewReader(mean), int64(len(mean)))
			return err
		}, "not a caffemodel"},
		{"caffemodel as binaryproto", func() error {
			_, err := ReadBlobProto(bytes.NewReader(caffemodel), int64(len(caffemodel)))
			return err
		}, "wire type"},
		{"empty caffemodel", func() error {
			_, err := ReadModel(bytes.NewReader(nil), 0)
			return err
		}, "the file is empty"},
		{"empty binaryproto", func() error {
			_, err := ReadBlobProto(strings.NewReader(""), -1)
			return err
		}, "the file is empty"},
		{"empty prototxt", func() error {
			_, err := ParsePrototxt(strings.NewReader("# nothing\n"))
			return err
		}, "no `layer { ... }` entries"},
		{"longer than its size", func() error {
			_, err := ReadModel(bytes.NewReader(caffemodel), int64(len(caffemodel))-2)
			return err
		}, ""},
		{"longer than its size (blob)", func() error {
			_, err := ReadBlobProto(bytes.NewReader(mean), int64(len(mean))-10)
			return err
		}, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.read()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestLegacyV1Refused(t *testing.T) {
	var v1 []byte
	v1 = protowire.AppendTag(v1, netName, protowire.BytesType)
	v1 = protowire.AppendString(v1, "old")
	v1 = protowire.AppendTag(v1, netLayersV1, protowire.BytesType)
	v1 = protowire.AppendBytes(v1, []byte{0x22, 1, 'x'}) // V1LayerParameter name = "x"
	_, err := ReadModel(bytes.NewReader(v1), int64(len(v1)))
	var le *LegacyFormatError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "upgrade_net_proto_binary") ||
		!strings.Contains(err.Error(), "legacy V1") {
		t.Errorf("binary V1: %v", err)
	}
	_, err = ParsePrototxt(strings.NewReader("name: \"old\"\nlayers {\n  name: \"x\"\n  type: CONVOLUTION\n}\n"))
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "upgrade_net_proto_text") {
		t.Errorf("text V1: %v", err)
	}
}

// allocatedBy returns the bytes allocated while f runs.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestHugeClaimsAllocateLittle(t *testing.T) {
	// A blob whose shape claims 10^12 values but carries 4.
	blob := &binEnc{}
	blob.data(blobData, "", []float32{1, 2, 3, 4})
	blob.message(blobShape, "", func(e encoder) { e.dims(shapeDim, "", []int{1000000, 1000000}) })
	layer := &binEnc{}
	layer.str(layerName, "", "huge")
	layer.message(layerBlobs, "", func(e encoder) { e.(*binEnc).b = append(e.(*binEnc).b, blob.b...) })
	model := &binEnc{}
	model.message(netLayer, "", func(e encoder) { e.(*binEnc).b = append(e.(*binEnc).b, layer.b...) })

	// A layer whose length prefix claims 10^12 bytes.
	lying := protowire.AppendTag(nil, netLayer, protowire.BytesType)
	lying = protowire.AppendVarint(lying, 1e12)
	lying = append(lying, bytes.Repeat([]byte{0}, 100)...)

	// A blob with packed data claiming 10^12 bytes.
	lyingBlob := protowire.AppendTag(nil, blobData, protowire.BytesType)
	lyingBlob = protowire.AppendVarint(lyingBlob, 1e12)
	lyingBlob = append(lyingBlob, 1, 2, 3, 4)

	tests := []struct {
		name string
		read func() error
		want string
	}{
		{"shape 1e12, known size", func() error {
			_, err := ReadModel(bytes.NewReader(model.b), int64(len(model.b)))
			return err
		}, `layer "huge" blob 0 has shape [1000000 1000000] but carries 4 values`},
		{"shape 1e12, unknown size", func() error {
			_, err := ReadModel(bytes.NewReader(model.b), -1)
			return err
		}, `layer "huge" blob 0 has shape [1000000 1000000]`},
		{"shape 1e12 binaryproto", func() error {
			_, err := ReadBlobProto(bytes.NewReader(blob.b), int64(len(blob.b)))
			return err
		}, "blob has shape [1000000 1000000] but carries 4 values"},
		{"length 1e12, known size", func() error {
			_, err := ReadModel(bytes.NewReader(lying), int64(len(lying)))
			return err
		}, "claims 1000000000000 bytes but only 100 remain"},
		{"length 1e12, unknown size", func() error {
			_, err := ReadModel(bytes.NewReader(lying), -1)
			return err
		}, "truncated"},
		{"blob length 1e12, known size", func() error {
			_, err := ReadBlobProto(bytes.NewReader(lyingBlob), int64(len(lyingBlob)))
			return err
		}, "truncated?"},
		{"blob length 1e12, unknown size", func() error {
			_, err := ReadBlobProto(bytes.NewReader(lyingBlob), -1)
			return err
		}, "truncated?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			got := allocatedBy(func() { err = tt.read() })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
			// The stream's 64 KiB read buffer and the 1 MiB growth chunk
			// at most: nothing proportional to the claim.
			if got > 4<<20 {
				t.Errorf("allocated %d bytes for a %s", got, tt.name)
			}
		})
	}
	var se *BlobSizeError
	_, err := ReadModel(bytes.NewReader(model.b), -1)
	if !errors.As(err, &se) || se.Layer != "huge" || se.Index != 0 || se.Values != 4 {
		t.Errorf("error %#v, want a *BlobSizeError naming layer huge, blob 0", err)
	}
}

func TestCorruptBlobs(t *testing.T) {
	mk := func(f func(e *binEnc)) []byte {
		layer := &binEnc{}
		layer.str(layerName, "", "L")
		layer.message(layerBlobs, "", func(e encoder) { encodeBlob(e, &Blob{Shape: []int{1}, Data: []float32{1}}, false) })
		blob := &binEnc{}
		f(blob)
		layer.message(layerBlobs, "", func(e encoder) { e.(*binEnc).b = append(e.(*binEnc).b, blob.b...) })
		model := &binEnc{}
		model.message(netLayer, "", func(e encoder) { e.(*binEnc).b = append(e.(*binEnc).b, layer.b...) })
		return model.b
	}
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"count mismatch", mk(func(e *binEnc) {
			e.data(blobData, "", []float32{1, 2, 3})
			e.message(blobShape, "", func(e encoder) { e.dims(shapeDim, "", []int{2, 2}) })
		}), `layer "L" blob 1 has shape [2 2] but carries 3 values`},
		{"legacy count mismatch", mk(func(e *binEnc) {
			e.integer(blobNum, "", 1)
			e.integer(blobChannels, "", 2)
			e.data(blobData, "", []float32{1})
		}), `layer "L" blob 1 has shape [1 2 0 0] but carries 1 values`},
		{"negative dim", mk(func(e *binEnc) {
			e.message(blobShape, "", func(e encoder) { e.dims(shapeDim, "", []int{-1}) })
		}), "BlobShape.dim -1 is out of range"},
		{"overflowing shape", mk(func(e *binEnc) {
			e.data(blobData, "", []float32{1})
			e.message(blobShape, "", func(e encoder) { e.dims(shapeDim, "", []int{1<<31 - 1, 1<<31 - 1, 1<<31 - 1}) })
		}), "but carries 1 values"},
		{"dim beyond Caffe's int", mk(func(e *binEnc) {
			e.message(blobShape, "", func(e encoder) { e.dims(shapeDim, "", []int{1 << 31}) })
		}), "BlobShape.dim 2147483648 is out of range"},
		{"negative legacy dim", mk(func(e *binEnc) {
			e.integer(blobNum, "", -1)
		}), "legacy blob dimension -1 is negative"},
		{"legacy dim beyond int32", mk(func(e *binEnc) {
			e.integer(blobHeight, "", 1<<31)
		}), "BlobProto num/channels/height/width 2147483648 is out of range for an int32 field"},
		{"ragged packed data", mk(func(e *binEnc) {
			e.tag(blobData, protowire.BytesType)
			e.b = protowire.AppendBytes(e.b, []byte{1, 2, 3})
		}), `layer 0 ("L"): packed BlobProto.data is 3 bytes, not a multiple of 4`},
		{"data and double_data", mk(func(e *binEnc) {
			e.data(blobData, "", []float32{1})
			e.data64(blobDoubleData, "", []float64{1})
			e.message(blobShape, "", func(e encoder) { e.dims(shapeDim, "", []int{1}) })
		}), "both data and double_data"},
		{"data with wrong wire type", mk(func(e *binEnc) {
			e.integer(blobData, "", 5)
		}), "wire type 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadModel(bytes.NewReader(tt.file), int64(len(tt.file)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestDeepNesting(t *testing.T) {
	// Text: 100000 nested messages must stop at the depth limit.
	deep := strings.Repeat("layer { ", 100000) + strings.Repeat("} ", 100000)
	_, err := ParsePrototxt(strings.NewReader(deep))
	var se *SyntaxError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("deep text: %v", err)
	}
	// Binary: deeply nested groups inside a layer are refused, not recursed into forever.
	var body []byte
	body = protowire.AppendTag(body, layerName, protowire.BytesType)
	body = protowire.AppendString(body, "g")
	for i := 0; i < 100000; i++ {
		body = protowire.AppendTag(body, 500, protowire.StartGroupType)
	}
	for i := 0; i < 100000; i++ {
		body = protowire.AppendTag(body, 500, protowire.EndGroupType)
	}
	file := protowire.AppendTag(nil, netLayer, protowire.BytesType)
	file = protowire.AppendBytes(file, body)
	if _, err := readModelSafely(t, file, int64(len(file))); err == nil {
		t.Error("100000 nested groups parsed")
	}
	// Top-level groups are not part of a caffemodel.
	group := protowire.AppendTag(nil, 100, protowire.StartGroupType)
	if _, err := readModelSafely(t, group, int64(len(group))); err == nil || !strings.Contains(err.Error(), "wire type") {
		t.Errorf("top-level group: %v", err)
	}
}

// errReader fails after n bytes, as a broken disk or network would.
type errReader struct {
	r io.Reader
	n int
}

var errBroken = errors.New("broken reader")

func (e *errReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, errBroken
	}
	p = p[:min(len(p), e.n)]
	n, err := e.r.Read(p)
	e.n -= n
	return n, err
}

func TestReaderErrorsPropagate(t *testing.T) {
	file := readCaffeFile(t, "lenet/lenet_iter_10000.caffemodel")
	_, err := ReadModel(&errReader{r: bytes.NewReader(file), n: 100000}, int64(len(file)))
	if !errors.Is(err, errBroken) {
		t.Errorf("error %v, want it to wrap the reader's error", err)
	}
}
