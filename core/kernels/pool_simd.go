//go:build goexperiment.simd

package kernels

import "simd"

// maxInto sets m[i] = x[i] > m[i] ? x[i] : m[i], a vector at a time (a
// compare and a select: NaNs in x never win, as in maxIntoGeneric).
func maxInto(m, x []float32) {
	var z simd.Float32s
	L := z.Len()
	x = x[:len(m)]
	i := 0
	for ; i+L <= len(m); i += L {
		cur, v := simd.LoadFloat32s(m[i:]), simd.LoadFloat32s(x[i:])
		v.IfElse(v.Greater(cur), cur).Store(m[i:])
	}
	clearUpper()
	maxIntoGeneric(m[i:], x[i:])
}

// windowMax sets dst[i] to the maximum of src[i..i+k-1]: dst starts as
// src, then takes each shifted copy of src with maxInto's rule, in window
// order.
func windowMax(dst, src []float32, k int) {
	copy(dst, src)
	for j := 1; j < k; j++ {
		maxInto(dst, src[j:j+len(dst)])
	}
}
