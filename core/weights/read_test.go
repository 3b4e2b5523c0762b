package weights_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"strings"
	"testing"
	"testing/fstest"
	"unsafe"

	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/core/weights/weightstest"
)

// smallModel is conv(3x3) -> max pool -> inner product -> softmax on a 3x8x8
// input, with tiny shards so that its tensors span several of them.
func smallModel(t *testing.T) *weightstest.Builder {
	t.Helper()
	b := weightstest.New("small", 3, 8, 8, 1)
	b.ShardSize = 512
	b.Conv("data", "conv1", 3, 4, 3, 1, 1, true, 0.5)
	b.Op(weights.Op{Type: weights.OpPool, Inputs: []string{"conv1"}, Output: "pool1", Pool: "max", RoundMode: "ceil",
		Kernel: [2]int{3, 3}, Stride: [2]int{2, 2}})
	b.InnerProduct("pool1", "fc", 4*4*4, 5, false, 0.5)
	b.Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"fc"}, Output: "prob"})
	b.F32("mean", []int{3, 8, 8}, b.Random(3*8*8, 100))
	b.M.Preprocess.MeanTensor = "mean"
	b.Labels(5)
	return b
}

func files(t *testing.T, b *weightstest.Builder) map[string][]byte {
	t.Helper()
	f, err := b.Files()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mapFS(files map[string][]byte) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: data}
	}
	return fsys
}

// openOnly hides MapFS's ReadFile, so Read takes its chunked path.
type openOnly struct{ fs.FS }

func TestReadGood(t *testing.T) {
	b := smallModel(t)
	f := files(t, b)
	for _, tc := range []struct {
		name string
		fsys fs.FS
	}{{"ReadFileFS", mapFS(f)}, {"OpenOnly", openOnly{mapFS(f)}}} {
		t.Run(tc.name, func(t *testing.T) {
			var calls int
			var last, total int64
			w, err := weights.Read(tc.fsys, weights.ReadOptions{Progress: func(done, tot int64) {
				if done < last {
					t.Errorf("progress went back from %d to %d", last, done)
				}
				calls++
				last, total = done, tot
			}})
			if err != nil {
				t.Fatal(err)
			}
			if len(w.Manifest.Shards) < 3 {
				t.Errorf("want the tensors spread over several shards, got %d", len(w.Manifest.Shards))
			}
			if last != total || total != w.ShardBytes() || calls < len(w.Manifest.Shards) {
				t.Errorf("progress ended at %d of %d after %d calls; shards hold %d bytes", last, total, calls, w.ShardBytes())
			}
			if got := w.Manifest.Classes(); got != 5 {
				t.Errorf("Classes = %d, want 5", got)
			}
			// Every tensor reads back as written (f16 values rounded once).
			for _, tn := range b.M.Tensors {
				tt := w.Tensor(tn.Name)
				if tt == nil {
					t.Fatalf("tensor %s missing", tn.Name)
				}
				var got []float32
				switch tt.DType {
				case weights.DTypeF16:
					if w.F32(tn.Name) != nil {
						t.Errorf("F32 view of f16 tensor %s is not nil", tn.Name)
					}
					for _, h := range w.F16(tn.Name) {
						got = append(got, f16ToF32(h))
					}
				case weights.DTypeF32:
					got = w.F32(tn.Name)
				}
				if int64(len(got)) != tt.Elements() {
					t.Fatalf("tensor %s: %d values, want %d", tn.Name, len(got), tt.Elements())
				}
			}
			// The mean is float32 and exact.
			mean := w.F32("mean")
			want := weightstest.New("small", 3, 8, 8, 1)
			want.Conv("data", "conv1", 3, 4, 3, 1, 1, true, 0.5) // same random sequence as smallModel
			want.Random(4*4*4*5+5, 0.5)
			for i, v := range want.Random(3*8*8, 100) {
				if mean[i] != v {
					t.Fatalf("mean[%d] = %v, want %v", i, mean[i], v)
				}
			}
			w.Release()
			if w.F32("mean") != nil || w.ShardBytes() != 0 {
				t.Error("views still available after Release")
			}
		})
	}
}

