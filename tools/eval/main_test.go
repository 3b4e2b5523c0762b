package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// mnistLeNetErrors is the number of the 10,000 MNIST test digits Caffe's
// LeNet gets wrong at top-1 when run by core (e2e/mnist_test.go measures it
// too: 99.14% accuracy): the 0.86%.
const mnistLeNetErrors = 86

// TestMNISTLeNet is the proof on trained weights: the command, run on the
// 10,000 MNIST test digits written as PNG files with a generated val.txt,
// reports what core measures on the raw digits (the same per-image top-5,
// hence the same errors), and the top-1 error is 0.86%.
func TestMNISTLeNet(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 10,000-digit MNIST run")
	}
	const n = 10000
	images, list := writeDigits(t, n)
	want := direct(t, n, 1)
	results := filepath.Join(t.TempDir(), "results.jsonl")
	status, stdout, stderr := runCmd(t, "-model", lenet(t), "-images", images, "-labels", list, "-json", "-results", results)
	if status != 0 {
		t.Fatalf("status %d\n%s", status, stderr)
	}
	t.Logf("stderr: %s", strings.TrimSpace(stderr))
	lines, s := jsonOutput(t, stdout)
	if len(lines) != n {
		t.Fatalf("%d per-image lines, want %d", len(lines), n)
	}
	wrong1, wrong5 := 0, 0
	for i, l := range lines {
		if !reflect.DeepEqual(l, want[i]) {
			t.Fatalf("line %d: %+v from the PNG file, %+v from the raw digit", i+1, l, want[i])
		}
		if s := (scored{l.Label, l.Top}); !s.hit1() {
			wrong1++
		}
		if s := (scored{l.Label, l.Top}); !s.hit5() {
			wrong5++
		}
	}
	if s.Images != n || s.Failed != 0 || s.Crops != 1 || s.Top1Error == nil || s.Top5Error == nil {
		t.Fatalf("summary %+v", s)
	}
	if *s.Top1Error != float64(wrong1)/n || *s.Top5Error != float64(wrong5)/n {
		t.Errorf("summary top-1 %v top-5 %v, core on the raw digits %v %v", *s.Top1Error, *s.Top5Error, float64(wrong1)/n, float64(wrong5)/n)
	}
	if wrong1 != mnistLeNetErrors {
		t.Errorf("%d top-1 errors, want %d (0.86%%, e2e/mnist_test.go)", wrong1, mnistLeNetErrors)
	}
	lo, hi := wilson(wrong1, n, z95)
	if s.Top1CI != [2]float64{lo, hi} || !(lo < *s.Top1Error && *s.Top1Error < hi) {
		t.Errorf("top-1 CI %v, want [%v, %v] around %v", s.Top1CI, lo, hi, *s.Top1Error)
	}
	t.Logf("summary: %s", stdout[strings.LastIndexByte(strings.TrimSuffix(stdout, "\n"), '\n')+1:])

	// The text report of the same results, taken from the results file.
	status, text, stderr := runCmd(t, "-model", lenet(t), "-images", images, "-labels", list, "-results", results)
	if status != 0 || !strings.Contains(stderr, fmt.Sprintf("0 classified in 0s; %d taken from", n)) {
		t.Fatalf("text: status %d\n%s", status, stderr)
	}
	t.Logf("text output:\n%s", text)
	if !strings.Contains(text, fmt.Sprintf("top-1      %.2f%%   [%.2f%%, %.2f%%]", 100*float64(wrong1)/n, 100*lo, 100*hi)) {
		t.Errorf("text output lacks the top-1 row:\n%s", text)
	}
}

