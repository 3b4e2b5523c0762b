//go:build !(js && wasm)

package e2e

// Golden reference outputs. A float64 pass of ResNet-152 takes about 20 s of
// CPU and all 22 passes the tests need about 80 s on two cores, so the
// reference's outputs are committed under testdata/golden, one file per model
// and image, and the tests read them instead of recomputing. `go test ./e2e -update`
// runs the reference and rewrites them.
//
// Each file records digests of everything that produced it: the converted
// model's executable content (input, ops, tensor table, shard sizes and
// sha256s: the generated weights exactly), the reference implementation's
// source files (tools/convert/caffe/reference), and the exact float64 input
// tensors. The test computes the same digests from the model it just
// generated and converted and from the inputs it just preprocessed; if any
// differs, the file is stale and the test FAILS, saying which part changed
// and how to regenerate. It never recomputes silently: a golden file that
// quietly followed the code would no longer test anything.
//
// File format (testdata/golden/README.md): one line of JSON (goldenHeader),
// then for each input, for each blob in the header's order, Len
// little-endian float64 values.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/internal/testfiles"
)

var update = flag.Bool("update", false, "run the float64 reference and rewrite the golden files in testdata/golden (minutes)")

// goldenDir holds the golden files, relative to this package's directory.
const goldenDir = "testdata/golden"

// regenerate is what a missing or stale golden file asks for.
const regenerate = "make golden   (that is: GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd go test ./e2e -run TestEndToEnd -update)"

// referenceSources is the package whose source files the golden files' digest covers.
const referenceSources = "tools/convert/caffe/reference"

// goldenHeader is the first line of a golden file.
type goldenHeader struct {
	Model     string       `json:"model"`     // modelDigest of the converted model
	Reference string       `json:"reference"` // referenceDigest of the reference's sources
	Inputs    string       `json:"inputs"`    // inputsDigest of the inputs
	N         int          `json:"n"`         // number of inputs
	Blobs     []goldenBlob `json:"blobs"`     // stored per input, in this order
	GOARCH    string       `json:"goarch"`    // where the file was made (see staleness)
}

type goldenBlob struct {
	Name string `json:"name"`
	Len  int    `json:"len"`
}

// goldenCase is one golden file: the reference outputs of a list of inputs.
type goldenCase struct {
	file   string // under goldenDir, slash-separated: "ResNet-50/video-001.jpeg.f64"
	inputs [][]float64
}

// modelDigest is the sha256 of what the reference computes from: the input
// shape, the ops, the tensor table and the shards (their sizes and sha256s pin
// every weight). Display fields (name, labels, source, converter version) are
// left out: they do not change a single output value.
func modelDigest(m *weights.Manifest) string {
	b, err := json.Marshal(struct {
		Input   weights.Input    `json:"input"`
		Output  string           `json:"output"`
		Ops     []weights.Op     `json:"ops"`
		Tensors []weights.Tensor `json:"tensors"`
		Shards  []weights.Shard  `json:"shards"`
	}{m.Input, m.Output, m.Ops, m.Tensors, m.Shards})
	if err != nil {
		panic(err) // plain structs of numbers and strings
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// referenceDigest is the sha256 of the reference implementation's Go source
// files (not its tests): a change there makes every golden file stale, since
// the golden files are that code's output.
var referenceDigest = sync.OnceValues(func() (string, error) {
	dir := filepath.Join(testfiles.Root(), filepath.FromSlash(referenceSources))
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return "", err
	}
	slices.Sort(files)
	h := sha256.New()
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.Base(f), len(b))
		h.Write(b)
		n++
	}
	if n == 0 {
		return "", fmt.Errorf("no Go files in %s", dir)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
})