// f16ToF32 is an independent binary16 decoder for the test.
func f16ToF32(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * float32(frac/1024*math.Pow(2, -14))
	case 31:
		if frac == 0 {
			return sign * float32(math.Inf(1))
		}
		return float32(math.NaN())
	}
	return sign * float32((1+frac/1024)*math.Pow(2, float64(exp-15)))
}

func TestF16Views(t *testing.T) {
	vals := []float32{0, 1, -2, 0.5, 65504, -0.000061035156, 3.140625, 1e-7}
	b := weightstest.New("v", 1, 2, 2, 1)
	b.F16("t", []int{len(vals)}, vals)
	b.Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"data"}, Output: "prob"})
	b.Labels(4)
	fsys, err := b.MapFS()
	if err != nil {
		t.Fatal(err)
	}
	w, err := weights.Read(fsys, weights.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range w.F16("t") {
		if got, want := f16ToF32(h), weightstest.RoundF16(vals[i]); got != want {
			t.Errorf("value %d: %v, want %v", i, got, want)
		}
	}
}

type corruption struct {
	name  string
	edit  func(f map[string][]byte, m *weights.Manifest) // m is nil-safe: edits of the manifest are re-encoded
	check func(t *testing.T, err error)
}

func wantFormat(substr string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var fe *weights.FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("error %v (%T) is not a *FormatError", err, err)
		}
		if !strings.Contains(err.Error(), substr) || !strings.Contains(err.Error(), "re-run tools/convert") {
			t.Errorf("error %q does not mention %q and the fix", err, substr)
		}
	}
}

func wantShard(shard, substr string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var se *weights.ShardError
		if !errors.As(err, &se) {
			t.Fatalf("error %v (%T) is not a *ShardError", err, err)
		}
		if se.Shard != shard || !strings.Contains(err.Error(), substr) || !strings.Contains(err.Error(), shard) {
			t.Errorf("error %q: want shard %s and %q", err, shard, substr)
		}
	}
}

