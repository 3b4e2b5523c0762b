package kernels

import (
	"math"
	"testing"

	"github.com/x448/float16"
)

// TestWidenF16Mixed puts each kind of binary16 value (zeros, subnormals,
// the normal extremes, infinities, NaNs) at every position of a block of
// otherwise normal values: vector implementations that take a fast path for
// a block of normal numbers (WebAssembly's) must notice the odd one out
// wherever it is. TestWidenF16's ascending values never mix kinds in a
// block of 8 or 16.
func TestWidenF16Mixed(t *testing.T) {
	odd := []uint16{0x0000, 0x8000, 0x0001, 0x03ff, 0x83ff, 0x0400, 0x7bff, 0xfbff,
		0x7c00, 0xfc00, 0x7c01, 0x7e00, 0xfe00, 0x7fff}
	const block = 32
	src := make([]uint16, 0, len(odd)*block*block)
	for _, h := range odd {
		for pos := 0; pos < block; pos++ {
			for i := 0; i < block; i++ {
				v := uint16(0x3c00 + 37*i) // normal numbers around 1
				if i == pos {
					v = h
				}
				src = append(src, v)
			}
		}
	}
	dst := newGuarded(len(src))
	WidenF16(dst.s()[:len(src)], src)
	dst.check(t, "WidenF16/"+Impl())
	for i, h := range src {
		want := float16.Frombits(h).Float32()
		if got := dst.s()[i]; math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("WidenF16/%s: [%d] = %#04x -> %#08x, want %#08x", Impl(), i, h, math.Float32bits(got), math.Float32bits(want))
		}
	}
}
