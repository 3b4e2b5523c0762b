package kernels

// This file holds the API the executor (package core) calls.
//
// Conventions: every activation is one image's C x H x W float32 tensor,
// row-major, W fastest. Weights are float32 (the executor widens float16 into
// a scratch buffer first when weights are resident as float16). No kernel
// allocates: scratch space is passed in, sized by the matching *ScratchSize,
// and the per-goroutine GEMM packing buffers belong to the Runner.

// Act is an activation fused into the end of an op: y = x > 0 ? x : x*Slope when ReLU.
type Act struct {
	ReLU  bool
	Slope float32
}

// ConvParams describes one 2-D convolution (Caffe semantics: output size
// (in + 2*pad - (dil*(k-1)+1)) / stride + 1, floored, as core/shape.Conv
// computes it; zero padding).
type ConvParams struct {
	InC, InH, InW    int
	OutC, OutH, OutW int
	KH, KW           int
	SH, SW           int
	PH, PW           int
	DH, DW           int
	Group            int
}

// PoolParams describes one 2-D pooling (Caffe semantics: the output size is
// given, computed by the caller with core/shape.Pool, ceil or floor; windows are clipped at the
// input border; AVE divides by the window clipped to the padded input, as Caffe does).
type PoolParams struct {
	Max         bool // false: average
	C, InH, InW int
	OutH, OutW  int
	KH, KW      int
	SH, SW      int
	PH, PW      int
}

// Eltwise operations.
const (
	EltSum = iota
	EltProd
	EltMax
)

// Impl names the kernel implementation in use: "asm-avx512" or "asm-avx2"
// (amd64 assembly, chosen at run time by CPU feature, GOEXPERIMENT=simd
// builds without the noasm tag), "simd" (the portable simd package) or
// "scalar" (GOEXPERIMENT=nosimd).
func Impl() string { return implName() }
