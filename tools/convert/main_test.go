package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/internal/testfiles"
	"github.com/residual-go/residual/tools/convert/caffe/fixture"
)

// TestMain doubles as the converter command for TestPeakRSS: with
// RESIDUAL_CONVERT_ARGS set, the test binary runs the CLI on those arguments
// (one per line), prints its peak resident size and exits.
func TestMain(m *testing.M) {
	if args := os.Getenv("RESIDUAL_CONVERT_ARGS"); args != "" {
		debug.SetGCPercent(gcPercent)
		code := run(strings.Split(args, "\n"), os.Stdout, os.Stderr)
		hwm, err := peakRSS()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("peak-rss-bytes %d\n", hwm)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// peakRSS reads VmHWM, the process's peak resident set size, from /proc.
func peakRSS() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

// TestPeakRSS converts a generated ResNet-152 (about 241 MB) in a child
// process and compares its peak resident size with the caffemodel's size
// (target: at most 1.5x). Slow, so only with RESIDUAL_RSS=1;
// RESIDUAL_RSS_MODEL=path reuses an existing ResNet-152 caffemodel.
//
//	RESIDUAL_RSS=1 go test -run PeakRSS -v ./tools/convert
func TestPeakRSS(t *testing.T) {
	if os.Getenv("RESIDUAL_RSS") == "" {
		t.Skip("set RESIDUAL_RSS=1 to measure the converter's peak memory on ResNet-152")
	}
	proto := sharedFile(t, "ResNet-152-deploy.prototxt")
	model := os.Getenv("RESIDUAL_RSS_MODEL")
	if model == "" {
		model = filepath.Join(t.TempDir(), "ResNet-152.caffemodel")
		f, err := os.Create(model)
		if err != nil {
			t.Fatal(err)
		}
		if err := fixture.GenerateFile(proto, 1, f); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(model)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-caffemodel", model, "-prototxt", proto, "-labels", sharedFile(t, "synset_words.txt"),
		"-synthetic", "-out", filepath.Join(t.TempDir(), "out")}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RESIDUAL_CONVERT_ARGS="+strings.Join(args, "\n"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	var peak int64
	for _, line := range strings.Split(stdout.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "peak-rss-bytes "); ok {
			peak, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	ratio := float64(peak) / float64(fi.Size())
	t.Logf("%s", stdout.String())
	t.Logf("caffemodel %d bytes, peak RSS %d bytes: %.2fx", fi.Size(), peak, ratio)
	if peak == 0 || ratio > 1.5 {
		t.Errorf("peak RSS %.2fx the caffemodel's size, target at most 1.5x", ratio)
	}
}

// sharedFile is the path of a real Caffe file kept in the repository.
func sharedFile(t *testing.T, name string) string { return testfiles.Caffe(t, name) }

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestConvertLeNet(t *testing.T) {
	out := filepath.Join(t.TempDir(), "lenet")
	code, stdout, stderr := runCLI("-caffemodel", sharedFile(t, "lenet/lenet_iter_10000.caffemodel"),
		"-prototxt", sharedFile(t, "lenet/lenet.prototxt"), "-name", "LeNet-5", "-out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"layers in             9", "ops out               7 (2 conv, 2 pool, 2 inner_product, 1 softmax)",
		"GRAY, resize 28, scale 0.00390625", "shards                1", "parameters            431080"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	// stderr is not a terminal here: one progress line, at the end.
	if !regexp.MustCompile(`^convert: progress: read 100% \(\d+ of \d+ bytes\), wrote 100% \(431080 of 431080 values\), ` +
		`verified 100% \(\d+ of \d+ bytes\)\n$`).MatchString(stderr) {
		t.Errorf("stderr is not one closing progress line:\n%q", stderr)
	}
	data, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := weights.ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Model != "LeNet-5" {
		t.Errorf("model %q", m.Model)
	}
}

func TestHelp(t *testing.T) {
	code, _, stderr := runCLI("-h")
	if code != 0 || !strings.Contains(stderr, "Examples:") || !strings.Contains(stderr, "-shard-size") {
		t.Errorf("exit %d, usage:\n%s", code, stderr)
	}
}

// TestBadInput: every failure is one line on stderr, exit status 1, and
// nothing left beside the output directory.
func TestBadInput(t *testing.T) {
	lenet := sharedFile(t, "lenet/lenet_iter_10000.caffemodel")
	proto := sharedFile(t, "lenet/lenet.prototxt")
	raw, err := os.ReadFile(lenet)
	if err != nil {
		t.Fatal(err)
	}
	files := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	truncated := write("truncated.caffemodel", raw[:len(raw)/2])
	random := make([]byte, 1<<16)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	randomFile := write("random.caffemodel", random)
	notDir := write("file", []byte("x"))
	cases := []struct {
		name string
		args []string // -out is added
		want string
	}{
		{"truncated caffemodel", []string{"-caffemodel", truncated, "-prototxt", proto}, "truncated"},
		{"random bytes", []string{"-caffemodel", randomFile}, "caffemodel"},
		{"prototxt as caffemodel", []string{"-caffemodel", proto}, "caffemodel"},
		{"missing file", []string{"-caffemodel", filepath.Join(files, "nope")}, "no such file"},
		{"shard size too small", []string{"-caffemodel", lenet, "-prototxt", proto, "-shard-size", "600"}, `tensor "conv1/weight" needs 1000 bytes`},
		{"shard size too large", []string{"-caffemodel", lenet, "-shard-size", "30000000"}, "-shard-size 30000000"},
		{"unknown flag", []string{"-caffemodel", lenet, "-bogus"}, "flag provided but not defined: -bogus"},
		{"bad mean values", []string{"-caffemodel", lenet, "-prototxt", proto, "-mean-values", "1,x"}, `"x" is not a number`},
		{"labels do not fit", []string{"-caffemodel", lenet, "-prototxt", proto, "-labels", sharedFile(t, "synset_words.txt")}, "1000 labels but the net's output \"prob\" has 10 classes"},
		{"training net without prototxt", []string{"-caffemodel", lenet}, `only the training-phase layer "mnist" produces: give the deploy -prototxt`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parent := t.TempDir()
			code, stdout, stderr := runCLI(append(c.args, "-out", filepath.Join(parent, "out"))...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			var errLines []string
			for _, l := range lines {
				if !strings.HasPrefix(l, "convert: progress: ") {
					errLines = append(errLines, l)
				}
			}
			if len(errLines) != 1 || !strings.HasPrefix(errLines[0], "convert: ") || !strings.Contains(errLines[0], c.want) {
				t.Errorf("stderr:\n%s\nwant one line \"convert: ...%s...\"", stderr, c.want)
			} else {
				t.Logf("%s", errLines[0])
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
	// An output whose parent is a regular file cannot be created.
	code, _, stderr := runCLI("-caffemodel", lenet, "-prototxt", proto, "-out", filepath.Join(notDir, "out"))
	if code != 1 || strings.Count(stderr, "\n") == 0 || !strings.Contains(stderr, "not a directory") {
		t.Errorf("unwritable output: exit %d, %s", code, stderr)
	}
	if ents, _ := os.ReadDir(files); len(ents) != 3 {
		t.Errorf("files beside the unwritable output: %v", ents)
	}
}

func TestRefuseOverwrite(t *testing.T) {
	lenet := sharedFile(t, "lenet/lenet_iter_10000.caffemodel")
	proto := sharedFile(t, "lenet/lenet.prototxt")
	out := t.TempDir() // exists and empty: allowed
	if code, _, stderr := runCLI("-caffemodel", lenet, "-prototxt", proto, "-out", out); code != 0 {
		t.Fatalf("into an empty directory: %s", stderr)
	}
	code, _, stderr := runCLI("-caffemodel", lenet, "-prototxt", proto, "-out", out)
	if code != 1 || !strings.Contains(stderr, "exists and is not empty: choose another -out or use -force") {
		t.Errorf("exit %d: %s", code, stderr)
	}
	if code, _, stderr := runCLI("-caffemodel", lenet, "-prototxt", proto, "-force", "-name", "second", "-out", out); code != 0 {
		t.Fatalf("-force: %s", stderr)
	}
	data, _ := os.ReadFile(filepath.Join(out, "manifest.json"))
	var m weights.Manifest
	if err := json.Unmarshal(data, &m); err != nil || m.Model != "second" {
		t.Errorf("after -force: %v %q", err, m.Model)
	}
}

// TestProgress: away from a terminal (a pipe, a file, a buffer) nothing is
// printed while working and one line at the end says how far each stage got,
// also when the conversion stopped; on a terminal each stage is a bar redrawn
// in place.
func TestProgress(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for _, out := range []io.Writer{w, file, &bytes.Buffer{}} {
		if isTerminal(out) {
			t.Errorf("%T is taken for a terminal", out)
		}
	}

	var log bytes.Buffer
	p := newProgress(&log)
	for done := int64(0); done <= 1000; done += 10 {
		p.update("read", done, 1000)
	}
	p.update("write", 410, 1000)
	if log.Len() != 0 {
		t.Errorf("printed while working: %q", log.String())
	}
	p.finish()
	if want := "convert: progress: read 100% (1000 of 1000 bytes), wrote 41% (410 of 1000 values)\n"; log.String() != want {
		t.Errorf("closing line %q, want %q", log.String(), want)
	}

	var term bytes.Buffer
	p = &progress{w: &term, tty: true, lastPct: -1}
	p.update("read", 500, 1000)
	p.update("read", 1000, 1000)
	p.update("verify", 1, 2)
	p.finish()
	got := term.String()
	for _, want := range []string{"\rconvert: reading   [====================                    ]  50%",
		"\rconvert: reading   [========================================] 100%\n",
		"\rconvert: verifying [====================                    ]  50%\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal output %q lacks %q", got, want)
		}
	}
}
