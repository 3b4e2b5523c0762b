package main

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/core/weights/weightstest"
)

// writeTinyModel writes a valid two-class model (inner product + softmax over
// a 3x2x2 input) to dir and returns its shard bytes.
func writeTinyModel(t *testing.T, dir, name string, synthetic bool) int64 {
	t.Helper()
	b := weightstest.New(name, 3, 2, 2, 1)
	b.M.Synthetic = synthetic
	b.InnerProduct("data", "fc", 12, 2, false, 0.5).
		Op(weights.Op{Type: weights.OpSoftmax, Inputs: []string{"fc"}, Output: "prob"}).
		Labels(2)
	files, err := b.Files()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := weights.ParseManifest(files[weights.ManifestFile]); err != nil {
		t.Fatalf("the test's tiny manifest is invalid: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	var size int64
	for name, data := range files {
		if name != weights.ManifestFile {
			size += int64(len(data))
		}
	}
	return size
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func setup(t *testing.T) (config, string) {
	t.Helper()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"web/index.html":         "<!doctype html><title>x</title>",
		"web/sw.js":              "// sw",
		"web/css/style.css":      "body{}",
		"web/js/app.js":          "import './client.js';",
		"web/README.md":          "docs stay out",
		"web/web.mk":             "web:",
		"web/test/page.test.mjs": "test",
		"web/test/package.json":  "{}",
		"simd.wasm":              "\x00asm simd",
		"scalar.wasm":            "\x00asm scalar",
		"wasm_exec.js":           "// go",
		"weights/README.md":      "format spec",
		"weights/notamodel/x":    "no manifest: skipped",
	})
	return config{
		Out: filepath.Join(root, "dist", "web"), Web: filepath.Join(root, "web"), Weights: filepath.Join(root, "weights"),
		SIMD: filepath.Join(root, "simd.wasm"), Scalar: filepath.Join(root, "scalar.wasm"),
		WasmExec: filepath.Join(root, "wasm_exec.js"), Gzip: true,
	}, root
}

func TestBuild(t *testing.T) {
	c, root := setup(t)
	size := writeTinyModel(t, filepath.Join(root, "weights", "tiny-b"), "Tiny B", true)
	writeTinyModel(t, filepath.Join(root, "weights", "tiny-a"), "Tiny A", false)
	// A stale file from an earlier build must disappear.
	writeFiles(t, c.Out, map[string]string{"stale.js": "old"})

	sum, err := build(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sum, "2 model(s)") || !strings.Contains(sum, "synthetic") {
		t.Errorf("summary %q does not list the models", sum)
	}
	want := []string{
		"index.html", "index.html.gz", "sw.js", "css/style.css", "js/app.js", "js/app.js.gz",
		"residual-simd.wasm", "residual-simd.wasm.gz", "residual-scalar.wasm", "wasm_exec.js",
		"models/index.json", "models/tiny-a/manifest.json", "models/tiny-a/shard-000.bin",
		"models/tiny-b/manifest.json", "models/tiny-b/shard-000.bin",
	}
	for _, f := range want {
		if _, err := os.Stat(filepath.Join(c.Out, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	for _, f := range []string{"README.md", "web.mk", "test", "stale.js", "models/notamodel", "models/tiny-a/shard-000.bin.gz"} {
		if _, err := os.Stat(filepath.Join(c.Out, f)); err == nil {
			t.Errorf("%s should not be in the site", f)
		}
	}
	// The gzip twin holds the same bytes.
	f, err := os.Open(filepath.Join(c.Out, "residual-simd.wasm.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(zr); string(b) != "\x00asm simd" {
		t.Errorf("residual-simd.wasm.gz holds %q", b)
	}
	// The index lists both models, sorted, with relative paths.
	var idx Index
	data, err := os.ReadFile(filepath.Join(c.Out, "models", "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	wantIdx := []ModelEntry{
		{Name: "tiny-a", Model: "Tiny A", Bytes: size, Shards: 1, Classes: 2, Path: "models/tiny-a/"},
		{Name: "tiny-b", Model: "Tiny B", Synthetic: true, Bytes: size, Shards: 1, Classes: 2, Path: "models/tiny-b/"},
	}
	if len(idx.Models) != len(wantIdx) {
		t.Fatalf("index has %d models, want %d: %s", len(idx.Models), len(wantIdx), data)
	}
	for i := range wantIdx {
		if idx.Models[i] != wantIdx[i] {
			t.Errorf("index entry %d = %+v, want %+v", i, idx.Models[i], wantIdx[i])
		}
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, c *config, root string)
		want    string
	}{
		{"short shard", func(t *testing.T, c *config, root string) {
			dir := filepath.Join(root, "weights", "m")
			writeTinyModel(t, dir, "M", false)
			writeFiles(t, dir, map[string]string{"shard-000.bin": "short"})
		}, "shard-000.bin has 5 bytes, the manifest says 68"}, // 48 B of weights, padded to 64, then 4 B of bias,
		{"missing shard", func(t *testing.T, c *config, root string) {
			dir := filepath.Join(root, "weights", "m")
			writeTinyModel(t, dir, "M", false)
			os.Remove(filepath.Join(dir, "shard-000.bin"))
		}, "re-run the converter"},
		{"bad manifest", func(t *testing.T, c *config, root string) {
			writeFiles(t, root, map[string]string{"weights/m/manifest.json": `{"format":"other"}`})
		}, "this is not a residual model manifest"},
		{"unsafe model name", func(t *testing.T, c *config, root string) {
			writeTinyModel(t, filepath.Join(root, "weights", "my model"), "M", false)
		}, "becomes a URL path"},
		{"no page", func(t *testing.T, c *config, root string) {
			os.Remove(filepath.Join(root, "web", "index.html"))
		}, "has no index.html"},
		{"no wasm", func(t *testing.T, c *config, root string) { c.SIMD = "" }, "-simd is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, root := setup(t)
			writeFiles(t, c.Out, map[string]string{"index.html": "previous site"})
			tt.prepare(t, &c, root)
			_, err := build(c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			// The previous site is untouched and no temporary directory is left.
			if b, _ := os.ReadFile(filepath.Join(c.Out, "index.html")); string(b) != "previous site" {
				t.Errorf("a failed build changed the previous site: index.html = %q", b)
			}
			matches, _ := filepath.Glob(filepath.Join(filepath.Dir(c.Out), ".web.tmp-*"))
			if len(matches) != 0 {
				t.Errorf("left temporary directories: %v", matches)
			}
		})
	}
}

func TestBuildWithoutModels(t *testing.T) {
	c, root := setup(t)
	c.Weights = filepath.Join(root, "no-such-dir")
	sum, err := build(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sum, "no models under") {
		t.Errorf("summary %q does not say that there are no models", sum)
	}
	data, err := os.ReadFile(filepath.Join(c.Out, "models", "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	// An empty list, not null: the page reads .models.length.
	if !strings.Contains(string(data), `"models": []`) {
		t.Errorf("index.json = %s, want an empty models list", data)
	}
}
