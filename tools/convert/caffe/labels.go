package caffe

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ReadLabels reads class labels in Caffe's synset_words.txt form, one class
// per line in class-index order: "n01440764 tench, Tinca tinca". The id is
// the first word when it looks like a WordNet id (a letter and 8 digits);
// a line without one gets id "" and the whole line as its name. Trailing
// empty lines are ignored; an empty line between labels is an error (it
// would shift every later class index), and so is a file with no labels.
func ReadLabels(r io.Reader) (ids, names []string, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	blank := 0 // empty lines seen since the last label
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(s) == "" {
			blank++
			continue
		}
		if blank > 0 {
			return nil, nil, fmt.Errorf("caffe: labels line %d is empty: every line must hold one class, in class-index order", line-blank)
		}
		s = strings.TrimSpace(s)
		id, name := "", s
		if first, rest, ok := strings.Cut(s, " "); ok && isWordNetID(first) {
			id, name = first, strings.TrimSpace(rest)
		} else if isWordNetID(s) {
			id, name = s, ""
		}
		ids = append(ids, id)
		names = append(names, name)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("caffe: reading labels line %d: %w", line+1, err)
	}
	if len(names) == 0 {
		return nil, nil, errors.New("caffe: the labels file holds no labels (expected lines like \"n01440764 tench, Tinca tinca\")")
	}
	return ids, names, nil
}

// isWordNetID reports whether s looks like "n01440764".
func isWordNetID(s string) bool {
	if len(s) != 9 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
