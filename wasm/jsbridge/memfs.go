package jsbridge

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
	"time"
)

// MemFS is a flat, in-memory fs.FS for files whose sizes are known before
// their bytes arrive, such as a model's shards streamed from JavaScript: Alloc
// reserves a file's final size once, Next hands out the next window of it to
// copy a chunk into (js.CopyBytesToGo writes straight into the window), and
// ReadFile returns the file's own slice, not a copy, so a consumer such as
// core.Open keeps the bytes without a second allocation.
//
// A file is readable once every byte has arrived; reading a file that is
// still partial is an error that says how many bytes are missing. The SHA-256
// of a complete file may be recorded with SetSHA256 (computed by the
// browser's WebCrypto over the file's bytes in place); MemFS then implements
// weights.DigestFS for it, and core.Open compares that digest with the
// manifest instead of hashing the file in Go.
// MemFS is safe for concurrent use.
type MemFS struct {
	mu    sync.Mutex
	files map[string]*memFile
}

type memFile struct {
	data   []byte
	filled int                // bytes received so far (data[:filled])
	sum    *[sha256.Size]byte // SHA-256 of data once complete, from SetSHA256
}

// NewMemFS returns an empty MemFS.
func NewMemFS() *MemFS { return &MemFS{files: make(map[string]*memFile)} }

func checkFlatName(name string) error {
	if !fs.ValidPath(name) || name == "." || bytes.ContainsRune([]byte(name), '/') {
		return fmt.Errorf("jsbridge: file name %q is not a plain file name (no directories, no ..)", name)
	}
	return nil
}

// Add stores a complete file, taking ownership of data.
func (m *MemFS) Add(name string, data []byte) error {
	if err := checkFlatName(name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[name] = &memFile{data: data, filled: len(data)}
	return nil
}

// Alloc reserves a file of exactly size bytes, to be filled by Next.
// Allocating a name again discards what it held.
func (m *MemFS) Alloc(name string, size int64) error {
	if err := checkFlatName(name); err != nil {
		return err
	}
	if size < 0 || size > int64(maxAlloc) {
		return fmt.Errorf("jsbridge: %s: size %d is out of range (0..%d)", name, size, maxAlloc)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[name] = &memFile{data: make([]byte, size)}
	return nil
}

// maxAlloc bounds one file: js/wasm memory is 32-bit.
const maxAlloc = 1 << 31

// Next returns the window for the next n bytes of name, which the caller must
// fill before the file is read. It fails when the file was never allocated or
// when n bytes would run past the size given to Alloc.
func (m *MemFS) Next(name string, n int) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[name]
	if !ok {
		return nil, fmt.Errorf("jsbridge: %s: no such file was allocated", name)
	}
	if n < 0 || n > len(f.data)-f.filled {
		return nil, fmt.Errorf("jsbridge: %s: %d more bytes would exceed its size of %d bytes (%d already received)",
			name, n, len(f.data), f.filled)
	}
	w := f.data[f.filled : f.filled+n : f.filled+n]
	f.filled += n
	f.sum = nil
	return w, nil
}

// Rewind forgets the bytes received for name so it can be filled again from
// the start (after a failed download, for example).
func (m *MemFS) Rewind(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[name]
	if !ok {
		return fmt.Errorf("jsbridge: %s: no such file was allocated", name)
	}
	f.filled = 0
	f.sum = nil
	return nil
}

// SetSHA256 records sum as the SHA-256 of name's bytes, which must all have
// arrived. The caller vouches for it (see weights.DigestFS): it must be the
// digest of exactly the bytes ReadFile returns. Next and Rewind forget it.
func (m *MemFS) SetSHA256(name string, sum []byte) error {
	if len(sum) != sha256.Size {
		return fmt.Errorf("jsbridge: %s: a SHA-256 digest has %d bytes, not %d", name, sha256.Size, len(sum))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[name]
	if !ok {
		return fmt.Errorf("jsbridge: %s: no such file was allocated", name)
	}
	if f.filled != len(f.data) {
		return &IncompleteError{Name: name, Have: int64(f.filled), Size: int64(len(f.data))}
	}
	f.sum = (*[sha256.Size]byte)(bytes.Clone(sum))
	return nil
}

// SHA256 returns the digest SetSHA256 recorded for name, if any.
func (m *MemFS) SHA256(name string) (sum [sha256.Size]byte, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, found := m.files[name]; found && f.sum != nil {
		return *f.sum, true
	}
	return sum, false
}

// Remaining is the number of bytes name still lacks.
func (m *MemFS) Remaining(name string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[name]
	if !ok {
		return 0, fmt.Errorf("jsbridge: %s: no such file was allocated", name)
	}
	return int64(len(f.data) - f.filled), nil
}

// IncompleteError reports a file read before all its bytes arrived.
type IncompleteError struct {
	Name       string
	Have, Size int64
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("jsbridge: %s: only %d of its %d bytes were received; fetch it again", e.Name, e.Have, e.Size)
}

func (m *MemFS) complete(name string) (*memFile, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if f.filled != len(f.data) {
		return nil, &fs.PathError{Op: "open", Path: name,
			Err: &IncompleteError{Name: name, Have: int64(f.filled), Size: int64(len(f.data))}}
	}
	return f, nil
}

// ReadFile returns the file's bytes themselves, not a copy (unlike what
// fs.ReadFileFS recommends, and on purpose: that is what MemFS is for). The
// caller owns them from then on; do not Rewind or refill that name afterwards.
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	f, err := m.complete(name)
	if err != nil {
		err.(*fs.PathError).Op = "read"
		return nil, err
	}
	return f.data, nil
}

// Open implements fs.FS. "." is the directory of all files.
func (m *MemFS) Open(name string) (fs.File, error) {
	if name == "." {
		m.mu.Lock()
		names := make([]string, 0, len(m.files))
		sizes := make(map[string]int64, len(m.files))
		for n, f := range m.files {
			names = append(names, n)
			sizes[n] = int64(len(f.data))
		}
		m.mu.Unlock()
		slices.Sort(names)
		d := &memDir{}
		for _, n := range names {
			d.entries = append(d.entries, fs.FileInfoToDirEntry(memInfo{name: n, size: sizes[n]}))
		}
		return d, nil
	}
	f, err := m.complete(name)
	if err != nil {
		return nil, err
	}
	return &memOpen{Reader: bytes.NewReader(f.data), info: memInfo{name: name, size: int64(len(f.data))}}, nil
}

type memInfo struct {
	name string
	size int64
	dir  bool
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

type memOpen struct {
	*bytes.Reader
	info memInfo
}

func (f *memOpen) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *memOpen) Close() error               { return nil }

type memDir struct {
	entries []fs.DirEntry
	off     int
}

func (d *memDir) Stat() (fs.FileInfo, error) { return memInfo{name: ".", dir: true}, nil }
func (d *memDir) Close() error               { return nil }
func (d *memDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: ".", Err: fs.ErrInvalid}
}

func (d *memDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	d.off += len(rest)
	return rest, nil
}