// TestRunFailures runs LeNet on 40 digits with a missing file, a label
// outside LeNet's 10 classes and an undecodable image among them: each is
// reported and counted as failed, the others are scored as core scores them,
// the denominators leave the failures out, and the exit status is 1.
func TestRunFailures(t *testing.T) {
	const n = 40
	images, list := writeDigits(t, n)
	want := direct(t, n, 1)
	if err := os.Remove(filepath.Join(images, digitPath(3))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(images, digitPath(7)), []byte("not a PNG"), 0o644); err != nil {
		t.Fatal(err)
	}
	val, _ := os.ReadFile(list)
	rows := strings.Split(strings.TrimSuffix(string(val), "\n"), "\n")
	rows[5] = digitPath(5) + " 10" // LeNet's classes are 0..9
	if err := os.WriteFile(list, []byte(strings.Join(rows, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	failing := map[int]string{3: "no such file", 5: "label 10 is outside the model's 10 classes (0..9)", 7: "image"}

	status, stdout, stderr := runCmd(t, "-model", lenet(t), "-images", images, "-labels", list, "-json", "-workers", "3")
	if status != 1 {
		t.Errorf("status %d with failed images, want 1", status)
	}
	for i, msg := range failing {
		if !strings.Contains(stderr, fmt.Sprintf("eval: %s (line %d): ", digitPath(i), i+1)) || !strings.Contains(stderr, msg) {
			t.Errorf("stderr does not report line %d (%q):\n%s", i+1, msg, stderr)
		}
	}
	lines, s := jsonOutput(t, stdout)
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	wrong1, wrong5 := 0, 0
	for i, l := range lines {
		if msg, bad := failing[i]; bad {
			if !strings.Contains(l.Error, msg) || l.Top != nil || l.File != digitPath(i) {
				t.Errorf("line %d: %+v, want an error with %q", i+1, l, msg)
			}
			continue
		}
		if !reflect.DeepEqual(l, want[i]) {
			t.Errorf("line %d: %+v, want %+v", i+1, l, want[i])
		}
		if s := (scored{l.Label, l.Top}); !s.hit1() {
			wrong1++
		}
		if s := (scored{l.Label, l.Top}); !s.hit5() {
			wrong5++
		}
	}
	scoredN := n - len(failing)
	if s.Images != scoredN || s.Failed != len(failing) || *s.Top1Error != float64(wrong1)/float64(scoredN) ||
		*s.Top5Error != float64(wrong5)/float64(scoredN) {
		t.Errorf("summary %+v, want %d scored, %d failed, %d and %d wrong", s, scoredN, len(failing), wrong1, wrong5)
	}

	// The text report says what the failures would do to the rates.
	_, text, _ := runCmd(t, "-model", lenet(t), "-images", images, "-labels", list)
	wantLine := fmt.Sprintf("3 image(s) failed (see the error lines) and are not in these rates; counted as wrong, top-1 error would be %.2f%%",
		100*float64(wrong1+3)/n)
	if !strings.Contains(text, wantLine) {
		t.Errorf("text output lacks %q:\n%s", wantLine, text)
	}
}

// TestLimit checks that -limit N evaluates the first N lines only.
func TestLimit(t *testing.T) {
	images, list := writeDigits(t, 30)
	for _, limit := range []int{1, 7, 30, 100} {
		status, stdout, stderr := runCmd(t, "-model", lenet(t), "-images", images, "-labels", list, "-json", "-limit", fmt.Sprint(limit))
		if status != 0 {
			t.Fatalf("-limit %d: status %d\n%s", limit, status, stderr)
		}
		lines, s := jsonOutput(t, stdout)
		want := min(limit, 30)
		if len(lines) != want || s.Images != want {
			t.Errorf("-limit %d: %d lines, %d images; want %d", limit, len(lines), s.Images, want)
		}
		for i, l := range lines {
			if l.File != digitPath(i) {
				t.Errorf("-limit %d: line %d is %s, want %s", limit, i+1, l.File, digitPath(i))
			}
		}
	}
}

// TestResume interrupts a run the way a crash does (a results file whose last
// line is torn) and checks that the next run classifies only what is missing
// and ends with the output of an uninterrupted run.
func TestResume(t *testing.T) {
	const n = 24
	images, list := writeDigits(t, n)
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.jsonl")
	args := func(results string, extra ...string) []string {
		return append([]string{"-model", lenet(t), "-images", images, "-labels", list, "-json", "-results", results, "-workers", "2"}, extra...)
	}
	status, wantOut, stderr := runCmd(t, args(whole)...)
	if status != 0 {
		t.Fatalf("uninterrupted run: status %d\n%s", status, stderr)
	}

	// A run that got through the first 10 images, then crashed halfway
	// through writing the 11th line.
	partial := filepath.Join(dir, "partial.jsonl")
	if status, _, stderr := runCmd(t, args(partial, "-limit", "11")...); status != 0 {
		t.Fatalf("first run: status %d\n%s", status, stderr)
	}
	data, err := os.ReadFile(partial)
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.SplitAfter(string(data), "\n")
	if len(rows) != 1+11+1 || rows[12] != "" { // header, 11 images, "" after the last newline
		t.Fatalf("results file after 11 images has %d rows:\n%s", len(rows), data)
	}
	torn := strings.Join(rows[:11], "") + rows[11][:len(rows[11])/2]
	if err := os.WriteFile(partial, []byte(torn), 0o644); err != nil {
		t.Fatal(err)
	}
	// The 10 images with complete lines (written in the order they were
	// finished) must not be read again: remove them.
	for _, row := range rows[1:11] {
		var l imageLine
		if err := json.Unmarshal([]byte(row), &l); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(images, filepath.FromSlash(l.File))); err != nil {
			t.Fatal(err)
		}
	}

	status, gotOut, stderr := runCmd(t, args(partial)...)
	if status != 0 {
		t.Fatalf("resumed run: status %d\n%s", status, stderr)
	}
	if gotOut != wantOut {
		t.Errorf("resumed run's output differs from an uninterrupted run's:\n%s\nwant\n%s", gotOut, wantOut)
	}
	if !strings.Contains(stderr, fmt.Sprintf("; %d classified in", n-10)) || !strings.Contains(stderr, "10 taken from "+partial) {
		t.Errorf("stderr does not say 14 were classified and 10 resumed: %s", stderr)
	}
	data, err = os.ReadFile(partial)
	if err != nil {
		t.Fatal(err)
	}
	done, keep, err := readResults(strings.NewReader(string(data)), partial, lenetHeader(t, 1))
	if err != nil || keep != int64(len(data)) || len(done) != n {
		t.Errorf("results file after the resumed run: %d images, %d of %d bytes kept, %v", len(done), keep, len(data), err)
	}
	if got := strings.Count(string(data), "\n"); got != 1+n {
		t.Errorf("results file has %d lines, want %d (the torn one cut off):\n%s", got, 1+n, data)
	}

	// A third run has nothing left to do and still reports everything.
	status, again, stderr := runCmd(t, args(partial)...)
	if status != 0 || again != wantOut || !strings.Contains(stderr, "; 0 classified in") {
		t.Errorf("third run: status %d, same output %v, stderr %s", status, again == wantOut, stderr)
	}
}

// lenetHeader is the results header of a LeNet run.
func lenetHeader(t *testing.T, crops int) resultsHeader {
	sum, _, err := readManifest(lenet(t))
	if err != nil {
		t.Fatal(err)
	}
	return resultsHeader{Format: resultsFormat, Version: resultsVersion, Model: "LeNet", ManifestSHA256: sum, Crops: crops}
}

// TestResultsRefused checks the results files a run must not use or touch:
// another crop mode's, a corrupt one, someone else's file.
func TestResultsRefused(t *testing.T) {
	images, list := writeDigits(t, 6)
	dir := t.TempDir()
	good := filepath.Join(dir, "r.jsonl")
	base := []string{"-model", lenet(t), "-images", images, "-labels", list, "-workers", "1", "-results"}
	if status, _, stderr := runCmd(t, append(base, good)...); status != 0 {
		t.Fatalf("status %d\n%s", status, stderr)
	}
	data, _ := os.ReadFile(good)
	rows := strings.SplitAfter(string(data), "\n")
	corrupt := strings.Join(rows[:3], "") + "{\"file\": \"x\n" + strings.Join(rows[3:], "")
	for _, tc := range []struct {
		name, content string
		extra         []string
		want          string
	}{
		{"other crops", string(data), []string{"-crops", "10"}, "1 crop(s)"},
		{"corrupt line", corrupt, nil, "line 4 is corrupt"},
		{"foreign file", "PNG\x00 not a results file", nil, "is not a results file of this command"},
		{"foreign lines", "a b\nc d\n", nil, "is not a results file of this command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.jsonl")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			status, _, stderr := runCmd(t, append(append(base, path), tc.extra...)...)
			if status != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("status %d, stderr %q; want 1 and %q", status, stderr, tc.want)
			}
			if after, _ := os.ReadFile(path); string(after) != tc.content {
				t.Errorf("the refused file was changed:\n%q\nwas\n%q", after, tc.content)
			}
		})
	}

	// A torn header (a crash right after creating the file) is started afresh.
	path := filepath.Join(dir, "torn-header.jsonl")
	if err := os.WriteFile(path, data[:20], 0o644); err != nil {
		t.Fatal(err)
	}
	if status, _, stderr := runCmd(t, append(base, path)...); status != 0 {
		t.Fatalf("torn header: status %d\n%s", status, stderr)
	}
	if after, _ := os.ReadFile(path); string(after) != string(data) {
		t.Errorf("after a torn header:\n%s\nwant\n%s", after, data)
	}
}

