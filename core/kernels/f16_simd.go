//go:build goexperiment.simd && !wasm

package kernels

import (
	"math"
	"simd"
)

// widenChunk is how many values widenF16 converts per pass pair: 16 KiB of
// float32, so the second pass reads what the first wrote from L1.
const widenChunk = 4096

// widenF16SIMD converts in two passes per chunk, since the simd package has no
// 16-to-32-bit widening: a scalar pass zero-extends each binary16 into a
// 32-bit slot of dst, then a vector pass turns the slots into float32 bits
// in place with the same case analysis as f16to32, branch-free:
//
//	normal:      (em << 13) + (112 << 23)
//	subnormal:   bits(float32(em) * 2^-24)      where em < 0x400
//	inf and NaN: 0x7f800000 | mant << 13 | quiet bit for NaN, where em >= 0x7c00
//
// with em = h & 0x7fff and the sign moved from bit 15 to bit 31.
func widenF16SIMD(dst []float32, src []uint16) {
	for len(src) > 0 {
		n := min(len(src), widenChunk)
		slots := dst[:n]
		for i, h := range src[:n] {
			slots[i] = math.Float32frombits(uint32(h)) // bits only, no arithmetic
		}
		widenSlots(slots)
		src, dst = src[n:], dst[n:]
	}
}

// widenSlots converts binary16 values held in the low halves of the bit
// patterns of u into float32 values, in place.
func widenSlots(u []float32) {
	var z simd.Uint32s
	L := z.Len()
	emMask := simd.BroadcastUint32s(0x7fff)
	signMask := simd.BroadcastUint32s(0x8000)
	bias := simd.BroadcastUint32s(112 << 23)
	minNormal := simd.BroadcastUint32s(0x0400)
	maxFinite := simd.BroadcastUint32s(0x7bff)
	inf := simd.BroadcastUint32s(0x7c00)
	expAll := simd.BroadcastUint32s(0x7f800000)
	quiet := simd.BroadcastUint32s(0x400000)
	mantMask := simd.BroadcastUint32s(0x3ff)
	tiny := simd.BroadcastFloat32s(0x1p-24)
	i := 0
	for ; i+L <= len(u); i += L {
		x := simd.LoadFloat32s(u[i:]).ToBits()
		em := x.And(emMask)
		sign := x.And(signMask).ShiftAllLeft(16)
		normal := em.ShiftAllLeft(13).Add(bias)
		sub := em.BitsToInt32().ConvertToFloat32().Mul(tiny).ToBits()
		special := em.And(mantMask).ShiftAllLeft(13).Or(expAll)
		special = special.Or(quiet).IfElse(em.Greater(inf), special)
		r := sub.IfElse(em.Less(minNormal), normal)
		r = special.IfElse(em.Greater(maxFinite), r)
		r.Or(sign).BitsToFloat32().Store(u[i:])
	}
	clearUpper()
	for ; i < len(u); i++ {
		u[i] = f16to32(uint16(math.Float32bits(u[i])))
	}
}
