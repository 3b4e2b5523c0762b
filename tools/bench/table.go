package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Table is a plain-text table with a title, aligned columns and notes.
type Table struct {
	Header []string
	Rows   [][]string
	Notes  []string
}

// Add appends a row; a row with a single cell is a section heading.
func (t *Table) Add(cells ...string) { t.Rows = append(t.Rows, cells) }

// Write prints the table: columns padded to their widest cell, numbers
// (cells starting with a digit) right-aligned.
func (t *Table) Write(w io.Writer) {
	width := make([]int, len(t.Header))
	for i, h := range t.Header {
		width[i] = utf8.RuneCountInString(h)
	}
	for _, r := range t.Rows {
		if len(r) == 1 {
			continue
		}
		for i, c := range r {
			if i < len(width) {
				width[i] = max(width[i], utf8.RuneCountInString(c))
			}
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		for i, c := range cells {
			if i >= len(width) {
				break
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if c != "" && (c[0] >= '0' && c[0] <= '9' || c[0] == 'x') && i > 0 {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	total := 0
	for _, x := range width {
		total += x + 2
	}
	line(t.Header)
	fmt.Fprintln(w, strings.Repeat("-", total-2))
	for _, r := range t.Rows {
		if len(r) == 1 {
			fmt.Fprintln(w, r[0])
			continue
		}
		line(r)
	}
	for _, n := range t.Notes {
		fmt.Fprintln(w, n)
	}
}
