package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseList(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []entry
		bad      []int  // lines a *ListError must name
		more     int    // ListError.More
		reason   string // in the first bad line's reason
	}{
		{name: "caffe val.txt", in: "ILSVRC2012_val_00000001.JPEG 65\nILSVRC2012_val_00000002.JPEG 970\n",
			want: []entry{{"ILSVRC2012_val_00000001.JPEG", 65, 1}, {"ILSVRC2012_val_00000002.JPEG", 970, 2}}},
		{name: "no final newline, CRLF, tabs, blank lines, padding",
			in:   "\r\n  a/b.png\t3\r\n\n\t c.jpg   0 \r\nd.jpg 12",
			want: []entry{{"a/b.png", 3, 2}, {"c.jpg", 0, 4}, {"d.jpg", 12, 5}}},
		{name: "spaces in the path (the label follows the last space, as in Caffe)", in: "my photos/a b.jpg 7\n",
			want: []entry{{"my photos/a b.jpg", 7, 1}}},
		{name: "label out of the model's range is the image's problem, not the list's", in: "a.jpg 100000\n",
			want: []entry{{"a.jpg", 100000, 1}}},
		{name: "empty", in: "", want: nil},
		{name: "blank only", in: "\n \n\t\n", want: nil},

		{name: "no label", in: "a.jpg 1\nb.jpg\n", bad: []int{2}, reason: "no label"},
		{name: "label not a number", in: "a.jpg x1\n", bad: []int{1}, reason: `label "x1" is not a class index`},
		{name: "negative label", in: "a.jpg -1\n", bad: []int{1}, reason: "not a class index"},
		{name: "signed label", in: "a.jpg +1\n", bad: []int{1}, reason: "not a class index"},
		{name: "fractional label", in: "a.jpg 1.0\n", bad: []int{1}, reason: "not a class index"},
		{name: "huge label", in: "a.jpg 99999999999999999999999\n", bad: []int{1}, reason: "out of range"},
		{name: "duplicate path", in: "a.jpg 1\nb.jpg 2\na.jpg 1\n", bad: []int{3}, reason: "already listed on line 1"},
		{name: "NUL in path", in: "a\x00b.jpg 1\n", bad: []int{1}, reason: "NUL"},
		{name: "every bad line is named", in: "x\n\na.jpg 1\ny\nz 1.5\n", bad: []int{1, 4, 5}, reason: "no label"},
		{name: "more bad lines than reported", in: strings.Repeat("bad\n", maxReportedLineErrors+3),
			bad: []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, more: 3, reason: "no label"},
		{name: "line too long", in: "a.jpg 1\n" + strings.Repeat("x", maxLineBytes+1) + " 2\n", bad: []int{2}, reason: "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseList(strings.NewReader(tc.in), "val.txt")
			if tc.bad == nil {
				if err != nil || !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got %v, %v; want %v", got, err, tc.want)
				}
				return
			}
			var le *ListError
			if !errors.As(err, &le) || got != nil {
				t.Fatalf("got %v, %v; want a *ListError", got, err)
			}
			var lines []int
			for _, l := range le.Lines {
				lines = append(lines, l.Line)
			}
			if !reflect.DeepEqual(lines, tc.bad) || le.More != tc.more || !strings.Contains(le.Lines[0].Reason, tc.reason) {
				t.Errorf("bad lines %v (+%d more), first reason %q; want %v (+%d), %q", lines, le.More, le.Lines[0].Reason, tc.bad, tc.more, tc.reason)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "val.txt: ") || !strings.Contains(msg, fmt.Sprintf("line %d ", tc.bad[0])) ||
				!strings.Contains(msg, "Caffe's val.txt format") {
				t.Errorf("message %q does not name the file, the line and the format", msg)
			}
		})
	}
}

func TestParseListReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := parseList(iotest.ErrReader(boom), "val.txt")
	if !errors.Is(err, boom) {
		t.Errorf("got %v, want the read error", err)
	}
}

// TestListFileErrors checks the command's refusals of a list: missing, bad
// lines (nothing is classified), empty.
func TestListFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ list, want string }{
		{filepath.Join(dir, "missing.txt"), "image list: open"},
		{write("bad.txt", "a.png 1\nb.png one\n"), `line 2 "b.png one": label "one" is not a class index`},
		{write("empty.txt", "\n\n"), "has no images"},
	} {
		status, stdout, stderr := runCmd(t, "-model", lenet(t), "-images", dir, "-labels", tc.list)
		if status != 1 || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("%s: status %d, stdout %q, stderr %q; want 1 and %q", tc.list, status, stdout, stderr, tc.want)
		}
	}
}

// FuzzParseList: the list comes from outside. Whatever the bytes, parseList
// returns entries or an error, never panics, and what it accepts is
// well-formed and survives a round trip through the format.
func FuzzParseList(f *testing.F) {
	for _, seed := range []string{
		"ILSVRC2012_val_00000001.JPEG 65\nILSVRC2012_val_00000002.JPEG 970\n",
		"a b/c d.png\t3\r\n\n x.jpg 0",
		"a.jpg -1\nb.jpg +2\nc 1e3\nd 99999999999999999999\n",
		"a.jpg 1\na.jpg 1\n",
		"\x00 1\n\xff\xfe 2\n",
	} {
		f.Add([]byte(seed))
	}
	if data, err := os.ReadFile(filepath.Join("testdata", "val-sample.txt")); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		entries, err := parseList(strings.NewReader(string(data)), "fuzz.txt")
		if err != nil {
			if entries != nil {
				t.Fatalf("entries %v with error %v", entries, err)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		seen := map[string]bool{}
		var again strings.Builder
		for _, e := range entries {
			if e.Path == "" || e.Path != strings.TrimSpace(e.Path) || e.Label < 0 || e.Line < 1 || seen[e.Path] {
				t.Fatalf("accepted a bad entry %+v", e)
			}
			seen[e.Path] = true
			fmt.Fprintf(&again, "%s %d\n", e.Path, e.Label)
		}
		back, err := parseList(strings.NewReader(again.String()), "again.txt")
		if err != nil || len(back) != len(entries) {
			t.Fatalf("round trip: %v, %d of %d entries", err, len(back), len(entries))
		}
		for i := range back {
			if back[i].Path != entries[i].Path || back[i].Label != entries[i].Label {
				t.Fatalf("round trip changed %+v into %+v", entries[i], back[i])
			}
		}
	})
}