// inputsDigest is the sha256 of the inputs' float64 bits.
func inputsDigest(inputs [][]float64) string {
	h := sha256.New()
	var b [8]byte
	for _, in := range inputs {
		binary.LittleEndian.PutUint64(b[:], uint64(len(in)))
		h.Write(b[:])
		for _, v := range in {
			binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
			h.Write(b[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// referenceOutputs returns, for each case and each of its inputs, the named
// blobs of the float64 reference: read from the case's golden file or, with
// -update, computed (all inputs of all cases in parallel) and written.
func (r *refModel) referenceOutputs(t *testing.T, cases []goldenCase, blobs ...string) [][]map[string][]float64 {
	t.Helper()
	return r.derivedOutputs(t, cases, blobs, nil, blobs)
}

// derivedOutputs is referenceOutputs for values computed from the blobs:
// with -update the reference computes the blobs run, derive turns each
// input's blobs into the values named stored, and only those are written
// (nil derive: the blobs themselves). Without -update the stored values
// come from the golden files.
func (r *refModel) derivedOutputs(t *testing.T, cases []goldenCase, run []string,
	derive func(map[string][]float64) map[string][]float64, stored []string) [][]map[string][]float64 {
	t.Helper()
	refDigest, err := referenceDigest()
	if err != nil {
		t.Fatalf("digest of the reference's sources: %v", err)
	}
	model := modelDigest(r.m)
	headers := make([]goldenHeader, len(cases))
	for i, c := range cases {
		headers[i] = goldenHeader{Model: model, Reference: refDigest, Inputs: inputsDigest(c.inputs), N: len(c.inputs), GOARCH: runtime.GOARCH}
		for _, b := range stored {
			headers[i].Blobs = append(headers[i].Blobs, goldenBlob{Name: b})
		}
	}
	out := make([][]map[string][]float64, len(cases))
	if !*update {
		for i, c := range cases {
			out[i] = readGolden(t, c.file, headers[i])
		}
		return out
	}
	var all [][]float64
	for _, c := range cases {
		all = append(all, c.inputs...)
	}
	start := time.Now()
	outs := r.forwardEach(t, all, run...)
	t.Logf("-update: %d float64 reference pass(es) of %s took %v", len(all), r.m.Model, time.Since(start).Round(time.Millisecond))
	if derive != nil {
		for i := range outs {
			outs[i] = derive(outs[i])
		}
	}
	for i, c := range cases {
		out[i], outs = outs[:len(c.inputs)], outs[len(c.inputs):]
		writeGolden(t, c.file, headers[i], out[i])
	}
	return out
}

// readGolden reads a golden file and checks it against want (its lengths
// aside, which come from the file): a missing, malformed or stale file
// fails the test.
func readGolden(t *testing.T, file string, want goldenHeader) []map[string][]float64 {
	t.Helper()
	path := filepath.Join(goldenDir, filepath.FromSlash(file))
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Fatalf("e2e/%s: no golden reference outputs for this case; make them with\n\t%s\nand commit e2e/%s", path, regenerate, goldenDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	line, data, ok := bytes.Cut(b, []byte("\n"))
	var got goldenHeader
	if !ok || json.Unmarshal(line, &got) != nil {
		t.Fatalf("e2e/%s: not a golden file (no JSON header line); regenerate it with\n\t%s", path, regenerate)
	}
	var stale []string
	if got.Model != want.Model {
		stale = append(stale, "the generated and converted model differs (fixture, converter or prototxt changed)")
	}
	if got.Reference != want.Reference {
		stale = append(stale, "the reference implementation ("+referenceSources+") changed")
	}
	if got.Inputs != want.Inputs || got.N != want.N {
		stale = append(stale, "the input tensors differ (test image or preprocessing changed)")
	}
	names := func(h goldenHeader) (s []string) {
		for _, b := range h.Blobs {
			s = append(s, b.Name)
		}
		return s
	}
	if !slices.Equal(names(got), names(want)) {
		stale = append(stale, fmt.Sprintf("the blobs differ (file %v, test %v)", names(got), names(want)))
	}
	if len(stale) > 0 {
		arch := ""
		if got.GOARCH != runtime.GOARCH {
			arch = fmt.Sprintf("\n(the file was made on %s, this is %s: compilers may fuse multiply-adds differently, so a bit of the fixture or the preprocessing can differ between architectures)", got.GOARCH, runtime.GOARCH)
		}
		t.Fatalf("e2e/%s is stale: %s.\nThe reference outputs are never recomputed silently; regenerate them with\n\t%s\nand commit e2e/%s%s",
			path, strings.Join(stale, "; "), regenerate, goldenDir, arch)
	}
	per := 0
	for _, b := range got.Blobs {
		if b.Len <= 0 {
			t.Fatalf("e2e/%s: blob %s has length %d", path, b.Name, b.Len)
		}
		per += b.Len
	}
	if len(data) != 8*per*got.N {
		t.Fatalf("e2e/%s: %d bytes of values, the header describes %d; regenerate it with\n\t%s", path, len(data), 8*per*got.N, regenerate)
	}
	outs := make([]map[string][]float64, got.N)
	for i := range outs {
		outs[i] = map[string][]float64{}
		for _, bl := range got.Blobs {
			v := make([]float64, bl.Len)
			for j := range v {
				v[j] = math.Float64frombits(binary.LittleEndian.Uint64(data))
				data = data[8:]
			}
			outs[i][bl.Name] = v
		}
	}
	return outs
}

// writeGolden writes the outputs with header h (its lengths filled in here),
// leaving a file that already holds exactly these bytes untouched.
func writeGolden(t *testing.T, file string, h goldenHeader, outs []map[string][]float64) {
	t.Helper()
	for i := range h.Blobs {
		h.Blobs[i].Len = len(outs[0][h.Blobs[i].Name])
	}
	head, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.Write(head)
	buf.WriteByte('\n')
	for _, o := range outs {
		for _, bl := range h.Blobs {
			if len(o[bl.Name]) != bl.Len {
				t.Fatalf("%s: blob %s has %d values in one pass and %d in another", file, bl.Name, len(o[bl.Name]), bl.Len)
			}
			for _, v := range o[bl.Name] {
				buf.Write(binary.LittleEndian.AppendUint64(nil, math.Float64bits(v)))
			}
		}
	}
	path := filepath.Join(goldenDir, filepath.FromSlash(file))
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, buf.Bytes()) {
		t.Logf("-update: e2e/%s unchanged", path)
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("-update: wrote e2e/%s (%d bytes)", path, buf.Len())
}
