package kernels

import "math"

// WidenF16 converts IEEE binary16 values to float32: dst[i] = float32(src[i]).
// The conversion is exact for every value (normals, subnormals, signed zeros,
// infinities). NaNs keep their sign and payload, shifted into the top of the
// float32 mantissa, and come out quiet, as IEEE 754 conversion and x86's
// VCVTPH2PS make them. len(dst) must be at least len(src).
func WidenF16(dst []float32, src []uint16) {
	if len(dst) < len(src) {
		panic("kernels: WidenF16: dst shorter than src")
	}
	widenF16(dst[:len(src)], src)
}

// widenF16Generic is the scalar WidenF16, one value at a time.
func widenF16Generic(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = f16to32(h)
	}
}

// f16to32 widens one binary16 value without a table and without float
// arithmetic on subnormal operands (which costs a microcode assist on x86):
//
//   - normal numbers: the exponent and mantissa shifted into place plus the
//     difference of the exponent biases (127-15 = 112) is the float32 bit
//     pattern, an integer addition;
//   - zeros and subnormals: the 10-bit mantissa times 2^-24, exact in float32;
//   - infinities and NaNs (exponent 31): the float32 all-ones exponent.
func f16to32(h uint16) float32 {
	em := uint32(h & 0x7fff)
	bits := em<<13 + 112<<23
	if em < 0x0400 {
		bits = math.Float32bits(float32(em) * 0x1p-24)
	}
	if em >= 0x7c00 {
		bits = 0x7f800000 | (em&0x3ff)<<13
		if em > 0x7c00 {
			bits |= 0x400000 // quiet NaN
		}
	}
	return math.Float32frombits(bits | uint32(h&0x8000)<<16)
}
