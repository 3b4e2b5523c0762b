package caffe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The file helpers read the same nets as the reader functions and name the
// path when the content is bad.
func TestFileHelpers(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "net.prototxt")
	if err := os.WriteFile(good, []byte("name: \"n\"\ninput: \"data\"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 2\ninput_dim: 2\nlayer { name: \"r\" type: \"ReLU\" bottom: \"data\" top: \"data\" }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := ParsePrototxtFile(good)
	if err != nil || n.Name != "n" || len(n.Inputs) != 1 || n.Inputs[0].Shape[1] != 3 {
		t.Fatalf("ParsePrototxtFile = %+v, %v", n, err)
	}
	model := filepath.Join(dir, "m.caffemodel")
	f, err := os.Create(model)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteModel(f, n); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if m, err := ReadModelFile(model); err != nil || m.Name != "n" {
		t.Fatalf("ReadModelFile = %+v, %v", m, err)
	}
	for _, tc := range []struct {
		read func(string) (*Net, error)
		path string
	}{
		{ReadModelFile, good},                                // text given as a caffemodel
		{ParsePrototxtFile, model},                           // binary given as text
		{ReadModelFile, filepath.Join(dir, "missing.model")}, // no such file
	} {
		if _, err := tc.read(tc.path); err == nil || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("reading %s: error %v does not name the file", tc.path, err)
		}
	}
}