func TestReadCorrupt(t *testing.T) {
	cases := []corruption{
		{"bad json", func(f map[string][]byte, _ *weights.Manifest) {
			f["manifest.json"] = []byte(`{"format": "residual-weights",`)
		},
			wantFormat("not valid JSON")},
		{"missing manifest", func(f map[string][]byte, _ *weights.Manifest) { delete(f, "manifest.json") }, wantFormat("cannot open")},
		{"wrong version", func(_ map[string][]byte, m *weights.Manifest) { m.Version = 2 }, wantFormat("format version is 2")},
		{"wrong format", func(_ map[string][]byte, m *weights.Manifest) { m.Format = "onnx" }, wantFormat(`format is "onnx"`)},
		{"unknown field", func(f map[string][]byte, _ *weights.Manifest) {
			f["manifest.json"] = []byte(strings.Replace(string(f["manifest.json"]), `"model":`, `"colour": 1, "model":`, 1))
		}, wantFormat("colour")},
		{"missing shard", func(f map[string][]byte, _ *weights.Manifest) { delete(f, "shard-001.bin") }, wantShard("shard-001.bin", "missing")},
		{"flipped byte", func(f map[string][]byte, _ *weights.Manifest) { f["shard-002.bin"][7] ^= 0x10 }, func(t *testing.T, err error) {
			var ce *weights.ChecksumError
			if !errors.As(err, &ce) || ce.Shard != "shard-002.bin" || ce.Want == ce.Got || len(ce.Got) != 64 {
				t.Fatalf("error %v (%T): want *ChecksumError for shard-002.bin", err, err)
			}
			for _, s := range []string{"shard-002.bin", ce.Want, ce.Got, "re-run tools/convert", "download"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		}},
		{"truncated shard", func(f map[string][]byte, _ *weights.Manifest) { f["shard-001.bin"] = f["shard-001.bin"][:100] }, wantShard("shard-001.bin", "truncated")},
		{"long shard", func(f map[string][]byte, _ *weights.Manifest) { f["shard-000.bin"] = append(f["shard-000.bin"], 0) }, wantShard("shard-000.bin", "longer")},
		{"offset out of range", func(_ map[string][]byte, m *weights.Manifest) { m.Tensors[1].Offset = 4096 }, wantFormat("outside shard")},
		{"misaligned offset", func(_ map[string][]byte, m *weights.Manifest) { m.Tensors[1].Offset = 2 }, wantFormat("not a multiple of 64")},
		{"length mismatch", func(_ map[string][]byte, m *weights.Manifest) { m.Tensors[1].Length -= 2 }, wantFormat("length is")},
		{"unknown dtype", func(_ map[string][]byte, m *weights.Manifest) { m.Tensors[0].DType = "bf16" }, wantFormat(`unknown dtype "bf16"`)},
		{"bad shard index", func(_ map[string][]byte, m *weights.Manifest) { m.Tensors[0].Shard = 99 }, wantFormat("in shard 99")},
		{"bad sha256", func(_ map[string][]byte, m *weights.Manifest) {
			m.Shards[0].SHA256 = strings.ToUpper(m.Shards[0].SHA256)
		}, wantFormat("lowercase hex")},
		{"shard path", func(_ map[string][]byte, m *weights.Manifest) { m.Shards[0].File = "../x.bin" }, wantFormat("invalid file name")},
		{"absurd shape", func(_ map[string][]byte, m *weights.Manifest) {
			m.Tensors[0].Shape = []int{1 << 20, 1 << 20}
			m.Tensors[0].Length = 2 << 40
		}, wantFormat("more than")},
		{"conv weight shape", func(_ map[string][]byte, m *weights.Manifest) {
			m.Tensors[0].Shape = []int{4, 3, 1, 9} // same length, wrong kernel
		}, wantFormat("want [OutC 3 3 3]")},
		{"out_shape mismatch", func(_ map[string][]byte, m *weights.Manifest) { m.Ops[1].OutShape = [3]int{4, 3, 3} }, wantFormat("computes [4 4 4]")},
		{"undefined input", func(_ map[string][]byte, m *weights.Manifest) { m.Ops[0].Inputs = []string{"fc"} }, wantFormat(`reads blob "fc" before`)},
		{"unknown op", func(_ map[string][]byte, m *weights.Manifest) { m.Ops[3].Type = "lrn" }, wantFormat(`unknown op type "lrn"`)},
		{"missing weight", func(_ map[string][]byte, m *weights.Manifest) { m.Ops[2].Weight = "nope" }, wantFormat(`weight "nope" is not in tensors`)},
		{"labels count", func(_ map[string][]byte, m *weights.Manifest) { m.Labels = m.Labels[:4] }, wantFormat("4 labels for 5 classes")},
		{"output undefined", func(_ map[string][]byte, m *weights.Manifest) { m.Output = "nothing" }, wantFormat(`output blob "nothing"`)},
		{"mean shape", func(_ map[string][]byte, m *weights.Manifest) { m.Input.Height, m.Input.Width = 4, 4 }, wantFormat("mean_tensor")},
		{"channel order", func(_ map[string][]byte, m *weights.Manifest) { m.Preprocess.ChannelOrder = "GRAY" }, wantFormat("channel_order")},
		{"pool mode", func(_ map[string][]byte, m *weights.Manifest) { m.Ops[1].Pool = "stochastic" }, wantFormat(`pool "stochastic"`)},
		{"zero stride", func(_ map[string][]byte, m *weights.Manifest) { m.Ops[0].Stride = [2]int{0, 1} }, wantFormat("out of range")},
	}
	for _, tc := range cases {
		for _, mode := range []string{"ReadFileFS", "OpenOnly"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				f := files(t, smallModel(t))
				var m weights.Manifest
				if err := json.Unmarshal(f["manifest.json"], &m); err != nil {
					t.Fatal(err)
				}
				before := string(f["manifest.json"])
				tc.edit(f, &m)
				if string(f["manifest.json"]) == before {
					js, err := json.Marshal(&m)
					if err != nil {
						t.Fatal(err)
					}
					f["manifest.json"] = js
				}
				var fsys fs.FS = mapFS(f)
				if mode == "OpenOnly" {
					fsys = openOnly{fsys}
				}
				w, err := weights.Read(fsys, weights.ReadOptions{})
				if err == nil {
					t.Fatalf("Read accepted a broken model (%d tensors)", len(w.Manifest.Tensors))
				}
				tc.check(t, err)
			})
		}
	}
}

