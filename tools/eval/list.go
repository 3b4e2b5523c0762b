package main

// The image list: Caffe's ImageData source format (val.txt).

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// entry is one image of the list.
type entry struct {
	Path  string // as written in the list, relative to -images
	Label int    // class index, 0-based
	Line  int    // 1-based line number in the list
}

// Limits on the list, which comes from outside: a line longer than
// maxLineBytes is refused (val.txt lines are about 35 bytes) and at most
// maxReportedLineErrors bad lines are described in the error.
const (
	maxLineBytes          = 64 << 10
	maxReportedLineErrors = 10
)

// LineError describes one unusable line of the list.
type LineError struct {
	Line   int    // 1-based
	Text   string // the line, shortened to 80 bytes
	Reason string
}

func (e *LineError) Error() string {
	return fmt.Sprintf("line %d %q: %s", e.Line, e.Text, e.Reason)
}

// ListError is a list with unusable lines: nothing is classified, because
// leaving lines out would change what the error rates are computed over.
type ListError struct {
	Name  string       // the list's file name
	Lines []*LineError // the first maxReportedLineErrors bad lines
	More  int          // bad lines beyond those
}

func (e *ListError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d bad line(s); each line must be `relative/path label_index` (Caffe's val.txt format):",
		e.Name, len(e.Lines)+e.More)
	for _, l := range e.Lines {
		b.WriteString("\n  ")
		b.WriteString(l.Error())
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n  ... and %d more", e.More)
	}
	return b.String()
}

// parseList reads an image list in the format of Caffe's ImageData layer
// (the val.txt shipped with Caffe's ILSVRC2012 auxiliary data): one image
// per line, a path, whitespace, and a non-negative integer class index.
// Like Caffe, the label is what follows the last whitespace, so a path may
// contain spaces. Leading and trailing whitespace and a CR before the LF are
// ignored, and so are blank lines. Each path may appear once: results are
// kept per path (see results.go), and a duplicate is more likely a broken
// list than a wish to count an image twice.
//
// A list with bad lines gives a *ListError naming them (a read error is
// returned as is). Whether a label is inside the model's classes is not known
// here: that is checked per image, as is whether the file exists.
func parseList(r io.Reader, name string) ([]entry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLineBytes)
	var (
		entries []entry
		seen    = map[string]int{}
		bad     = &ListError{Name: name}
	)
	fail := func(line int, text, reason string) {
		if len(bad.Lines) == maxReportedLineErrors {
			bad.More++
			return
		}
		if len(text) > 80 {
			text = text[:77] + "..."
		}
		bad.Lines = append(bad.Lines, &LineError{Line: line, Text: text, Reason: reason})
	}
	n := 0
	for sc.Scan() {
		n++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		cut := strings.LastIndexAny(text, " \t")
		if cut < 0 {
			fail(n, text, "no label: expected a path, a space and a class index")
			continue
		}
		path, field := strings.TrimSpace(text[:cut]), text[cut+1:]
		if !allDigits(field) {
			fail(n, text, fmt.Sprintf("label %q is not a class index (a non-negative integer)", field))
			continue
		}
		label, err := strconv.Atoi(field)
		if err != nil {
			fail(n, text, fmt.Sprintf("label %s is out of range", field))
			continue
		}
		if strings.ContainsRune(path, 0) {
			fail(n, text, "the path contains a NUL byte")
			continue
		}
		if first, dup := seen[path]; dup {
			fail(n, text, fmt.Sprintf("%s is already listed on line %d", path, first))
			continue
		}
		seen[path] = n
		entries = append(entries, entry{Path: path, Label: label, Line: n})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			fail(n+1, "", fmt.Sprintf("longer than %d bytes", maxLineBytes))
			return nil, bad
		}
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(bad.Lines) > 0 {
		return nil, bad
	}
	return entries, nil
}

// allDigits is whether s is a non-empty run of ASCII digits.
func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
