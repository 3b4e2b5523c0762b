package weights_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/residual-go/residual/core/weights"
)

// countingFS counts the files opened (whatever the method).
type countingFS struct {
	fs.FS
	opened map[string]int
}

func (c *countingFS) Open(name string) (fs.File, error) {
	c.opened[name]++
	return c.FS.Open(name)
}

// TestReadPart: a partial read keeps exactly the bytes of the tensors asked
// for, equal to a full read's, opens only the shards that hold them, and
// holds less; chunks smaller than the tensors and not aligned with them
// exercise every way a tensor can straddle chunks.
func TestReadPart(t *testing.T) {
	b := smallModel(t)
	f := files(t, b)
	full, err := weights.Read(mapFS(f), weights.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := full.Manifest
	var subsets [][]string
	for i := range m.Tensors {
		subsets = append(subsets, []string{m.Tensors[i].Name})
	}
	subsets = append(subsets, []string{m.Tensors[0].Name, m.Tensors[len(m.Tensors)-1].Name, m.Tensors[0].Name})
	var all []string
	for i := range m.Tensors {
		all = append(all, m.Tensors[i].Name)
	}
	subsets = append(subsets, all, []string{})
	for _, chunk := range []int{1 << 20, 100, 64, 7} {
		restore := weights.SetHashChunk(chunk)
		for _, names := range subsets {
			t.Run(fmt.Sprintf("chunk%d/%s", chunk, strings.Join(names, "+")), func(t *testing.T) {
				fsys := &countingFS{FS: mapFS(f), opened: map[string]int{}}
				var last, total int64
				w, err := weights.Read(fsys, weights.ReadOptions{Tensors: names, Progress: func(done, tot int64) { last, total = done, tot }})
				if err != nil {
					t.Fatal(err)
				}
				if !w.Partial() || w.Shards() != nil {
					t.Error("a partial read reports itself as full")
				}
				want := map[string]bool{}
				shards := map[string]bool{}
				var kept int64
				for _, n := range names {
					want[n] = true
				}
				for i := range m.Tensors {
					tt := &m.Tensors[i]
					got := w.Bytes(tt.Name)
					if !want[tt.Name] {
						if got != nil {
							t.Errorf("%s: kept though not asked for", tt.Name)
						}
						continue
					}
					shards[m.Shards[tt.Shard].File] = true
					kept += tt.Length
					if !bytes.Equal(got, full.Bytes(tt.Name)) {
						t.Errorf("%s: bytes differ from a full read", tt.Name)
					}
					if tt.DType == weights.DTypeF16 && len(w.F16(tt.Name)) != int(tt.Elements()) {
						t.Errorf("%s: F16 view of %d values", tt.Name, len(w.F16(tt.Name)))
					}
				}
				var read int64
				for _, s := range m.Shards {
					n := fsys.opened[s.File]
					if shards[s.File] != (n == 1) || n > 1 {
						t.Errorf("%s opened %d times; holds a kept tensor: %v", s.File, n, shards[s.File])
					}
					if n > 0 {
						read += s.Size
					}
				}
				if last != total || total != read {
					t.Errorf("progress ended at %d of %d; the shards read hold %d bytes", last, total, read)
				}
				if w.ShardBytes() < kept || w.ShardBytes() > kept+int64(len(names))*weights.Alignment {
					t.Errorf("holds %d bytes for %d bytes of tensors", w.ShardBytes(), kept)
				}
				w.Release()
				if len(names) > 0 && w.Bytes(names[0]) != nil {
					t.Error("Bytes after Release")
				}
			})
		}
		restore()
	}
}

// TestReadPartCorrupt: a partial read verifies each shard it reads whole,
// also the bytes it does not keep; a shard it does not need may be broken.
func TestReadPartCorrupt(t *testing.T) {
	defer weights.SetHashChunk(100)()
	b := smallModel(t)
	f := files(t, b)
	full, err := weights.Read(mapFS(f), weights.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := full.Manifest
	// The last tensor of the first shard holding two or more.
	var name string
	var shard int
	for i := range m.Tensors {
		if i > 0 && m.Tensors[i].Shard == m.Tensors[i-1].Shard {
			name, shard = m.Tensors[i].Name, m.Tensors[i].Shard
			break
		}
	}
	if name == "" {
		t.Fatal("no shard holds two tensors")
	}
	file := m.Shards[shard].File
	other := m.Shards[(shard+1)%len(m.Shards)].File
	for _, tc := range []struct {
		name  string
		edit  func(f map[string][]byte)
		names []string
		check func(*testing.T, error)
	}{
		{"flipped byte outside the kept tensor", func(f map[string][]byte) { f[file][0] ^= 1 }, []string{name}, func(t *testing.T, err error) {
			var ce *weights.ChecksumError
			if !errors.As(err, &ce) || ce.Shard != file {
				t.Fatalf("error %v (%T): want *ChecksumError for %s", err, err, file)
			}
		}},
		{"truncated", func(f map[string][]byte) { f[file] = f[file][:len(f[file])-1] }, []string{name}, wantShard(file, "truncated")},
		{"longer", func(f map[string][]byte) { f[file] = append(f[file], 0) }, []string{name}, wantShard(file, "longer")},
		{"missing", func(f map[string][]byte) { delete(f, file) }, []string{name}, wantShard(file, "missing")},
		{"unknown tensor", func(map[string][]byte) {}, []string{"nosuch"}, wantFormat(`tensor "nosuch" is not in the manifest`)},
		{"a broken shard that is not needed", func(f map[string][]byte) { f[other][0] ^= 1 }, []string{name}, nil},
	} {
		for _, mode := range []string{"ReadFileFS", "OpenOnly"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				g := map[string][]byte{}
				for k, v := range f {
					g[k] = bytes.Clone(v)
				}
				tc.edit(g)
				var fsys fs.FS = mapFS(g)
				if mode == "OpenOnly" {
					fsys = openOnly{fsys}
				}
				w, err := weights.Read(fsys, weights.ReadOptions{Tensors: tc.names})
				if tc.check == nil {
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(w.Bytes(name), full.Bytes(name)) {
						t.Error("kept bytes differ")
					}
					return
				}
				if err == nil {
					t.Fatal("a broken shard was accepted")
				}
				tc.check(t, err)
			})
		}
	}
}
