package caffe

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// The protobuf text format, as Caffe's prototxt files use it: a tokenizer,
// a generic tree of fields, and a [fields] cursor over the tree that maps
// field names to caffe.proto numbers (see schema.go) so the same decoders
// serve binary and text.

const (
	maxTextDepth = 64       // nesting limit: real prototxts nest 4 deep
	maxTextSize  = 64 << 20 // a prototxt is text; the ResNet-152 one is 98 KB
)

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokNumber
	tokString
	tokPunct
)

type token struct {
	kind      tokKind
	text      string // identifier, number or punctuation as written; decoded string
	line, col int
}

func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "the end of the file"
	case tokString:
		return fmt.Sprintf("string %q", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

type lexer struct {
	src       []byte
	pos       int
	line, col int
}

func (lx *lexer) errorf(line, col int, format string, args ...any) error {
	return &SyntaxError{Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

func (lx *lexer) advance(n int) {
	for i := 0; i < n; i++ {
		if lx.src[lx.pos] == '\n' {
			lx.line++
			lx.col = 1
		} else if lx.src[lx.pos]&0xc0 != 0x80 { // count runes, not bytes
			lx.col++
		}
		lx.pos++
	}
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdentChar(c byte) bool  { return isIdentStart(c) || c >= '0' && c <= '9' }

func (lx *lexer) next() (token, error) {
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		if c == '#' {
			for lx.pos < len(lx.src) && lx.src[lx.pos] != '\n' {
				lx.advance(1)
			}
			continue
		}
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' {
			lx.advance(1)
			continue
		}
		break
	}
	t := token{line: lx.line, col: lx.col}
	if lx.pos >= len(lx.src) {
		return t, nil
	}
	c := lx.src[lx.pos]
	start := lx.pos
	switch {
	case strings.IndexByte("{}<>[]:;,", c) >= 0:
		lx.advance(1)
		t.kind, t.text = tokPunct, string(c)
	case isIdentStart(c):
		for lx.pos < len(lx.src) && (isIdentChar(lx.src[lx.pos]) || lx.src[lx.pos] == '.') {
			lx.advance(1)
		}
		t.kind, t.text = tokIdent, string(lx.src[start:lx.pos])
	case c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.':
		lx.advance(1)
		for lx.pos < len(lx.src) {
			d := lx.src[lx.pos]
			prev := lx.src[lx.pos-1]
			if isIdentChar(d) || d == '.' || (d == '-' || d == '+') && (prev == 'e' || prev == 'E') {
				lx.advance(1)
				continue
			}
			break
		}
		t.kind, t.text = tokNumber, string(lx.src[start:lx.pos])
		if t.text == "-" || t.text == "+" || t.text == "." {
			return t, lx.errorf(t.line, t.col, "%q is not a number", t.text)
		}
	case c == '"' || c == '\'':
		s, err := lx.str(c)
		if err != nil {
			return t, err
		}
		t.kind, t.text = tokString, s
	default:
		r, _ := utf8.DecodeRune(lx.src[lx.pos:])
		return t, lx.errorf(t.line, t.col, "unexpected character %q", r)
	}
	return t, nil
}

// str reads a quoted string with C-style escapes (\n \t \\ \" \' \xHH \ooo
// \uXXXX ...); the opening quote is at lx.pos.
func (lx *lexer) str(quote byte) (string, error) {
	line, col := lx.line, lx.col
	lx.advance(1)
	var sb strings.Builder
	for {
		if lx.pos >= len(lx.src) || lx.src[lx.pos] == '\n' {
			return "", lx.errorf(line, col, "unterminated string")
		}
		c := lx.src[lx.pos]
		if c == quote {
			lx.advance(1)
			return sb.String(), nil
		}
		if c != '\\' {
			sb.WriteByte(c)
			lx.advance(1)
			continue
		}
		eline, ecol := lx.line, lx.col
		if lx.pos+1 >= len(lx.src) {
			return "", lx.errorf(line, col, "unterminated string")
		}
		e := lx.src[lx.pos+1]
		lx.advance(2)
		if simple, ok := map[byte]byte{'n': '\n', 't': '\t', 'r': '\r', 'a': '\a', 'b': '\b', 'f': '\f',
			'v': '\v', '\\': '\\', '\'': '\'', '"': '"', '?': '?'}[e]; ok {
			sb.WriteByte(simple)
			continue
		}
		digits := func(max int, ok func(byte) bool) string {
			s := lx.pos
			for lx.pos < len(lx.src) && lx.pos-s < max && ok(lx.src[lx.pos]) {
				lx.advance(1)
			}
			return string(lx.src[s:lx.pos])
		}
		isHex := func(b byte) bool { return strings.IndexByte("0123456789abcdefABCDEF", b) >= 0 }
		switch {
		case e >= '0' && e <= '7':
			lx.pos--
			lx.col--
			v, _ := strconv.ParseUint(digits(3, func(b byte) bool { return b >= '0' && b <= '7' }), 8, 16)
			if v > 0xff {
				return "", lx.errorf(eline, ecol, "octal escape out of range")
			}
			sb.WriteByte(byte(v))
		case e == 'x' || e == 'X':
			h := digits(2, isHex)
			if h == "" {
				return "", lx.errorf(eline, ecol, `\x needs hex digits`)
			}
			v, _ := strconv.ParseUint(h, 16, 8)
			sb.WriteByte(byte(v))
		case e == 'u' || e == 'U':
			n := 4
			if e == 'U' {
				n = 8
			}
			h := digits(n, isHex)
			v, err := strconv.ParseUint(h, 16, 32)
			if len(h) != n || err != nil || !utf8.ValidRune(rune(v)) {
				return "", lx.errorf(eline, ecol, `bad \%c escape`, e)
			}
			sb.WriteRune(rune(v))
		default:
			return "", lx.errorf(eline, ecol, "unknown escape \\%c", e)
		}
	}
}

// tnode is one field of the text tree: a message (kids) or a scalar (val).
type tnode struct {
	name  string
	at    token // the field name, for errors
	isMsg bool
	kids  []*tnode
	val   token
}

type textParser struct {
	lx  lexer
	tok token // lookahead
}

func (p *textParser) advance() error {
	t, err := p.lx.next()
	p.tok = t
	return err
}

func (p *textParser) errorf(t token, format string, args ...any) error {
	return &SyntaxError{Line: t.line, Col: t.col, Msg: fmt.Sprintf(format, args...)}
}

func (p *textParser) isPunct(s string) bool { return p.tok.kind == tokPunct && p.tok.text == s }

// message parses fields up to the closing punctuation ("" at top level).
func (p *textParser) message(close string, depth int, open token) ([]*tnode, error) {
	var kids []*tnode
	for {
		if close == "" && p.tok.kind == tokEOF {
			return kids, nil
		}
		if close != "" && p.isPunct(close) {
			return kids, p.advance()
		}
		if p.tok.kind == tokEOF {
			return nil, p.errorf(p.tok, "missing %q for the %q opened at %d:%d", close, open.text, open.line, open.col)
		}
		if p.tok.kind != tokIdent {
			return nil, p.errorf(p.tok, "expected a field name, found %s", p.tok.describe())
		}
		name := p.tok
		if err := p.advance(); err != nil {
			return nil, err
		}
		colon := p.isPunct(":")
		if colon {
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		if p.isPunct("[") { // a list: name: [v, v] or name: [{...}, {...}]
			if err := p.advance(); err != nil {
				return nil, err
			}
			for !p.isPunct("]") {
				n, err := p.value(name, depth, true)
				if err != nil {
					return nil, err
				}
				kids = append(kids, n)
				if p.isPunct(",") {
					if err := p.advance(); err != nil {
						return nil, err
					}
				} else if !p.isPunct("]") {
					return nil, p.errorf(p.tok, "expected \",\" or \"]\" in the list %q, found %s", name.text, p.tok.describe())
				}
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
		} else {
			n, err := p.value(name, depth, colon)
			if err != nil {
				return nil, err
			}
			kids = append(kids, n)
		}
		if p.isPunct(",") || p.isPunct(";") {
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
	}
}

// value parses a field's value: a nested message or a scalar.
func (p *textParser) value(name token, depth int, colon bool) (*tnode, error) {
	n := &tnode{name: name.text, at: name}
	if p.isPunct("{") || p.isPunct("<") {
		if depth >= maxTextDepth {
			return nil, p.errorf(p.tok, "messages nested deeper than %d levels", maxTextDepth)
		}
		open := p.tok
		close := map[string]string{"{": "}", "<": ">"}[open.text]
		if err := p.advance(); err != nil {
			return nil, err
		}
		kids, err := p.message(close, depth+1, open)
		if err != nil {
			return nil, err
		}
		n.isMsg, n.kids = true, kids
		return n, nil
	}
	if !colon {
		return nil, p.errorf(p.tok, "expected \":\" or \"{\" after %q, found %s", name.text, p.tok.describe())
	}
	switch p.tok.kind {
	case tokIdent, tokNumber:
		n.val = p.tok
		return n, p.advance()
	case tokString:
		n.val = p.tok
		var sb strings.Builder
		for p.tok.kind == tokString { // adjacent strings concatenate
			sb.WriteString(p.tok.text)
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		n.val.text = sb.String()
		return n, nil
	}
	return nil, p.errorf(p.tok, "expected a value for %q, found %s", name.text, p.tok.describe())
}

// parseText parses a whole prototxt into the top-level fields.
func parseText(src []byte) ([]*tnode, error) {
	p := &textParser{lx: lexer{src: src, line: 1, col: 1}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	return p.message("", 0, token{})
}

// textMsg is the [fields] cursor over one text message.
type textMsg struct {
	kids   []*tnode
	schema *schema
	i      int
	cur    *tnode
	info   fieldInfo
}

func (m *textMsg) next() (bool, error) {
	if m.i >= len(m.kids) {
		return false, nil
	}
	m.cur = m.kids[m.i]
	m.i++
	m.info = m.schema.fields[m.cur.name] // zero (field 0, skipped) when unknown
	return true, nil
}

func (m *textMsg) field() protowire.Number { return m.info.num }
func (m *textMsg) skip() error             { return nil }

func (m *textMsg) errorf(format string, args ...any) error {
	t := m.cur.at
	if !m.cur.isMsg && m.cur.val.line > 0 {
		t = m.cur.val
	}
	return &SyntaxError{Line: t.line, Col: t.col, Msg: fmt.Sprintf(format, args...)}
}

// scalar returns the current field's value token, refusing a message.
func (m *textMsg) scalar(what string) (token, error) {
	if m.cur.isMsg {
		return token{}, m.errorf("%s (%s) takes a value, not a { } message", m.cur.name, what)
	}
	return m.cur.val, nil
}

// integer reads an integer in [lo, hi]: decimal, hex (0x) or octal (leading
// 0) with an optional sign, as the protobuf text format writes them (not Go's
// 0b, 0o or 1_000), or, for an enum field, one of its value names.
func (m *textMsg) integer(what string, lo, hi int64) (int64, error) {
	t, err := m.scalar(what)
	if err != nil {
		return 0, err
	}
	if t.kind == tokIdent && m.info.enum != nil {
		if v, ok := m.info.enum[t.text]; ok {
			return int64(v), nil
		}
		return 0, m.errorf("%s: unknown value %s (one of %s)", m.cur.name, t.text, enumNames(m.info.enum))
	}
	if t.kind != tokNumber {
		return 0, m.errorf("%s: expected an integer, found %s", m.cur.name, t.describe())
	}
	body := strings.ToLower(strings.TrimLeft(t.text, "+-"))
	v, err := strconv.ParseInt(t.text, 0, 64)
	if err != nil || strings.ContainsRune(body, '_') || strings.HasPrefix(body, "0b") || strings.HasPrefix(body, "0o") {
		return 0, m.errorf("%s: %s is not an integer in range [%d, %d]", m.cur.name, t.text, lo, hi)
	}
	if v < lo || v > hi {
		return 0, m.errorf("%s: %d is out of range [%d, %d]", m.cur.name, v, lo, hi)
	}
	return v, nil
}

func (m *textMsg) int32v(what string) (int, error) {
	v, err := m.integer(what, math.MinInt32, math.MaxInt32)
	return int(v), err
}

func (m *textMsg) uint32v(what string) (int, error) {
	v, err := m.integer(what, 0, math.MaxUint32)
	return int(v), err
}

// enum reads an enum field by name or number; the number must be one
// caffe.proto declares, as Caffe's text parser requires.
func (m *textMsg) enum(what string, values map[string]int) (int, error) {
	v, err := m.int32v(what)
	if err == nil && !hasEnumValue(values, v) {
		err = m.errorf("%s: %d is not a value caffe.proto declares (%s)", m.cur.name, v, enumPairs(values))
	}
	return v, err
}

func (m *textMsg) boolean(what string) (bool, error) {
	t, err := m.scalar(what)
	if err != nil {
		return false, err
	}
	switch t.text {
	case "true", "True", "t", "1":
		return true, nil
	case "false", "False", "f", "0":
		return false, nil
	}
	return false, m.errorf("%s: expected true or false, found %s", m.cur.name, t.describe())
}

func (m *textMsg) str(what string) (string, error) {
	t, err := m.scalar(what)
	if err != nil {
		return "", err
	}
	if t.kind != tokString {
		return "", m.errorf("%s: expected a quoted string, found %s", m.cur.name, t.describe())
	}
	return t.text, nil
}

// number parses a floating-point literal: 1, -2.5, 1e-5, .5, 1.0f, inf, nan.
func (m *textMsg) number(what string) (float64, error) {
	t, err := m.scalar(what)
	if err != nil {
		return 0, err
	}
	s := t.text
	if t.kind == tokNumber || t.kind == tokIdent {
		neg := strings.HasPrefix(s, "-")
		body := strings.TrimLeft(s, "+-")
		switch strings.ToLower(body) {
		case "inf", "infinity", "nan":
			v, _ := strconv.ParseFloat(body, 64)
			if neg {
				v = -v
			}
			return v, nil
		}
		if t.kind == tokNumber {
			if !strings.HasPrefix(strings.ToLower(body), "0x") {
				s = strings.TrimRight(s, "fF")
			}
			if v, err := strconv.ParseFloat(s, 64); err == nil {
				return v, nil
			}
			if v, err := strconv.ParseInt(s, 0, 64); err == nil {
				return float64(v), nil
			}
		}
	}
	return 0, m.errorf("%s: expected a number, found %s", m.cur.name, t.describe())
}

func (m *textMsg) float(what string) (float64, error) {
	v, err := m.number(what)
	return float64(float32(v)), err // a float field holds a float32, as in a caffemodel
}

func (m *textMsg) sub(what string) (fields, error) {
	if !m.cur.isMsg {
		return nil, m.errorf("%s (%s) is a message: write %s { ... }", m.cur.name, what, m.cur.name)
	}
	s := m.info.sub
	if s == nil {
		s = &schema{}
	}
	return &textMsg{kids: m.cur.kids, schema: s}, nil
}

func (m *textMsg) uint32s(dst []int, what string) ([]int, error) {
	v, err := m.uint32v(what)
	return append(dst, v), err
}

func (m *textMsg) dims(dst []int, what string) ([]int, error) {
	v, err := m.integer(what, 0, maxDim)
	return append(dst, int(v)), err
}

func (m *textMsg) floats(dst []float64, what string) ([]float64, error) {
	v, err := m.float(what)
	return append(dst, v), err
}

func (m *textMsg) float32s(dst []float32, what string) ([]float32, error) {
	v, err := m.number(what)
	return append(dst, float32(v)), err
}

func (m *textMsg) float64s(dst []float64, what string) ([]float64, error) {
	v, err := m.number(what)
	return append(dst, v), err
}

// ParsePrototxt parses a net definition in the protobuf text format: the
// legacy `input:` + `input_dim:` form of the ResNet deploy files,
// `input_shape { dim: ... }`, `Input` layers, and every layer parameter
// residual uses. Unknown fields are ignored; type errors are
// [*SyntaxError] with line and column. Nets in the legacy V1 format
// (`layers { ... }`) are refused with a [*LegacyFormatError].
func ParsePrototxt(r io.Reader) (*Net, error) {
	src, err := io.ReadAll(io.LimitReader(r, maxTextSize+1))
	if err != nil {
		return nil, fmt.Errorf("caffe: reading prototxt: %w", err)
	}
	if len(src) > maxTextSize {
		return nil, &SyntaxError{Line: 1, Col: 1, Msg: fmt.Sprintf("larger than %d MiB: not a prototxt", maxTextSize>>20)}
	}
	if !utf8.Valid(src) || strings.IndexByte(string(src), 0) >= 0 {
		return nil, &SyntaxError{Line: 1, Col: 1, Msg: "binary data, not a text prototxt (a .caffemodel is given with -caffemodel)"}
	}
	kids, err := parseText(src)
	if err != nil {
		return nil, err
	}
	m := &textMsg{kids: kids, schema: netSchema}
	n := &Net{}
	var inputs []string
	var inputDims []int
	var inputShapes [][]int
	var first *tnode
	for {
		ok, err := m.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		switch m.field() {
		case netLayersV1:
			return nil, &LegacyFormatError{Kind: "prototxt"}
		case netName:
			n.Name, err = m.str("name")
		case netInput:
			var s string
			s, err = m.str("input")
			inputs = append(inputs, s)
		case netInputDim:
			inputDims, err = m.dims(inputDims, "input_dim")
		case netInputShape:
			var s fields
			if s, err = m.sub("input_shape"); err == nil {
				var shape []int
				shape, err = decodeShape(s)
				inputShapes = append(inputShapes, shape)
			}
		case netLayer:
			var s fields
			if s, err = m.sub("layer"); err == nil {
				var l *Layer
				l, err = decodeLayer(s)
				n.Layers = append(n.Layers, l)
			}
		}
		if err != nil {
			return nil, err
		}
		if first == nil && m.field() != 0 {
			first = m.cur
		}
	}
	if n.Inputs, err = netInputs(inputs, inputDims, inputShapes); err != nil {
		at := token{line: 1, col: 1}
		if first != nil {
			at = first.at
		}
		return nil, &SyntaxError{Line: at.line, Col: at.col, Msg: err.Error()}
	}
	if len(n.Layers) == 0 {
		return nil, &SyntaxError{Line: 1, Col: 1, Msg: "no `layer { ... }` entries: not a Caffe net definition"}
	}
	return n, nil
}

func enumNames(e map[string]int) string {
	names := make([]string, 0, len(e))
	for k := range e {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
