// Package weightstest builds small models in residual's weights format for
// tests: a manifest with hand-written ops plus float16/float32 tensors packed
// into shard files with their sha256, returned as an fstest.MapFS or written
// to a directory. It is independent of the converter, so the reader and the
// executor can be tested on graphs small enough to check by hand.
package weightstest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing/fstest"

	"github.com/x448/float16"

	"github.com/residual-go/residual/core/weights"
)

// Builder accumulates a manifest and tensor data.
type Builder struct {
	// M is the manifest being built; tests may edit it freely (also to break it).
	M weights.Manifest
	// ShardSize is the largest shard in bytes (default weights.MaxShardSize);
	// set it small to spread tensors over several shards.
	ShardSize int64

	data map[string][]byte // tensor name -> little-endian bytes
	rng  *rand.Rand
}

// New starts a model named name with a channels x height x width input blob
// called "data": BGR order for 3 channels (GRAY for 1), no mean, scale 1,
// resize to the larger input side. Random weights come from seed.
func New(name string, channels, height, width int, seed uint64) *Builder {
	order := "BGR"
	if channels == 1 {
		order = "GRAY"
	}
	return &Builder{
		M: weights.Manifest{
			Format:     weights.FormatName,
			Version:    weights.FormatVersion,
			Model:      name,
			Synthetic:  true,
			Input:      weights.Input{Name: "data", Channels: channels, Height: height, Width: width},
			Preprocess: weights.Preprocess{ChannelOrder: order, Resize: max(height, width), Scale: 1},
		},
		data: map[string][]byte{},
		rng:  rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
}

// F16 adds a float16 tensor (vals rounded to nearest even) and returns its name.
func (b *Builder) F16(name string, shape []int, vals []float32) string {
	buf := make([]byte, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint16(buf[2*i:], float16.Fromfloat32(v).Bits())
	}
	return b.add(name, weights.DTypeF16, shape, buf, len(vals))
}

// F32 adds a float32 tensor and returns its name.
func (b *Builder) F32(name string, shape []int, vals []float32) string {
	buf := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	return b.add(name, weights.DTypeF32, shape, buf, len(vals))
}

func (b *Builder) add(name, dtype string, shape []int, buf []byte, n int) string {
	want := 1
	for _, d := range shape {
		want *= d
	}
	if want != n {
		panic(fmt.Sprintf("weightstest: tensor %s: shape %v needs %d values, got %d", name, shape, want, n))
	}
	b.M.Tensors = append(b.M.Tensors, weights.Tensor{Name: name, Shape: append([]int(nil), shape...), DType: dtype, Length: int64(len(buf))})
	b.data[name] = buf
	return name
}

// Random returns n values uniform in [-scale, scale) from the builder's seeded source.
func (b *Builder) Random(n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = (2*b.rng.Float32() - 1) * scale
	}
	return v
}

// RoundF16 rounds v to the nearest float16 value, as F16 stores it.
func RoundF16(v float32) float32 { return float16.Fromfloat32(v).Float32() }

// Op appends op (OutShape may be left zero: Build fills it in).
func (b *Builder) Op(op weights.Op) *Builder {
	if op.Name == "" {
		op.Name = op.Output
	}
	b.M.Ops = append(b.M.Ops, op)
	return b
}

// Conv appends a square convolution with random float16 weights and bias
// (uniform in [-scale, scale)) reading in and writing out.
func (b *Builder) Conv(in, out string, inC, outC, kernel, stride, pad int, relu bool, scale float32) *Builder {
	w := b.F16(out+"/w", []int{outC, inC, kernel, kernel}, b.Random(outC*inC*kernel*kernel, scale))
	bias := b.F16(out+"/b", []int{outC}, b.Random(outC, scale))
	return b.Op(weights.Op{Type: weights.OpConv, Inputs: []string{in}, Output: out, Weight: w, Bias: bias,
		Kernel: [2]int{kernel, kernel}, Stride: [2]int{stride, stride}, Pad: [2]int{pad, pad}, Dilation: [2]int{1, 1}, Group: 1, ReLU: relu})
}

// InnerProduct appends an inner product with random float16 weights and bias.
func (b *Builder) InnerProduct(in, out string, k, n int, relu bool, scale float32) *Builder {
	w := b.F16(out+"/w", []int{n, k}, b.Random(n*k, scale))
	bias := b.F16(out+"/b", []int{n}, b.Random(n, scale))
	return b.Op(weights.Op{Type: weights.OpInnerProduct, Inputs: []string{in}, Output: out, Weight: w, Bias: bias, ReLU: relu})
}

// Labels sets labels "class 0", "class 1", ... for n classes.
func (b *Builder) Labels(n int) *Builder {
	b.M.Labels = make([]string, n)
	for i := range b.M.Labels {
		b.M.Labels[i] = fmt.Sprintf("class %d", i)
	}
	return b
}

// Files packs the tensors into shards (in the order they were added, each at
// an offset aligned to weights.Alignment), fills in op shapes, shard sizes and
// hashes and the output (the last op's, unless set), and returns every file of
// the model directory: manifest.json and shard-000.bin, shard-001.bin, ....
// The manifest is not validated, so tests can build broken ones.
func (b *Builder) Files() (map[string][]byte, error) {
	limit := b.ShardSize
	if limit <= 0 {
		limit = weights.MaxShardSize
	}
	m := b.M
	m.Tensors = append([]weights.Tensor(nil), b.M.Tensors...)
	m.Ops = append([]weights.Op(nil), b.M.Ops...)
	m.Shards = nil
	var shards [][]byte
	for i := range m.Tensors {
		t := &m.Tensors[i]
		data := b.data[t.Name]
		n := len(shards)
		if n == 0 || int64(alignUp(len(shards[n-1]))+len(data)) > limit {
			shards = append(shards, nil)
			n++
		}
		cur := shards[n-1]
		cur = append(cur, make([]byte, alignUp(len(cur))-len(cur))...)
		t.Shard, t.Offset = n-1, int64(len(cur))
		shards[n-1] = append(cur, data...)
	}
	files := map[string][]byte{}
	for i, s := range shards {
		name := fmt.Sprintf("shard-%03d.bin", i)
		sum := sha256.Sum256(s)
		m.Shards = append(m.Shards, weights.Shard{File: name, Size: int64(len(s)), SHA256: hex.EncodeToString(sum[:])})
		files[name] = s
	}
	if err := m.FillOutShapes(); err != nil {
		return nil, err
	}
	if m.Output == "" && len(m.Ops) > 0 {
		m.Output = m.Ops[len(m.Ops)-1].Output
	}
	js, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return nil, err
	}
	files[weights.ManifestFile] = js
	return files, nil
}

func alignUp(n int) int { return (n + weights.Alignment - 1) / weights.Alignment * weights.Alignment }

// MapFS returns the model as an in-memory file system.
func (b *Builder) MapFS() (fstest.MapFS, error) {
	files, err := b.Files()
	if err != nil {
		return nil, err
	}
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: data, Mode: 0o644}
	}
	return fsys, nil
}

// WriteDir writes the model's files into dir (which must exist).
func (b *Builder) WriteDir(dir string) error {
	files, err := b.Files()
	if err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
