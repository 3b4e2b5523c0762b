package main

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/residual-go/residual/core/weights"
)

type config struct {
	Out, Web, Weights string
	SIMD, Scalar      string
	WasmExec          string
	Gzip              bool
}

// ModelEntry is one model in models/index.json.
type ModelEntry struct {
	Name      string `json:"name"`      // directory name under models/
	Model     string `json:"model"`     // display name from the manifest
	Synthetic bool   `json:"synthetic"` // random weights: predictions mean nothing
	Bytes     int64  `json:"bytes"`     // sum of the shard sizes
	Shards    int    `json:"shards"`
	Classes   int    `json:"classes"`
	Path      string `json:"path"` // relative to the page, ends in "/"
}

// Index is models/index.json.
type Index struct {
	Models []ModelEntry `json:"models"`
}

// staticExts are the page files copied from -web; everything else there
// (tests, docs, build files) stays out of the site.
var staticExts = map[string]bool{
	".html": true, ".css": true, ".js": true, ".mjs": true, ".svg": true,
	".png": true, ".ico": true, ".webmanifest": true,
}

// skipDirs under -web are never copied.
var skipDirs = map[string]bool{"test": true, "node_modules": true}

// modelName keeps directory names safe in URLs and paths.
var modelName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// compressExts get a gzip twin.
var compressExts = map[string]bool{".wasm": true, ".js": true, ".css": true, ".html": true, ".json": true}

func build(c config) (string, error) {
	for flagName, v := range map[string]string{"-simd": c.SIMD, "-scalar": c.Scalar, "-wasm-exec": c.WasmExec} {
		if v == "" {
			return "", fmt.Errorf("%s is required (see -h)", flagName)
		}
	}
	out := filepath.Clean(c.Out)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}

	var toCompress []string
	// The page.
	err = filepath.WalkDir(c.Web, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(c.Web, p)
		if d.IsDir() {
			if skipDirs[d.Name()] && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		ext := strings.ToLower(filepath.Ext(p))
		if !staticExts[ext] {
			return nil
		}
		if err := copyFile(p, filepath.Join(tmp, rel)); err != nil {
			return err
		}
		toCompress = append(toCompress, rel)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("copying the page from %s: %w", c.Web, err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "index.html")); err != nil {
		return "", fmt.Errorf("%s has no index.html: is -web the page's directory?", c.Web)
	}
	// The WebAssembly builds and Go's loader.
	for src, dst := range map[string]string{c.SIMD: "residual-simd.wasm", c.Scalar: "residual-scalar.wasm", c.WasmExec: "wasm_exec.js"} {
		if err := copyFile(src, filepath.Join(tmp, dst)); err != nil {
			return "", err
		}
		toCompress = append(toCompress, dst)
	}
	// The models.
	index, err := copyModels(c.Weights, filepath.Join(tmp, "models"))
	if err != nil {
		return "", err
	}
	idx, err := json.MarshalIndent(index, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, "models", "index.json"), append(idx, '\n'), 0o644); err != nil {
		return "", err
	}
	toCompress = append(toCompress, filepath.Join("models", "index.json"))
	if c.Gzip {
		for _, rel := range toCompress {
			if compressExts[strings.ToLower(filepath.Ext(rel))] {
				if err := gzipFile(filepath.Join(tmp, rel)); err != nil {
					return "", err
				}
			}
		}
	}
	// Swap the new site in.
	if err := os.RemoveAll(out); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "webbuild: wrote %s with %d model(s)\n", out, len(index.Models))
	for _, m := range index.Models {
		synth := ""
		if m.Synthetic {
			synth = " (synthetic weights)"
		}
		fmt.Fprintf(&b, "  %s: %s, %d shards, %.1f MB%s\n", m.Path, m.Model, m.Shards, float64(m.Bytes)/1e6, synth)
	}
	if len(index.Models) == 0 {
		fmt.Fprintf(&b, "  no models under %s: the page will say so (convert one, then run make web again)\n", c.Weights)
	}
	return b.String(), nil
}

// copyModels copies every DIR/NAME/manifest.json and its shards into dst/NAME.
// A directory without a manifest is skipped; a broken manifest or a shard of
// the wrong size is an error (the site would fail to load it).
func copyModels(dir, dst string) (*Index, error) {
	index := &Index{Models: []ModelEntry{}}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return index, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		manifestPath := filepath.Join(dir, e.Name(), weights.ManifestFile)
		if !e.IsDir() {
			continue
		}
		data, err := os.ReadFile(manifestPath)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !modelName.MatchString(e.Name()) {
			return nil, fmt.Errorf("model directory %q: use only letters, digits, '.', '_' and '-' (it becomes a URL path)", e.Name())
		}
		m, err := weights.ParseManifest(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", manifestPath, err)
		}
		out := filepath.Join(dst, e.Name())
		if err := os.MkdirAll(out, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(out, weights.ManifestFile), data, 0o644); err != nil {
			return nil, err
		}
		var total int64
		for _, s := range m.Shards {
			src := filepath.Join(dir, e.Name(), filepath.FromSlash(s.File))
			st, err := os.Stat(src)
			if err != nil {
				return nil, fmt.Errorf("model %s: %w (re-run the converter)", e.Name(), err)
			}
			if st.Size() != s.Size {
				return nil, fmt.Errorf("model %s: %s has %d bytes, the manifest says %d (re-run the converter)", e.Name(), s.File, st.Size(), s.Size)
			}
			if err := linkOrCopy(src, filepath.Join(out, filepath.FromSlash(s.File))); err != nil {
				return nil, err
			}
			total += s.Size
		}
		index.Models = append(index.Models, ModelEntry{
			Name: e.Name(), Model: m.Model, Synthetic: m.Synthetic, Bytes: total,
			Shards: len(m.Shards), Classes: m.Classes(), Path: "models/" + e.Name() + "/",
		})
	}
	slices.SortFunc(index.Models, func(a, b ModelEntry) int { return strings.Compare(a.Name, b.Name) })
	return index, nil
}

func linkOrCopy(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return copyFile(src, dst)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func gzipFile(p string) error {
	in, err := os.Open(p)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(p + ".gz")
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(out, gzip.BestCompression)
	if err != nil {
		out.Close()
		return err
	}
	if _, err := io.Copy(zw, in); err != nil {
		out.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