// TestInterrupted cancels the run before it starts: status 130 and a hint.
func TestInterrupted(t *testing.T) {
	images, list := writeDigits(t, 5)
	results := filepath.Join(t.TempDir(), "r.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb strings.Builder
	status := run(ctx, []string{"-model", lenet(t), "-images", images, "-labels", list, "-results", results}, &out, &errb)
	if status != 130 || !strings.Contains(errb.String(), "interrupted after") || !strings.Contains(errb.String(), "continue from "+results) {
		t.Errorf("status %d, stderr %q", status, errb.String())
	}
	if out.Len() != 0 {
		t.Errorf("an interrupted run printed a summary: %q", out.String())
	}
}

// TestUsage checks the refusals before any work.
func TestUsage(t *testing.T) {
	images, list := writeDigits(t, 2)
	model := lenet(t)
	for _, tc := range []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"-images", images, "-labels", list}, 2, "-model is required"},
		{[]string{"-model", model, "-labels", list}, 2, "-images is required"},
		{[]string{"-model", model, "-images", images}, 2, "-labels is required"},
		{[]string{"-model", model, "-images", images, "-labels", list, "-crops", "5"}, 2, "-crops must be 1 or 10"},
		{[]string{"-model", model, "-images", images, "-labels", list, "-limit", "-1"}, 2, "-limit"},
		{[]string{"-model", model, "-images", images, "-labels", list, "x.png"}, 2, "unexpected argument"},
		{[]string{"-model", model, "-images", images, "-labels", filepath.Join(images, "missing.txt")}, 1, "no such file"},
		{[]string{"-model", filepath.Join(images, "nomodel"), "-images", images, "-labels", list}, 1, "loading"},
		{[]string{"-model", model, "-images", filepath.Join(images, "nowhere"), "-labels", list}, 1, "images directory: stat"},
		{[]string{"-model", model, "-images", list, "-labels", list}, 1, "is not a directory"},
	} {
		status, _, stderr := runCmd(t, tc.args...)
		if status != tc.status || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: status %d, stderr %q; want %d and %q", tc.args, status, stderr, tc.status, tc.want)
		}
	}
}

// TestTenCrops runs 10-crop mode: the same results as core's on the raw
// digits (a 28x28 digit is used as is: five equal crops and five mirrors).
func TestTenCrops(t *testing.T) {
	const n = 8
	images, list := writeDigits(t, n)
	status, stdout, stderr := runCmd(t, "-model", lenet(t), "-images", images, "-labels", list, "-json", "-crops", "10")
	if status != 0 {
		t.Fatalf("status %d\n%s", status, stderr)
	}
	lines, s := jsonOutput(t, stdout)
	if s.Crops != 10 || s.Images != n {
		t.Errorf("summary %+v", s)
	}
	want := direct(t, n, 10)
	for i := range lines {
		if !reflect.DeepEqual(lines[i], want[i]) {
			t.Errorf("digit %d: %+v, want %+v", i, lines[i], want[i])
		}
	}
}