// TestPoolShapes checks the pooling output size against Caffe's formula for a
// few hand-computed cases (ceil, floor, the padding clip).
func TestPoolShapes(t *testing.T) {
	for _, tc := range []struct {
		in, k, s, p int
		round       string
		want        int
	}{
		{112, 3, 2, 0, "ceil", 56},  // ResNet pool1: ceil(109/2)+1 = 56
		{112, 3, 2, 0, "floor", 55}, // floor(109/2)+1
		{7, 7, 1, 0, "ceil", 1},
		{6, 3, 2, 1, "ceil", 4},  // ceil(5/2)+1 = 4; last window starts at 6 = in+pad-1: kept
		{5, 2, 2, 1, "ceil", 3},  // ceil(5/2)+1 = 4, but window 3 starts at 6 >= 5+1: clipped to 3
		{5, 2, 2, 1, "floor", 3}, // floor(5/2)+1 = 3
	} {
		b := weightstest.New("p", 1, tc.in, tc.in, 1)
		b.Op(weights.Op{Type: weights.OpPool, Inputs: []string{"data"}, Output: "pool", Pool: "ave", RoundMode: tc.round,
			Kernel: [2]int{tc.k, tc.k}, Stride: [2]int{tc.s, tc.s}, Pad: [2]int{tc.p, tc.p}})
		f, err := b.Files()
		if err != nil {
			t.Fatal(err)
		}
		m, err := weights.ParseManifest(f["manifest.json"])
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Ops[0].OutShape; got != [3]int{1, tc.want, tc.want} {
			t.Errorf("in %d k %d s %d p %d %s: out %v, want %d", tc.in, tc.k, tc.s, tc.p, tc.round, got, tc.want)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	b := weightstest.New("fuzz", 3, 8, 8, 1)
	b.Conv("data", "conv1", 3, 2, 3, 2, 1, true, 1)
	b.Op(weights.Op{Type: weights.OpPool, Inputs: []string{"conv1"}, Output: "pool", Pool: "ave", RoundMode: "ceil", Global: true,
		Kernel: [2]int{4, 4}, Stride: [2]int{1, 1}})
	b.Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"pool"}, Output: "prob"})
	fs, err := b.Files()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fs["manifest.json"])
	f.Add([]byte(`{"format":"residual-weights","version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := weights.ParseManifest(data)
		if err != nil {
			var fe *weights.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			return
		}
		_ = m.Classes()
	})
}

// recordingFS is a ReadFileFS that remembers the slices it handed out.
type recordingFS struct {
	fstest.MapFS
	handed map[string][]byte
}

func (r *recordingFS) ReadFile(name string) ([]byte, error) {
	b, err := r.MapFS.ReadFile(name)
	r.handed[name] = b
	return b, err
}

// TestNoCopy: with a ReadFileFS, tensors are views into the very slices
// ReadFile returned.
func TestNoCopy(t *testing.T) {
	fsys := &recordingFS{MapFS: mapFS(files(t, smallModel(t))), handed: map[string][]byte{}}
	w, err := weights.Read(fsys, weights.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range w.Manifest.Tensors {
		shard := fsys.handed[w.Manifest.Shards[tn.Shard].File]
		got := w.Bytes(tn.Name)
		if uintptr(unsafe.Pointer(&shard[0]))%4 != 0 {
			// A tiny shard from Go's tiny allocator may be only 2-byte
			// aligned: float32 views need 4, so Read copies it.
			if &got[0] == &shard[tn.Offset] || !bytes.Equal(got, shard[tn.Offset:tn.Offset+tn.Length]) {
				t.Errorf("tensor %s: misaligned shard not copied faithfully", tn.Name)
			}
			continue
		}
		if &got[0] != &shard[tn.Offset] {
			t.Errorf("tensor %s is not a view into the ReadFile slice of its shard", tn.Name)
		}
	}
}

// oddFS hands out every file at an odd address, as a careless fs could.
type oddFS struct{ fstest.MapFS }

func (o oddFS) ReadFile(name string) ([]byte, error) {
	b, err := o.MapFS.ReadFile(name)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, len(b)+1)
	copy(buf[1:], b)
	return buf[1:], nil
}

// TestMisalignedStorage: Read re-aligns storage that views cannot use, and
// the values stay the same.
func TestMisalignedStorage(t *testing.T) {
	f := files(t, smallModel(t))
	want, err := weights.Read(mapFS(f), weights.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := weights.Read(oddFS{mapFS(f)}, weights.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range want.Manifest.Tensors {
		g := got.Bytes(tn.Name)
		if uintptr(unsafe.Pointer(&g[0]))%4 != 0 || !bytes.Equal(g, want.Bytes(tn.Name)) {
			t.Errorf("tensor %s: misaligned or changed", tn.Name)
		}
	}
	if m, w := got.F32("mean"), want.F32("mean"); len(m) != len(w) || m[17] != w[17] {
		t.Error("float32 view differs")
	}
}

// digestFS is a MapFS that claims the SHA-256 of the files in sums.
type digestFS struct {
	fstest.MapFS
	sums  map[string][sha256.Size]byte
	asked map[string]bool
}

func (d *digestFS) SHA256(name string) ([sha256.Size]byte, bool) {
	d.asked[name] = true
	sum, ok := d.sums[name]
	return sum, ok
}

// TestDigestFS: a DigestFS's digests are compared with the manifest instead
// of hashing the shards; the size is still checked, and a shard without a
// digest is hashed as usual.
func TestDigestFS(t *testing.T) {
	f := files(t, smallModel(t))
	m, err := weights.ParseManifest(f[weights.ManifestFile])
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Shards) < 2 {
		t.Fatalf("the model has %d shards, the test needs 2", len(m.Shards))
	}
	first, second := m.Shards[0].File, m.Shards[1].File
	manifestSum := func(name string) [sha256.Size]byte {
		for _, s := range m.Shards {
			if s.File == name {
				var sum [sha256.Size]byte
				if _, err := hex.Decode(sum[:], []byte(s.SHA256)); err != nil {
					t.Fatal(err)
				}
				return sum
			}
		}
		t.Fatalf("no shard %s", name)
		return [sha256.Size]byte{}
	}
	flipped := func(name string) fstest.MapFS {
		fsys := mapFS(f)
		b := bytes.Clone(f[name])
		b[len(b)/2] ^= 0x10
		fsys[name] = &fstest.MapFile{Data: b}
		return fsys
	}
	for _, tc := range []struct {
		name    string
		fsys    fstest.MapFS
		sums    map[string][sha256.Size]byte
		wantErr string // "" for success
	}{
		// The digest stands for the bytes: Read does not hash them again,
		// so bytes that differ from it are not noticed (the file system
		// vouches for them; see DigestFS).
		{"digests trusted", flipped(first), map[string][sha256.Size]byte{first: manifestSum(first)}, ""},
		{"wrong digest refused", mapFS(f), map[string][sha256.Size]byte{first: sha256.Sum256([]byte("other"))}, "sha256"},
		{"no digest: hashed", flipped(second), map[string][sha256.Size]byte{first: manifestSum(first)}, "sha256"},
		{"size still checked", func() fstest.MapFS {
			fsys := mapFS(f)
			fsys[first] = &fstest.MapFile{Data: f[first][:len(f[first])-1]}
			return fsys
		}(), map[string][sha256.Size]byte{first: manifestSum(first)}, "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &digestFS{MapFS: tc.fsys, sums: tc.sums, asked: map[string]bool{}}
			var last, total int64
			w, err := weights.Read(d, weights.ReadOptions{Progress: func(done, all int64) { last, total = done, all }})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if w.Manifest.Model != m.Model || last != total {
					t.Errorf("model %q, progress %d of %d", w.Manifest.Model, last, total)
				}
				for _, s := range m.Shards {
					if !d.asked[s.File] {
						t.Errorf("Read never asked for the digest of %s", s.File)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if strings.Contains(tc.wantErr, "sha256") {
				var ce *weights.ChecksumError
				if !errors.As(err, &ce) {
					t.Errorf("error %T, want *weights.ChecksumError", err)
				}
			}
		})
	}
}
