package weights

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"unsafe"
)

// maxManifestSize bounds manifest.json (ResNet-152's is well under 1 MiB).
const maxManifestSize = 64 << 20

// hashChunk is how many bytes are hashed between progress reports.
const hashChunk = 1 << 20

// ParseManifest decodes manifest.json strictly (unknown fields are errors) and
// validates it (see Manifest.Validate). Any problem is a *FormatError.
func ParseManifest(data []byte) (*Manifest, error) {
	// The name and version first, so that a manifest of another version is
	// reported as such and not as an unknown field.
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, &FormatError{File: ManifestFile, Msg: "not valid JSON", Err: err}
	}
	if head.Format != FormatName {
		return nil, formatErr("format is %q, want %q: this is not a residual model manifest", head.Format, FormatName)
	}
	if head.Version != FormatVersion {
		return nil, formatErr("format version is %d, this reader knows version %d", head.Version, FormatVersion)
	}
	m := new(Manifest)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return nil, &FormatError{File: ManifestFile, Msg: "does not match the format", Err: err}
	}
	if dec.More() {
		return nil, formatErr("trailing data after the JSON object")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// ReadManifest reads and validates manifest.json at the root of fsys.
func ReadManifest(fsys fs.FS) (*Manifest, error) {
	f, err := fsys.Open(ManifestFile)
	if err != nil {
		return nil, &FormatError{File: ManifestFile, Msg: "cannot open", Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, &FormatError{File: ManifestFile, Msg: "cannot read", Err: err}
	}
	if len(data) > maxManifestSize {
		return nil, formatErr("larger than %d bytes", maxManifestSize)
	}
	return ParseManifest(data)
}

// ReadOptions configure Read.
type ReadOptions struct {
	// Progress, if set, is called after each verified chunk (about 1 MiB) with
	// the bytes verified so far and the total size of all shards.
	Progress func(done, total int64)
}

// DigestFS is an fs.ReadFileFS that may already know the SHA-256 of some of
// its files: wasm/browser's loader, whose shards the browser hashed with
// WebCrypto (crypto.subtle.digest, native code) right where they lie in
// memory. For such a shard Read compares the given digest with the
// manifest's instead of hashing the bytes again; the size check, the
// comparison and every format check stay here. By implementing SHA256, a
// file system vouches that the digest is of exactly the bytes its ReadFile
// returns: the trust model is that the code computing the digest is as
// trusted as the code handing over the bytes (see web/README.md).
type DigestFS interface {
	fs.ReadFileFS
	// SHA256 returns the SHA-256 of the bytes ReadFile(name) returns, and
	// whether it is known. Read hashes the files it is not known for.
	SHA256(name string) (sum [sha256.Size]byte, ok bool)
}

// Weights is a loaded model: its manifest and the bytes of every shard,
// verified against their sha256. Tensors are views into the shard bytes.
type Weights struct {
	Manifest *Manifest
	shards   [][]byte
	tensors  map[string]*Tensor
}

// Read loads the model whose manifest.json is at the root of fsys and reads
// every shard, verifying its size and sha256 while reading. When fsys
// implements fs.ReadFileFS, the slices its ReadFile returns become the storage
// (no copy, unless a slice is not 4-byte aligned); otherwise each shard is read
// into one slice of its size. When fsys is a DigestFS that knows a shard's
// SHA-256, that digest is compared with the manifest instead of one computed
// here.
//
// Errors are *FormatError (manifest), *ShardError (missing, unreadable,
// truncated or oversized shard) or *ChecksumError.
func Read(fsys fs.FS, opts ReadOptions) (*Weights, error) {
	m, err := ReadManifest(fsys)
	if err != nil {
		return nil, err
	}
	w := &Weights{Manifest: m, shards: make([][]byte, len(m.Shards)), tensors: make(map[string]*Tensor, len(m.Tensors))}
	for i := range m.Tensors {
		w.tensors[m.Tensors[i].Name] = &m.Tensors[i]
	}
	var total, done int64
	for _, s := range m.Shards {
		total += s.Size
	}
	progress := func(n int64) {
		done += n
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	if opts.Progress != nil {
		opts.Progress(0, total)
	}
	rf, whole := fsys.(fs.ReadFileFS)
	for i, s := range m.Shards {
		var data []byte
		if whole {
			data, err = readWhole(rf, s, progress)
		} else {
			data, err = readChunked(fsys, s, progress)
		}
		if err != nil {
			return nil, err
		}
		w.shards[i] = aligned(data)
	}
	if !littleEndian {
		w.swapToNative()
	}
	return w, nil
}

// readWhole reads a shard with ReadFile, checks its size and hashes it in
// chunks, reporting progress (or takes its digest from a DigestFS).
func readWhole(fsys fs.ReadFileFS, s Shard, progress func(int64)) ([]byte, error) {
	data, err := fsys.ReadFile(s.File)
	if err != nil {
		return nil, shardOpenErr(s, err)
	}
	if err := checkSize(s, int64(len(data))); err != nil {
		return nil, err
	}
	if d, ok := fsys.(DigestFS); ok {
		if sum, ok := d.SHA256(s.File); ok {
			if err := checkSum(s, sum[:]); err != nil {
				return nil, err
			}
			progress(int64(len(data)))
			return data, nil
		}
	}
	if err := verify(s, data, progress); err != nil {
		return nil, err
	}
	return data, nil
}

// verify hashes data in chunks, reporting progress, and compares with the manifest.
func verify(s Shard, data []byte, progress func(int64)) error {
	h := sha256.New()
	for off := 0; off < len(data); off += hashChunk {
		end := min(off+hashChunk, len(data))
		h.Write(data[off:end])
		progress(int64(end - off))
	}
	return checkSum(s, h.Sum(nil))
}

// readChunked reads a shard through Open into one slice of the manifest's size,
// hashing each chunk as it arrives.
func readChunked(fsys fs.FS, s Shard, progress func(int64)) ([]byte, error) {
	f, err := fsys.Open(s.File)
	if err != nil {
		return nil, shardOpenErr(s, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		if err := checkSize(s, st.Size()); err != nil {
			return nil, err
		}
	}
	data := make([]byte, s.Size)
	h := sha256.New()
	for off := 0; off < len(data); {
		end := min(off+hashChunk, len(data))
		n, err := io.ReadFull(f, data[off:end])
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, &ShardError{Shard: s.File, Msg: fmt.Sprintf("truncated: %d bytes, %s says %d", off+n, ManifestFile, s.Size)}
		}
		if err != nil {
			return nil, &ShardError{Shard: s.File, Msg: "read failed", Err: err}
		}
		h.Write(data[off:end])
		off = end
		progress(int64(n))
	}
	var one [1]byte
	if n, _ := f.Read(one[:]); n > 0 {
		return nil, &ShardError{Shard: s.File, Msg: fmt.Sprintf("longer than the %d bytes %s says", s.Size, ManifestFile)}
	}
	if err := checkSum(s, h.Sum(nil)); err != nil {
		return nil, err
	}
	return data, nil
}

func shardOpenErr(s Shard, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return &ShardError{Shard: s.File, Msg: "missing", Err: err}
	}
	return &ShardError{Shard: s.File, Msg: "cannot read", Err: err}
}

func checkSize(s Shard, size int64) error {
	switch {
	case size < s.Size:
		return &ShardError{Shard: s.File, Msg: fmt.Sprintf("truncated: %d bytes, %s says %d", size, ManifestFile, s.Size)}
	case size > s.Size:
		return &ShardError{Shard: s.File, Msg: fmt.Sprintf("%d bytes, longer than the %d bytes %s says", size, s.Size, ManifestFile)}
	}
	return nil
}

func checkSum(s Shard, sum []byte) error {
	if got := hex.EncodeToString(sum); got != s.SHA256 {
		return &ChecksumError{Shard: s.File, Want: s.SHA256, Got: got}
	}
	return nil
}

// aligned returns data, or a copy of it in 8-byte aligned storage when data
// is not 4-byte aligned (the alignment float32 views need; offsets within a
// shard are multiples of Alignment). Go's allocator aligns all but the
// tiniest slices, so the copy is the rare case of a shard under 16 bytes or
// a sub-slice handed out by an unusual fs.
func aligned(data []byte) []byte {
	if len(data) == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(data)))%4 == 0 {
		return data
	}
	words := make([]uint64, (len(data)+7)/8)
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), len(data))
	copy(b, data)
	return b
}

