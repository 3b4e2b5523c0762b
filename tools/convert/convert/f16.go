package convert

import (
	"encoding/binary"
	"math"
	"runtime"
	"sync"

	"github.com/x448/float16"
)

// MaxF16 is the largest finite float16 value. A tensor holding a value of
// larger magnitude is stored as float32.
const MaxF16 = 65504

// RoundF16 rounds x to the nearest float16 (ties to even), directly from
// the float64's bits. Going float64 -> float32 -> float16 with
// round-to-nearest twice can be wrong: x = 1 + 2^-11 + 2^-30 rounds to the
// float32 1 + 2^-11, a float16 tie that then goes to 1 instead of 1 + 2^-10.
// |x| > 65504 gives an infinity (and NaN a NaN): [Write] keeps a tensor
// holding such a value in float32.
func RoundF16(x float64) float16.Float16 {
	return float16.Frombits(roundF16(x))
}

func roundF16(x float64) uint16 {
	b := math.Float64bits(x)
	sign := uint16(b>>48) & 0x8000
	exp := int(b>>52&0x7ff) - 1023
	frac := b & (1<<52 - 1)
	var h uint16
	var rem, half uint64
	switch {
	case exp == 1024: // infinity or NaN
		if frac != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp > 15:
		return sign | 0x7c00
	case exp >= -14: // normal: keep the top 10 of the 52 fraction bits
		h = uint16(exp+15)<<10 | uint16(frac>>42)
		rem, half = frac&(1<<42-1), 1<<41
	case exp >= -25: // subnormal: units of 2^-24, the implicit bit made explicit
		m := frac | 1<<52
		shift := uint(28 - exp) // 43..53
		h = uint16(m >> shift)
		rem, half = m&(1<<shift-1), 1<<(shift-1)
	default: // below half the smallest subnormal: zero
		return sign
	}
	// Round to nearest, ties to even; a carry out of the fraction correctly
	// steps to the next binade (or from subnormal to normal, or to infinity).
	if rem > half || rem == half && h&1 == 1 {
		h++
	}
	return sign | h
}

// f16Value[h] is the float64 value of the non-negative float16 with bits h.
var f16Value = func() *[0x8000]float64 {
	var t [0x8000]float64
	for h := range t {
		t[h] = float64(float16.Frombits(uint16(h)).Float32())
	}
	return &t
}()

// RoundReport is the rounding report of one tensor.
type RoundReport struct {
	DType       string  // "f16", or "f32" when a value overflows float16 (or for the mean)
	MaxRelError float64 // largest |r-x|/|x| over non-zero x whose rounded r is not zero
	MaxRelIndex int     // where it happened (-1 when no value was rounded)
	Flushed     int     // non-zero values that rounded to zero
	Overflow    int     // values with |x| > MaxF16 (the reason for DType f32)
	// The same over the values in float16's normal range (|x| >= 2^-14),
	// where correct rounding guarantees at most 2^-11; below it float16 is
	// subnormal, with fewer bits, and the relative error grows toward 1.
	MaxRelErrorNormal float64
	Subnormal         int // non-zero values stored as float16 subnormals
}

// minNormalF16 is the smallest normal float16, 2^-14.
const minNormalF16 = 0x1p-14

// encodeF16 rounds src to float16 into dst (2 bytes per value, little-endian)
// and reports the rounding. Values beyond MaxF16 are counted in Overflow (the
// caller then stores the tensor as float32 instead; the rest of the report is
// meaningless).
func encodeF16(dst []byte, src []float64) RoundReport {
	rep := RoundReport{DType: "f16", MaxRelIndex: -1}
	dst = dst[:2*len(src)]
	var maxErr, maxNormal float64
	for i, x := range src {
		h := roundF16(x)
		binary.LittleEndian.PutUint16(dst[2*i:], h)
		if x == 0 {
			continue
		}
		mag := h & 0x7fff
		if mag == 0 {
			rep.Flushed++
			continue
		}
		ax := math.Abs(x)
		if ax > MaxF16 {
			rep.Overflow++
		}
		d := math.Abs(f16Value[mag] - ax)
		// d/ax > max, without a division per value.
		if d > maxErr*ax {
			maxErr, rep.MaxRelIndex = d/ax, i
		}
		if ax >= minNormalF16 {
			if d > maxNormal*ax {
				maxNormal = d / ax
			}
		} else {
			rep.Subnormal++
		}
	}
	rep.MaxRelError, rep.MaxRelErrorNormal = maxErr, maxNormal
	return rep
}

// encodeF32 rounds src to float32 (nearest even) into dst (4 bytes per value).
func encodeF32(dst []byte, src []float64) RoundReport {
	rep := RoundReport{DType: "f32", MaxRelIndex: -1}
	for i, x := range src {
		f := float32(x)
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(f))
		if x == 0 {
			continue
		}
		if f == 0 {
			rep.Flushed++
			continue
		}
		if e := math.Abs(float64(f)-x) / math.Abs(x); e > rep.MaxRelError {
			rep.MaxRelError, rep.MaxRelIndex = e, i
		}
		rep.MaxRelErrorNormal = rep.MaxRelError
	}
	return rep
}

// parallelChunk is the smallest share of a tensor worth a goroutine.
const parallelChunk = 1 << 15

// encode rounds src into dst as float16 (or float32 when f32), splitting
// large tensors across the available CPUs; the reports are merged.
func encode(dst []byte, src []float64, f32 bool) RoundReport {
	size, enc := 2, encodeF16
	if f32 {
		size, enc = 4, encodeF32
	}
	parts := min(runtime.GOMAXPROCS(0), len(src)/parallelChunk)
	if parts <= 1 {
		return enc(dst, src)
	}
	reps := make([]RoundReport, parts)
	var wg sync.WaitGroup
	per := (len(src) + parts - 1) / parts
	for p := 0; p < parts; p++ {
		lo, hi := p*per, min((p+1)*per, len(src))
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[p] = enc(dst[lo*size:hi*size], src[lo:hi])
			if reps[p].MaxRelIndex >= 0 {
				reps[p].MaxRelIndex += lo
			}
		}()
	}
	wg.Wait()
	rep := reps[0]
	for _, r := range reps[1:] {
		if r.MaxRelError > rep.MaxRelError {
			rep.MaxRelError, rep.MaxRelIndex = r.MaxRelError, r.MaxRelIndex
		}
		rep.MaxRelErrorNormal = max(rep.MaxRelErrorNormal, r.MaxRelErrorNormal)
		rep.Flushed += r.Flushed
		rep.Subnormal += r.Subnormal
		rep.Overflow += r.Overflow
	}
	return rep
}
