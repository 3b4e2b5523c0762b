// Package testfiles finds the files tests read from the repository: the
// photos and Caffe files under testdata/, the prototxts and labels under
// weights/. It is the one place that knows where the repository's root is, so
// a test in any package (natively or as js/wasm under node) names a file by
// its path from the root; the benchmark driver (tools/bench) uses it too.
// Nothing here reads anything outside the repository.
//
// A package's own testdata/ directory (fuzz seeds, golden files) is read by
// its tests with a relative path, as the go command intends; this package is
// for the files several packages share.
package testfiles

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// Root is the repository root: two directories above this source file.
func Root() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("testfiles: no caller information (built with -trimpath?)")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Path returns the absolute path of rel (slash-separated, from the
// repository root) and fails the test if it does not exist.
func Path(tb testing.TB, rel string) string {
	tb.Helper()
	p := filepath.Join(Root(), filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("test file %s is missing from the repository: %v", rel, err)
	}
	return p
}

// Read returns the contents of rel (see Path).
func Read(tb testing.TB, rel string) []byte {
	tb.Helper()
	b, err := os.ReadFile(Path(tb, rel))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// The files tests use, by what they are.
const (
	LeNetPrototxt   = "testdata/caffe/lenet/lenet.prototxt"
	LeNetCaffemodel = "testdata/caffe/lenet/lenet_iter_10000.caffemodel"
	MeanCatsDogs    = "testdata/caffe/mean-227-cats-dogs.binaryproto"
	Labels          = "weights/synset_words.txt"
	Photos          = "testdata/photos"
)

// Prototxt is the path from the root of an official ResNet deploy prototxt,
// by file name ("ResNet-50-deploy.prototxt").
func Prototxt(name string) string { return "weights/prototxt/" + name }

// Caffe returns the path of a real Caffe file by its file name: the official
// ResNet deploy prototxts ("ResNet-50-deploy.prototxt"), the labels
// ("synset_words.txt"), and the files Caffe wrote under testdata/caffe
// ("lenet/lenet.prototxt", "mean-227-cats-dogs.binaryproto").
func Caffe(tb testing.TB, name string) string {
	tb.Helper()
	switch {
	case name == "synset_words.txt":
		return Path(tb, Labels)
	case strings.HasPrefix(name, "ResNet-") && strings.HasSuffix(name, "-deploy.prototxt"):
		return Path(tb, Prototxt(name))
	}
	return Path(tb, "testdata/caffe/"+name)
}

// Photo returns the path of one photograph of testdata/photos by file name
// (testdata/photos/README.md says where each comes from).
func Photo(tb testing.TB, name string) string {
	tb.Helper()
	return Path(tb, Photos+"/"+name)
}

// PhotoPaths lists the photographs of testdata/photos (the files with an
// image extension, not the README), sorted by name, as absolute paths.
func PhotoPaths() ([]string, error) {
	dir := filepath.Join(Root(), filepath.FromSlash(Photos))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff":
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no photographs in %s", dir)
	}
	slices.Sort(paths)
	return paths, nil
}

// AllPhotos is PhotoPaths for a test: a missing or empty directory fails it.
func AllPhotos(tb testing.TB) []string {
	tb.Helper()
	paths, err := PhotoPaths()
	if err != nil {
		tb.Fatalf("test photographs: %v", err)
	}
	return paths
}