// littleEndian is whether this machine's byte order matches the shards'
// (amd64, arm64 and wasm: yes).
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// swapToNative byte-swaps every tensor in place on a big-endian machine, so
// that the typed views below read the right values.
func (w *Weights) swapToNative() {
	for i := range w.Manifest.Tensors {
		t := &w.Manifest.Tensors[i]
		b := w.shards[t.Shard][t.Offset : t.Offset+t.Length]
		size := DTypeSize(t.DType)
		for j := 0; j+size <= len(b); j += size {
			for k := range size / 2 {
				b[j+k], b[j+size-1-k] = b[j+size-1-k], b[j+k]
			}
		}
	}
}

// Tensor returns the manifest entry of the named tensor, or nil.
func (w *Weights) Tensor(name string) *Tensor { return w.tensors[name] }

// Bytes returns the stored bytes of the named tensor (little-endian f16 or f32
// values as in the shard), a view into the shard: do not modify. It is nil
// after Release or for an unknown name.
func (w *Weights) Bytes(name string) []byte {
	t := w.tensors[name]
	if t == nil || w.shards == nil {
		return nil
	}
	return w.shards[t.Shard][t.Offset : t.Offset+t.Length : t.Offset+t.Length]
}

// F16 returns the named float16 tensor as raw binary16 values, a view into the
// shard (do not modify); nil if the tensor is unknown, not f16, or released.
func (w *Weights) F16(name string) []uint16 {
	t := w.tensors[name]
	b := w.Bytes(name)
	if b == nil || t.DType != DTypeF16 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/2)
}

// F32 returns the named float32 tensor, a view into the shard (do not
// modify); nil if the tensor is unknown, not f32, or released.
func (w *Weights) F32(name string) []float32 {
	t := w.tensors[name]
	b := w.Bytes(name)
	if b == nil || t.DType != DTypeF32 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

// Shards returns the verified bytes of every shard, in manifest order (nil
// after Release). A backend that uploads the weights elsewhere (a GPU) can
// take them from here; do not modify them.
func (w *Weights) Shards() [][]byte { return w.shards }

// ShardBytes is the total size of the shards held in memory (0 after Release).
func (w *Weights) ShardBytes() int64 {
	var n int64
	for _, s := range w.shards {
		n += int64(len(s))
	}
	return n
}

// Release drops this value's references to the shard bytes, so that they can
// be garbage collected once no view into them is left (the float32 weight
// mode, having widened every tensor, keeps only the views it needs).
// Afterwards Bytes, F16 and F32 return nil.
func (w *Weights) Release() { w.shards = nil }
