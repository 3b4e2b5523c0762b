package preprocess

// A lossless WebP (VP8L, RFC 9649 section 3) carries its entropy coding
// before its pixels: the transforms with their sub-images, the colour
// cache size, the meta prefix codes (an entropy image that maps 2^b x 2^b
// tiles to groups of five prefix codes) and every group's codes. What
// x/image/vp8l allocates for those tables depends on them alone (how many
// groups, how many symbols each code has), so vp8lMemory reads them, and
// nothing of the pixels that follow, to bound that memory for the image at
// hand instead of for the worst file of its size (which can reach 138 MB
// however small its pixels are: see vp8lMaxGroups).
//
// The walk follows the bitstream as the spec defines it and counts what
// x/image/vp8l v0.48.0 allocates for each part (TestVP8LMemory and
// FuzzReadHeader check the count against what it really allocates). It
// needs no pixel values except the entropy image's group indices, and
// those only as a set: every pixel of an entropy-coded image is a literal
// decoded from the stream or a copy (LZ77 or colour cache) of one decoded
// before it (an unset cache entry is 0), so the literals, with 0, contain
// every index. Anything the walk cannot follow makes it give up, and the
// caller counts the worst case.

// vp8lBits reads the VP8L bitstream: least significant bit first.
type vp8lBits struct {
	b   []byte
	i   int
	acc uint64
	n   uint
	eof bool
}

func (r *vp8lBits) read(n uint) uint32 {
	for r.n < n {
		if r.i >= len(r.b) {
			r.eof = true
			return 0
		}
		r.acc |= uint64(r.b[r.i]) << r.n
		r.i++
		r.n += 8
	}
	v := uint32(r.acc & (1<<n - 1))
	r.acc >>= n
	r.n -= n
	return v
}

// vp8lCode is a canonical prefix code: count[l] codes of length l, their
// symbols in code order. A code of one symbol has length 0 (it reads no
// bits), as in the spec and x/image/vp8l.
type vp8lCode struct {
	count [16]uint16
	syms  []uint16
}

// build makes the canonical code of lengths (0: unused symbol), or with
// decode false only counts its symbols. ok is false for no symbol at all
// and for an over-subscribed code, which x/image/vp8l refuses.
func (c *vp8lCode) build(lengths []uint8, decode bool) (nsym int, ok bool) {
	c.count = [16]uint16{}
	last := 0
	for s, l := range lengths {
		if l != 0 {
			nsym++
			last = s
			c.count[l]++
		}
	}
	switch nsym {
	case 0:
		return 0, false
	case 1: // one symbol: a code of length 0
		c.count = [16]uint16{0: 1}
		if decode {
			c.syms = append(c.syms[:0], uint16(last))
		}
		return 1, true
	}
	left := 1
	for l := 1; l < 16; l++ {
		left = 2*left - int(c.count[l])
		if left < 0 {
			return nsym, false
		}
	}
	if !decode {
		return nsym, true
	}
	var start [16]int // where each length's symbols begin in code order
	for l := 2; l < 16; l++ {
		start[l] = start[l-1] + int(c.count[l-1])
	}
	if cap(c.syms) < nsym {
		c.syms = make([]uint16, nsym)
	}
	c.syms = c.syms[:nsym]
	for s, l := range lengths {
		if l != 0 {
			c.syms[start[l]] = uint16(s)
			start[l]++
		}
	}
	return nsym, true
}

// simple makes the code of one or two symbols given in order (the second,
// if any, has code 1).
func (c *vp8lCode) simple(syms ...uint16) {
	c.count = [16]uint16{}
	c.syms = append(c.syms[:0], syms...)
	if len(syms) == 1 {
		c.count[0] = 1
	} else {
		c.count[1] = 2
	}
}

// next decodes a symbol; ok is false at the end of the data and for a code
// the prefix code does not have (an incomplete code).
func (c *vp8lCode) next(r *vp8lBits) (sym int, ok bool) {
	if c.count[0] == 1 {
		return int(c.syms[0]), true
	}
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		code |= int(r.read(1))
		if r.eof {
			return 0, false
		}
		n := int(c.count[l])
		if code-first < n {
			return int(c.syms[index+code-first]), true
		}
		index += n
		first = (first + n) << 1
		code <<= 1
	}
	return 0, false
}

// vp8lWalk counts x/image/vp8l's allocations while it walks a bitstream.
type vp8lWalk struct {
	r       vp8lBits
	bytes   int64
	lens    []uint8 // scratch: one code's lengths
	clc     vp8lCode
	codes   [5]vp8lCode // the group of the sub-image being walked
	measure vp8lCode    // a top-level code, only measured
	failed  bool
}

// alloc counts an allocation of n bytes as the Go allocator sizes it
// (small objects are rounded up to a size class, at most 12.5% more).
func (w *vp8lWalk) alloc(n int64) {
	if n > 0 {
		w.bytes += n + n/8 + 16
	}
}

