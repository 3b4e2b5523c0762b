package convert

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/x448/float16"
)

// f16Values are all finite non-negative float16 values, ascending, with their bits.
var f16Values, f16Bits = func() ([]float64, []uint16) {
	var v []float64
	var b []uint16
	for h := uint16(0); h <= 0x7bff; h++ {
		v = append(v, float64(float16.Frombits(h).Float32()))
		b = append(b, h)
	}
	return v, b
}()

// naiveF16 rounds x to float16 by searching the table of all float16 values:
// the nearest one, ties to the even bit pattern. Overflow is not handled
// (callers keep |x| <= 65504).
func naiveF16(x float64) uint16 {
	sign := uint16(0)
	if math.Signbit(x) {
		sign, x = 0x8000, -x
	}
	i := sort.SearchFloat64s(f16Values, x) // first value >= x
	if i < len(f16Values) && f16Values[i] == x {
		return sign | f16Bits[i]
	}
	lo, hi := f16Values[i-1], f16Values[i]
	switch dl, dh := x-lo, hi-x; {
	case dl < dh:
		return sign | f16Bits[i-1]
	case dh < dl:
		return sign | f16Bits[i]
	}
	if f16Bits[i-1]&1 == 0 {
		return sign | f16Bits[i-1]
	}
	return sign | f16Bits[i]
}

func TestRoundF16(t *testing.T) {
	// The double-rounding trap: float32(x) is exactly a float16 tie.
	x := 1 + math.Ldexp(1, -11) + math.Ldexp(1, -30)
	if got, want := uint16(RoundF16(x)), uint16(0x3c01); got != want {
		t.Errorf("RoundF16(1+2^-11+2^-30) = %#04x, want %#04x (1+2^-10)", got, want)
	}
	if naive := uint16(float16.Fromfloat32(float32(x))); naive == 0x3c01 {
		t.Errorf("the two-step conversion is correct here: the trap case no longer tests anything")
	}
	var inputs []float64
	// Midpoints between neighbouring float16 values, and values a hair off them,
	// in the normal and subnormal ranges.
	for i := 1; i < len(f16Values); i += 7 {
		lo, hi := f16Values[i-1], f16Values[i]
		m := (lo + hi) / 2
		inputs = append(inputs, m, math.Nextafter(m, 0), math.Nextafter(m, math.Inf(1)),
			m*(1+0x1p-40), m*(1-0x1p-40), m+(hi-lo)*0x1p-20, m-(hi-lo)*0x1p-20, lo, hi)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for i := 0; i < 200000; i++ {
		// Log-uniform magnitudes from 2^-30 to 2^15 (below float16 overflow).
		inputs = append(inputs, math.Ldexp(1+rng.Float64(), rng.IntN(45)-30))
	}
	inputs = append(inputs, 0, 1e-30, 65504, 65500.1)
	bad := 0
	for _, x := range inputs {
		for _, v := range []float64{x, -x} {
			got, want := uint16(RoundF16(v)), naiveF16(v)
			if got != want && bad < 10 {
				t.Errorf("RoundF16(%v) = %#04x, want %#04x", v, got, want)
				bad++
			}
		}
	}
}

func TestEncodeReport(t *testing.T) {
	tie := 1 + math.Ldexp(1, -11) // ties to 1: relative error 2^-11/(1+2^-11)
	vals := []float64{1, tie, 1e-9, 0, -3, 6.1e-5}
	buf := make([]byte, 2*len(vals))
	rep := encodeF16(buf, vals)
	wantErr := math.Ldexp(1, -11) / tie
	if rep.Flushed != 1 {
		t.Errorf("flushed %d, want 1 (1e-9)", rep.Flushed)
	}
	// 6.1e-5 is a float16 subnormal: its error is larger than the tie's.
	sub := float64(float16.Frombits(naiveF16(6.1e-5)).Float32())
	if e := math.Abs(sub-6.1e-5) / 6.1e-5; e > wantErr {
		wantErr = e
	}
	if rep.MaxRelError != wantErr {
		t.Errorf("max rel error %v, want %v", rep.MaxRelError, wantErr)
	}
	if got := uint16(buf[2]) | uint16(buf[3])<<8; got != 0x3c00 {
		t.Errorf("value 1 stored as %#04x, want 0x3c00 (little-endian)", got)
	}
	if got := uint16(buf[8]) | uint16(buf[9])<<8; got != 0xc200 {
		t.Errorf("-3 stored as %#04x, want 0xc200", got)
	}
	if r := encodeF16(make([]byte, 8), []float64{65504, -65504.5, 1e6, 3}); r.Overflow != 2 {
		t.Errorf("overflows %d, want 2", r.Overflow)
	}
}

// BenchmarkEncodeF16 measures the rounding and its report per value
// (SetBytes: 8 bytes of float64 input per value).
func BenchmarkEncodeF16(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]float64, 1<<20)
	for i := range src {
		src[i] = rng.NormFloat64() * 0.03
	}
	dst := make([]byte, 2*len(src))
	b.SetBytes(8 * int64(len(src)))
	for b.Loop() {
		encodeF16(dst, src)
	}
}

// TestEncodeParallel: the split encoder writes the same bytes and the same
// report as one sequential pass.
func TestEncodeParallel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	src := make([]float64, 3*parallelChunk+17)
	for i := range src {
		src[i] = rng.NormFloat64() * math.Ldexp(1, -rng.IntN(30))
	}
	src[len(src)-5] = 1e-12 // flushed, in the last part
	for _, f32 := range []bool{false, true} {
		size, seq := 2, encodeF16
		if f32 {
			size, seq = 4, encodeF32
		}
		a, b := make([]byte, size*len(src)), make([]byte, size*len(src))
		ra, rb := seq(a, src), encode(b, src, f32)
		if !bytes.Equal(a, b) || ra != rb {
			t.Errorf("f32=%v: parallel report %+v, sequential %+v (bytes equal: %v)", f32, rb, ra, bytes.Equal(a, b))
		}
		if (!f32 && ra.Flushed == 0) || ra.MaxRelIndex < 0 {
			t.Errorf("f32=%v: report %+v: the test values exercise nothing", f32, ra)
		}
	}
}

// The value that double rounding through float32 gets wrong.
func ExampleRoundF16() {
	x := 1 + 0x1p-11 + 0x1p-30
	fmt.Printf("direct:       %#04x\n", uint16(RoundF16(x)))
	fmt.Printf("via float32:  %#04x\n", uint16(float16.Fromfloat32(float32(x))))
	// Output:
	// direct:       0x3c01
	// via float32:  0x3c00
}
