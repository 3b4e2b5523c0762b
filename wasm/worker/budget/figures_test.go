package budget

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/residual-go/residual/core/preprocess"
	"github.com/residual-go/residual/core/weights"
)

var update = flag.Bool("update", false, "rewrite the memory figures in the READMEs from the code")

// TestMemoryFigures computes the memory figures the READMEs give (which
// models fit in a worker, what each request may use, which images fit
// beside ResNet-50) and checks that wasm/worker/README.md and README.md
// say exactly that; with -update it rewrites them. The figures are the
// worker's, which runs as js/wasm with the simd kernels, whose GEMM panels
// (part of the scratch estimate) are sized for that target: the test runs
// there only (make test-wasm; make worker-memory prints the figures).
// /healthz reports the same estimate (test/admission.test.mjs compares it
// with the table).
func TestMemoryFigures(t *testing.T) {
	if runtime.GOARCH != "wasm" {
		t.Skip("the worker's figures are js/wasm's: make worker-memory")
	}
	base := resnet50Manifest(t)
	type row struct {
		name string
		e    Estimate
	}
	rows := []row{{"ResNet-50", EstimateMemory(base, Default)}}
	// ResNet-101 and -152 have ResNet-50's stage shapes, so its activations
	// and scratch: the estimate swaps in their weights (44.5 M and 60.2 M
	// parameters in float16).
	for _, d := range []struct {
		name   string
		params int64
	}{{"ResNet-101", 44_549_160}, {"ResNet-152", 60_192_808}} {
		m := *base
		m.Shards = nil
		for rest := d.params * 2; rest > 0; rest -= weights.MaxShardSize {
			m.Shards = append(m.Shards, weights.Shard{File: fmt.Sprintf("shard-%03d.bin", len(m.Shards)), Size: min(rest, weights.MaxShardSize)})
		}
		rows = append(rows, row{d.name, EstimateMemory(&m, Default)})
	}

	var table strings.Builder
	fmt.Fprintf(&table, "| model | float16 weights | resident | + one 640x480 JPEG | estimate | in the worker (budget %s) |\n|---|---|---|---|---|---|\n", MB(Default))
	for _, r := range rows {
		fit := fmt.Sprintf("fits; %s free for each request", MB(r.e.Free))
		if r.e.Total > Default {
			fit = "503, with this arithmetic in the error"
		}
		fmt.Fprintf(&table, "| %s | %s | %s | %s | %s | %s |\n", r.name, MB(r.e.Weights), MB(r.e.Resident()), MB(r.e.Request), MB(r.e.Total), fit)
	}
	e := rows[0].e
	fmt.Fprintf(&table, "\nResident: the weights, activations %s, convolution scratch %s, the ten crop tensors %s, the preprocessing scratch kept for small images %s and the Go runtime's %s (the same for the three models).\n",
		MB(e.Activations), MB(e.Scratch), MB(e.Inputs), MB(e.Kept), MB(e.Runtime))

	spec := SpecOf(base)
	var images strings.Builder
	fmt.Fprintf(&images, "| image (beside ResNet-50: %s free) | decoding | preprocessing | need, besides the body | |\n|---|---|---|---|---|\n", MB(e.Free))
	for _, im := range []struct {
		what string
		data []byte
	}{
		{"1000x872 JPEG (baseline 4:2:0)", jpegHeader(1000, 872, false)},
		{"1200x1000 JPEG", jpegHeader(1200, 1000, false)},
		{"1364x1023 JPEG", jpegHeader(1364, 1023, false)},
		{"1920x1080 JPEG", jpegHeader(1920, 1080, false)},
		{"2048x1536 JPEG", jpegHeader(2048, 1536, false)},
		{"1000x872 progressive JPEG", jpegHeader(1000, 872, true)},
		{"1536x1024 PNG (8-bit RGBA)", pngHeader(1536, 1024)},
		{"2046x1023 PNG (8-bit RGBA)", pngHeader(2046, 1023)},
	} {
		h, err := preprocess.ReadHeader(im.data, 0)
		if err != nil {
			t.Fatalf("%s: %v", im.what, err)
		}
		n := RequestNeed(h, 0, spec, 1)
		fit := "fits"
		if n.Total() > e.Free {
			fit = "413"
		}
		fmt.Fprintf(&images, "| %s | %s | %s | %s | %s |\n", im.what, MB(n.Decode), MB(n.Crops), MB(n.Total()), fit)
	}

	r101, r152 := rows[1].e, rows[2].e
	summary := fmt.Sprintf("Which models fit: a Worker isolate has 128 MB. ResNet-50 needs about %s (%s of float16 weights kept as\n"+
		"float16 in wasm memory, activations and preprocessing buffers) and fits, leaving %s to each request. ResNet-101\n"+
		"(%s of weights, about %s in all) and ResNet-152 (%s of weights, about %s) do not: for them the worker\n"+
		"answers `503 {\"error\": \"model resnet101 (...) needs about %s ...\"}` on `/classify` and `/healthz` without\n"+
		"fetching a shard. An image whose decoding would not fit beside the model gets 413 with a hint to downscale it.\n",
		MB(e.Total), MB(e.Weights), MB(e.Free), MB(r101.Weights), MB(r101.Total), MB(r152.Weights), MB(r152.Total), MB(r101.Total))

	t.Logf("models:\n%s\nimages:\n%s\nREADME.md:\n%s", table.String(), images.String(), summary)
	checkFigures(t, filepath.Join("..", "README.md"), "memory-models", table.String())
	checkFigures(t, filepath.Join("..", "README.md"), "memory-images", images.String())
	checkFigures(t, filepath.Join("..", "..", "..", "README.md"), "worker-memory", summary)
}

