package jsbridge

import (
	"crypto/sha256"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/residual-go/residual/core/weights"
)

func TestMemFSConforms(t *testing.T) {
	m := NewMemFS()
	if err := m.Add("manifest.json", []byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := m.Alloc("shard-000.bin", 10); err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []string{"0123", "456", "789"} {
		w, err := m.Next("shard-000.bin", len(chunk))
		if err != nil {
			t.Fatal(err)
		}
		copy(w, chunk)
	}
	if err := m.Alloc("empty.bin", 0); err != nil {
		t.Fatal(err)
	}
	// fstest checks that ReadFile returns a copy (it scribbles on the result);
	// MemFS hands out its own bytes on purpose, so test Open/ReadDir without it.
	if err := fstest.TestFS(struct{ fs.FS }{m}, "manifest.json", "shard-000.bin", "empty.bin"); err != nil {
		t.Fatal(err)
	}
	got, err := fs.ReadFile(m, "shard-000.bin")
	if err != nil || string(got) != "0123456789" {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
}

// TestMemFSReadFileNoCopy checks the property core.Open relies on: ReadFile
// hands out the file's own bytes, the very memory Next exposed for filling.
func TestMemFSReadFileNoCopy(t *testing.T) {
	m := NewMemFS()
	if err := m.Alloc("a", 4); err != nil {
		t.Fatal(err)
	}
	w, err := m.Next("a", 4)
	if err != nil {
		t.Fatal(err)
	}
	copy(w, "abcd")
	got, err := m.ReadFile("a")
	if err != nil {
		t.Fatal(err)
	}
	if &got[0] != &w[0] {
		t.Fatal("ReadFile copied the bytes; it must return the filled slice itself")
	}
}

func TestMemFSErrors(t *testing.T) {
	tests := []struct {
		name string
		run  func(m *MemFS) error
		want string // substring of the error; "" means success
	}{
		{"next past size", func(m *MemFS) error {
			_, err := m.Next("s", 5)
			return err
		}, "5 more bytes would exceed its size of 4 bytes (0 already received)"},
		{"next after full", func(m *MemFS) error {
			if _, err := m.Next("s", 4); err != nil {
				return err
			}
			_, err := m.Next("s", 1)
			return err
		}, "(4 already received)"},
		{"negative chunk", func(m *MemFS) error {
			_, err := m.Next("s", -1)
			return err
		}, "would exceed"},
		{"unallocated", func(m *MemFS) error {
			_, err := m.Next("nope", 1)
			return err
		}, "no such file was allocated"},
		{"read partial", func(m *MemFS) error {
			if _, err := m.Next("s", 3); err != nil {
				return err
			}
			_, err := m.ReadFile("s")
			return err
		}, "only 3 of its 4 bytes were received"},
		{"read missing", func(m *MemFS) error {
			_, err := m.ReadFile("missing")
			return err
		}, "file does not exist"},
		{"rewind then refill", func(m *MemFS) error {
			if _, err := m.Next("s", 3); err != nil {
				return err
			}
			if err := m.Rewind("s"); err != nil {
				return err
			}
			if r, _ := m.Remaining("s"); r != 4 {
				return errors.New("Remaining after Rewind is not the full size")
			}
			if _, err := m.Next("s", 4); err != nil {
				return err
			}
			_, err := m.ReadFile("s")
			return err
		}, ""},
		{"directory name", func(m *MemFS) error { return m.Alloc("dir/x", 1) }, "not a plain file name"},
		{"dot dot", func(m *MemFS) error { return m.Add("../x", nil) }, "not a plain file name"},
		{"negative size", func(m *MemFS) error { return m.Alloc("n", -1) }, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMemFS()
			if err := m.Alloc("s", 4); err != nil {
				t.Fatal(err)
			}
			err := tt.run(m)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestMemFSIncompleteErrorIsTyped(t *testing.T) {
	m := NewMemFS()
	if err := m.Alloc("s", 2); err != nil {
		t.Fatal(err)
	}
	_, err := m.Open("s")
	var ie *IncompleteError
	if !errors.As(err, &ie) || ie.Have != 0 || ie.Size != 2 {
		t.Fatalf("Open of a partial file: %v, want *IncompleteError{Have: 0, Size: 2}", err)
	}
}

// TestMemFSDigest: SetSHA256 takes a digest only for a complete file, SHA256
// hands it back (so MemFS is a weights.DigestFS), and refilling the file
// forgets it.
func TestMemFSDigest(t *testing.T) {
	var _ weights.DigestFS = NewMemFS()
	m := NewMemFS()
	if err := m.Alloc("s.bin", 4); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("abcd"))
	w, _ := m.Next("s.bin", 2)
	copy(w, "ab")
	var inc *IncompleteError
	if err := m.SetSHA256("s.bin", sum[:]); !errors.As(err, &inc) {
		t.Fatalf("SetSHA256 on a partial file: %v, want an IncompleteError", err)
	}
	w, _ = m.Next("s.bin", 2)
	copy(w, "cd")
	if err := m.SetSHA256("s.bin", sum[:5]); err == nil || !strings.Contains(err.Error(), "32") {
		t.Fatalf("SetSHA256 with 5 bytes: %v", err)
	}
	if err := m.SetSHA256("nope.bin", sum[:]); err == nil {
		t.Fatal("SetSHA256 on an unknown file succeeded")
	}
	if _, ok := m.SHA256("s.bin"); ok {
		t.Fatal("a digest before SetSHA256 succeeded")
	}
	if err := m.SetSHA256("s.bin", sum[:]); err != nil {
		t.Fatal(err)
	}
	if got, ok := m.SHA256("s.bin"); !ok || got != sum {
		t.Fatalf("SHA256 = %x, %v", got, ok)
	}
	if err := m.Rewind("s.bin"); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.SHA256("s.bin"); ok {
		t.Fatal("the digest survived Rewind")
	}
}