func (w *vp8lWalk) fail() bool { w.failed = true; return false }

// vp8lAlphabet is the alphabet size of a group's five codes: green with
// the length codes (and the colour cache), red, blue, alpha, distance.
var vp8lAlphabet = [5]int{256 + 24, 256, 256, 256, 40}

// codeLengthOrder is the order in which the code-length code's lengths are
// stored (RFC 9649 section 3.7.2.1.2).
var codeLengthOrder = [19]uint8{17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// code reads one prefix code of alphabet n, into c if it is to be decoded
// from (else c is nil), counting what x/image/vp8l allocates for it: keep
// is whether x/image/vp8l builds it (it only reads the codes of groups no
// tile uses).
func (w *vp8lWalk) code(c *vp8lCode, n int, keep bool) bool {
	r := &w.r
	if r.read(1) == 1 { // simple code: one or two symbols
		two := r.read(1) == 1
		s0 := uint16(r.read(uint(7*r.read(1) + 1)))
		syms := []uint16{s0}
		if two {
			syms = append(syms, uint16(r.read(8)))
		}
		if r.eof {
			return w.fail()
		}
		if keep {
			for _, s := range syms {
				if int(s) >= n {
					return w.fail()
				}
			}
			w.alloc(8 * int64(2*len(syms)-1)) // the tree's nodes
		}
		if c != nil {
			c.simple(syms...)
		}
		return true
	}
	var clLens [19]uint8
	nc := int(r.read(4)) + 4
	for i := range nc {
		clLens[codeLengthOrder[i]] = uint8(r.read(3))
	}
	nsym, ok := w.clc.build(clLens[:], true)
	if !ok || r.eof {
		return w.fail()
	}
	w.alloc(8 * int64(2*nsym-1)) // the code-length code's nodes
	if nsym > 1 {
		w.alloc(4 * 19) // and its codes
	}
	w.alloc(4 * int64(n)) // the code lengths
	lens := w.lens[:0]
	for range n {
		lens = append(lens, 0)
	}
	w.lens = lens
	maxSym := n
	if r.read(1) == 1 {
		maxSym = int(r.read(uint(2+2*r.read(3)))) + 2
		if maxSym > n {
			return w.fail()
		}
	}
	prev := uint8(8) // code 16 before any non-zero length repeats 8
	for s := 0; s < n && maxSym > 0; maxSym-- {
		l, ok := w.clc.next(r)
		if !ok {
			return w.fail()
		}
		if l < 16 {
			lens[s] = uint8(l)
			s++
			if l != 0 {
				prev = uint8(l)
			}
			continue
		}
		extra, base := [3]uint{2, 3, 7}[l-16], [3]int{3, 3, 11}[l-16]
		rep := int(r.read(extra)) + base
		if r.eof || s+rep > n {
			return w.fail()
		}
		v := uint8(0)
		if l == 16 {
			v = prev
		}
		for ; rep > 0; rep-- {
			lens[s] = v
			s++
		}
	}
	if r.eof {
		return w.fail()
	}
	if !keep {
		return true
	}
	if c == nil {
		c = &w.measure
	}
	nsym, ok = c.build(lens, c != &w.measure)
	if !ok {
		return w.fail()
	}
	w.alloc(8 * int64(2*nsym-1)) // the tree's nodes
	if nsym > 1 {
		w.alloc(4 * int64(n)) // its codes
	}
	return true
}

// image walks an entropy-coded image of w x h pixels: its colour cache, its
// prefix codes and, for a sub-image (not top), its pixels. For the top-level
// image it stops before the pixels; indices, if not nil, collects the
// literal group indices (red << 8 | green) of an entropy image.
func (w *vp8lWalk) image(width, height int, minCap int64, top bool, indices []uint64) bool {
	r := &w.r
	ccBits := 0
	if r.read(1) == 1 {
		ccBits = int(r.read(4))
		if ccBits < 1 || ccBits > 11 {
			return w.fail()
		}
		w.alloc(4 << ccBits) // the colour cache
	}
	green := vp8lAlphabet[0]
	if ccBits > 0 {
		green += 1 << ccBits
	}
	if top {
		return w.groups(width, height, green)
	}
	w.alloc(5 * (512 + 24)) // one group: its five codes' lookup tables and node slices
	for i := range w.codes {
		n := vp8lAlphabet[i]
		if i == 0 {
			n = green
		}
		if !w.code(&w.codes[i], n, true) {
			return false
		}
	}
	w.alloc(max(minCap, 4*int64(width)*int64(height))) // the pixels
	total := int64(width) * int64(height)
	for p := int64(0); p < total; {
		g, ok := w.codes[0].next(r)
		if !ok {
			return w.fail()
		}
		switch {
		case g < 256: // a literal: red, blue, alpha follow
			red, ok1 := w.codes[1].next(r)
			_, ok2 := w.codes[2].next(r)
			_, ok3 := w.codes[3].next(r)
			if !ok1 || !ok2 || !ok3 {
				return w.fail()
			}
			if indices != nil {
				i := red<<8 | g
				indices[i/64] |= 1 << (i % 64)
			}
			p++
		case g < 256+24: // a backward reference: length, then distance
			n := w.prefixValue(g - 256)
			d, ok := w.codes[4].next(r)
			if !ok {
				return w.fail()
			}
			w.prefixValue(d)
			if r.eof || p+int64(n) > total {
				return w.fail()
			}
			p += int64(n)
		default: // a colour cache entry (the code's alphabet has no symbol past the cache)
			p++
		}
	}
	return !r.eof || w.fail()
}

// prefixValue reads the extra bits of an LZ77 length or distance symbol.
func (w *vp8lWalk) prefixValue(sym int) int {
	if sym < 4 {
		return sym + 1
	}
	extra := uint(sym-2) >> 1
	return (2+sym&1)<<extra + int(w.r.read(extra)) + 1
}

// groups walks the top-level image's meta prefix codes and its groups.
func (w *vp8lWalk) groups(width, height, green int) bool {
	r := &w.r
	maxIndex, kept, mapped := 0, 1, false
	var used []uint64 // the group indices tiles may use (a 2^16-bit set)
	if r.read(1) == 1 {
		bits := int(r.read(3)) + 2
		tw, th := (width+1<<bits-1)>>bits, (height+1<<bits-1)>>bits
		used = make([]uint64, 1<<16/64)
		if !w.image(tw, th, 0, false, used) {
			return false
		}
		used[0] |= 1 // 0: what an unset colour cache entry holds
		kept = 0
		for i, word := range used {
			for ; word != 0; word &= word - 1 {
				kept++
				maxIndex = 64*i + trailingZeros(word)
			}
		}
		if maxIndex >= vp8lMaxGroups {
			return true // x/image/vp8l refuses the image here: nothing more is allocated
		}
		if mapped = maxIndex >= 1000 || maxIndex >= tw*th; mapped {
			w.alloc(2 * int64(maxIndex+1)) // the index mapping: only the groups tiles use are kept
		} else {
			kept = maxIndex + 1
		}
	}
	w.alloc(int64(kept) * 5 * (512 + 24)) // the groups
	for i := 0; i <= maxIndex; i++ {
		keep := !mapped || used[i/64]&(1<<(i%64)) != 0
		for j := range 5 {
			n := vp8lAlphabet[j]
			if j == 0 {
				n = green
			}
			if !w.code(nil, n, keep) {
				return false
			}
		}
	}
	w.alloc(4 * int64(width) * int64(height)) // the pixels
	return true
}

func trailingZeros(x uint64) int {
	n := 0
	for x&1 == 0 {
		x >>= 1
		n++
	}
	return n
}

// vp8lMemory bounds what x/image/vp8l allocates to decode the bitstream b
// (after the 5-byte VP8L header, or an ALPH chunk's data after its first
// byte) of a w x h image. ok is false when the walk cannot follow the
// stream (x/image/vp8l then refuses it, or does something the walk does
// not foresee): the caller counts the worst case (vp8lWorst). eof says the
// data ends before the pixels: x/image/vp8l, which reads the same bits,
// fails there too.
func vp8lMemory(b []byte, w, h int) (bytes int64, ok, eof bool) {
	walk := &vp8lWalk{r: vp8lBits{b: b}}
	walk.alloc(4096) // the bufio.Reader x/image/vp8l reads through
	width := w
	var seen [4]bool
	unpack := false
	for walk.r.read(1) == 1 && !walk.r.eof {
		t := walk.r.read(2)
		if seen[t] {
			return 0, false, false
		}
		seen[t] = true
		switch t {
		case 0, 1: // predictor, cross-colour: a sub-image of one pixel per tile
			bits := int(walk.r.read(3)) + 2
			if !walk.image((width+1<<bits-1)>>bits, (h+1<<bits-1)>>bits, 0, false, nil) {
				return 0, false, walk.r.eof
			}
		case 3: // colour indexing: a palette, then pixels packed by its size
			n := int(walk.r.read(8)) + 1
			if !walk.image(n, 1, 4*256, false, nil) {
				return 0, false, walk.r.eof
			}
			bits := 0
			switch {
			case n <= 2:
				bits = 3
			case n <= 4:
				bits = 2
			case n <= 16:
				bits = 1
			}
			if bits > 0 {
				width = (width + 1<<bits - 1) >> bits
				unpack = true
			}
		}
	}
	if walk.r.eof || !walk.image(width, h, 0, true, nil) || walk.failed {
		return 0, false, walk.r.eof
	}
	if unpack {
		walk.alloc(4 * int64(w) * int64(h)) // the colour-indexing transform unpacks into a new image
	}
	return walk.bytes, true, false
}