// resnet50Manifest reads the ResNet-50 manifest the figures are computed
// from: the synthetic model (the released model's shapes and sizes), or
// the converted released one.
func resnet50Manifest(t *testing.T) *weights.Manifest {
	for _, d := range []string{"../../../weights/resnet50-synthetic", "../../../dist/web/models/resnet50-synthetic", "../../../weights/resnet50"} {
		if raw, err := os.ReadFile(filepath.Join(d, "manifest.json")); err == nil {
			m, err := weights.ParseManifest(raw)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Skip("no ResNet-50 manifest: make synthetic (make worker-memory does)")
	return nil
}

// checkFigures compares the text between "<!-- name -->" and
// "<!-- /name -->" in file with want, or with -update writes want there.
func checkFigures(t *testing.T, file, name, want string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	begin, end := "<!-- "+name+" -->\n", "<!-- /"+name+" -->"
	i, j := bytes.Index(raw, []byte(begin)), bytes.Index(raw, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("%s has no %q ... %q section", file, begin, end)
	}
	got := string(raw[i+len(begin) : j])
	if got == want {
		return
	}
	if !*update {
		t.Errorf("%s, section %s, says:\n%s\nthe code computes:\n%s\n(go test ./wasm/worker -run TestMemoryFigures -update rewrites it)", file, name, got, want)
		return
	}
	out := append(append(append([]byte{}, raw[:i+len(begin)]...), want...), raw[j:]...)
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// jpegHeader is the smallest JPEG ReadHeader reads as a w x h 4:2:0 colour
// image: SOI, a JFIF APP0, the frame header, EOI (no pixels).
func jpegHeader(w, h int, progressive bool) []byte {
	b := []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0}
	sof := byte(0xC0)
	if progressive {
		sof = 0xC2
	}
	b = append(b, 0xFF, sof, 0, 17, 8, byte(h>>8), byte(h), byte(w>>8), byte(w), 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1)
	return append(b, 0xFF, 0xD9)
}

// pngHeader is the smallest PNG ReadHeader reads as a w x h 8-bit RGBA
// image: the signature, IHDR and IEND (no pixels).
func pngHeader(w, h int) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
		c := append([]byte(typ), data...)
		b = append(b, c...)
		b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(c))
	}
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	chunk("IHDR", append(ihdr, 8, 6, 0, 0, 0))
	chunk("IEND", nil)
	return b
}
