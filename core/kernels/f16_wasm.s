//go:build goexperiment.simd && wasm

#include "textflag.h"

// func widenF16x8(dst *float32, src *uint16, n int)
//
// dst[i] = f16to32(src[i]) for i < n, n a multiple of 8, eight values per
// iteration: one v128 load, zero-extended to two i32x4 halves, each converted
// branch-free with f16to32's case analysis (see f16.go):
//
//	em       = h & 0x7fff
//	normal   = em<<13 + 112<<23
//	sub      = bits(float32(em) * 2^-24)               where em < 0x400
//	special  = em<<13 | 0x7f800000 | quiet if em > 0x7c00, where em > 0x7bff
//	result   = that | (h & 0x8000) << 16
TEXT ·widenF16x8(SB), NOSPLIT, $0-24
	// V0: em mask
	I32Const $32767
	I32x4Splat
	Set V0
	// V1: exponent bias difference, in place
	I32Const $939524096
	I32x4Splat
	Set V1
	// V2: smallest normal em
	I32Const $1024
	I32x4Splat
	Set V2
	// V3: 2^-24
	I32Const $864026624
	I32x4Splat
	Set V3
	// V4: float32 all-ones exponent
	I32Const $2139095040
	I32x4Splat
	Set V4
	// V5: largest finite em
	I32Const $31743
	I32x4Splat
	Set V5
	// V6: infinity
	I32Const $31744
	I32x4Splat
	Set V6
	// V7: float32 quiet-NaN bit
	I32Const $4194304
	I32x4Splat
	Set V7
	// V8: float32 sign bit
	I32Const $-2147483648
	I32x4Splat
	Set V8
	I64Load dst+0(FP)
	Set R0
	I64Load src+8(FP)
	Set R1
	I64Load n+16(FP)
	Set R2
	Block
	Loop
	Get R2
	I64Eqz
	BrIf $1
	Get R1
	I32WrapI64
	V128Load $0
	Set V9
	// values 0-3
	Get V9
	I32x4ExtendLowI16x8U
	Set V10
	Get R0
	I32WrapI64
	Get V10
	Get V0
	V128And
	Set V11
	Get V11
	I32Const $13
	I32x4Shl
	Set V12
	Get V11
	F32x4ConvertI32x4S
	Get V3
	F32x4Mul
	Get V12
	Get V1
	I32x4Add
	Get V11
	Get V2
	I32x4LtS
	V128Bitselect
	Set V13
	Get V12
	Get V4
	V128Or
	Get V11
	Get V6
	I32x4GtS
	Get V7
	V128And
	V128Or
	Get V13
	Get V11
	Get V5
	I32x4GtS
	V128Bitselect
	Get V10
	I32Const $16
	I32x4Shl
	Get V8
	V128And
	V128Or
	V128Store $0
	// values 4-7
	Get V9
	I32x4ExtendHighI16x8U
	Set V10
	Get R0
	I64Const $16
	I64Add
	I32WrapI64
	Get V10
	Get V0
	V128And
	Set V11
	Get V11
	I32Const $13
	I32x4Shl
	Set V12
	Get V11
	F32x4ConvertI32x4S
	Get V3
	F32x4Mul
	Get V12
	Get V1
	I32x4Add
	Get V11
	Get V2
	I32x4LtS
	V128Bitselect
	Set V13
	Get V12
	Get V4
	V128Or
	Get V11
	Get V6
	I32x4GtS
	Get V7
	V128And
	V128Or
	Get V13
	Get V11
	Get V5
	I32x4GtS
	V128Bitselect
	Get V10
	I32Const $16
	I32x4Shl
	Get V8
	V128And
	V128Or
	V128Store $0
	Get R0
	I64Const $32
	I64Add
	Set R0
	Get R1
	I64Const $16
	I64Add
	Set R1
	Get R2
	I64Const $8
	I64Sub
	Set R2
	Br $0
	End
	End
	RET
