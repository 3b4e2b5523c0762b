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

// TestMemoryFigures computes the memory figures the READMEs give (how each
// model is split into stages and what each stage holds, what a request may
// use in the front, which images fit beside ResNet-50's front) and checks
// that wasm/worker/README.md and README.md say exactly that; with -update it
// rewrites them. The figures are the worker's, which runs as js/wasm with
// the simd kernels, whose GEMM panels (part of the scratch estimate) are
// sized for that target: the test runs there only (make worker-memory).
// /healthz reports the same estimates.
func TestMemoryFigures(t *testing.T) {
	if runtime.GOARCH != "wasm" {
		t.Skip("the worker's figures are js/wasm's: make worker-memory")
	}
	type model struct {
		name string
		m    *weights.Manifest
		plan []Estimate
	}
	var models []model
	for _, d := range []struct{ name, dir string }{{"ResNet-50", "resnet50"}, {"ResNet-101", "resnet101"}, {"ResNet-152", "resnet152"}} {
		m := manifest(t, d.dir)
		plan, err := Plan(m, DefaultStage, true)
		if err != nil {
			t.Fatal(err)
		}
		models = append(models, model{d.name, m, plan})
	}

	var table strings.Builder
	fmt.Fprintf(&table, "| model | stage | ops | float16 weights | resident | estimate (budget %s) | free for a request |\n|---|---|---|---|---|---|---|\n", MB(DefaultStage))
	for _, md := range models {
		for k, e := range md.plan {
			name, free := "", ""
			if k == 0 {
				name, free = fmt.Sprintf("%s (%d stages)", md.name, len(md.plan)), MB(e.Free)
			}
			fmt.Fprintf(&table, "| %s | %d | %s .. %s | %s | %s | %s | %s |\n", name, k,
				md.m.Ops[e.First].Name, md.m.Ops[e.End-1].Name, MB(e.Weights), MB(e.Resident()), MB(e.Total), free)
		}
	}
	front := models[0].plan[0]
	fmt.Fprintf(&table, "\nResident: the slice's weights, its activations and scratch, the tensors in (the front: ten crops; a later stage: one item, it runs the batch item by item) and out (ten crops), the Go runtime's %s; the front also keeps the last stage's answer and the preprocessing scratch of small images (%s), and its estimate adds one 640x480 JPEG request (%s).\n",
		MB(front.Runtime), MB(front.Kept), MB(front.Request))

	spec := SpecOf(models[0].m)
	var images strings.Builder
	fmt.Fprintf(&images, "| image (beside ResNet-50's front: %s free) | decoding | preprocessing | need, besides the body | |\n|---|---|---|---|---|\n", MB(front.Free))
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
		if n.Total() > front.Free {
			fit = "413"
		}
		fmt.Fprintf(&images, "| %s | %s | %s | %s | %s |\n", im.what, MB(n.Decode), MB(n.Crops), MB(n.Total()), fit)
	}

	var split []string
	for _, md := range models[1:] {
		split = append(split, fmt.Sprintf("%s in %d", md.name, len(md.plan)))
	}
	r50, r152 := models[0].plan, models[2].plan
	summary := fmt.Sprintf("Which models fit: a Worker isolate has 128 MB, and the float16 weights alone are %s (ResNet-50), %s (ResNet-101)\n"+
		"and %s (ResNet-152). Planned for %s a stage, ResNet-50 runs in %d stages, %s; the\n"+
		"largest stage's estimate is %s (ResNet-152: %s), and the front leaves %s to each request beside ResNet-50, %s beside\n"+
		"ResNet-152. An image whose decoding would not fit there gets 413 with a hint to downscale it.\n",
		MB(weightBytes(models[0].m)), MB(weightBytes(models[1].m)), MB(weightBytes(models[2].m)), MB(DefaultStage), len(r50), strings.Join(split, " and "),
		MB(largest(r50)), MB(largest(r152)), MB(r50[0].Free), MB(r152[0].Free))

	t.Logf("stages:\n%s\nimages:\n%s\nREADME.md:\n%s", table.String(), images.String(), summary)
	checkFigures(t, filepath.Join("..", "README.md"), "memory-models", table.String())
	checkFigures(t, filepath.Join("..", "README.md"), "memory-images", images.String())
	checkFigures(t, filepath.Join("..", "..", "..", "README.md"), "worker-memory", summary)
}

func weightBytes(m *weights.Manifest) int64 {
	var n int64
	for _, s := range m.Shards {
		n += s.Size
	}
	return n
}

func largest(plan []Estimate) int64 {
	var n int64
	for _, e := range plan {
		n = max(n, e.Total)
	}
	return n
}

// manifest reads the manifest the figures are computed from: the
// synthetic model (the released model's graph and sizes), or the converted
// released one.
func manifest(t *testing.T, name string) *weights.Manifest {
	for _, d := range []string{"../../../weights/" + name + "-synthetic", "../../../dist/web/models/" + name + "-synthetic", "../../../weights/" + name} {
		if raw, err := os.ReadFile(filepath.Join(d, "manifest.json")); err == nil {
			m, err := weights.ParseManifest(raw)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Skipf("no %s manifest: make synthetic-all (make worker-memory does)", name)
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
