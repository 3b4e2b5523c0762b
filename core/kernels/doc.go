// Package kernels holds the CPU kernels of residual's inference core: the
// GEMM behind convolution and inner product, im2col, pooling, eltwise,
// affine, activation and softmax in Caffe's semantics, and the float16
// widening used when weights stay resident as float16. The executor in
// package core calls them one op at a time; they know nothing of graphs.
//
// # Layout
//
// Every activation is one image's C x H x W float32 tensor, row-major with W
// fastest. Convolution weights are OutC x InC/Group x KH x KW, inner product
// weights N x K (Caffe's blob layouts). Convolution group g is one GEMM, as
// in Caffe:
//
//	out_g (OutC/G x OH*OW) = act(w_g (OutC/G x K) * col_g (K x OH*OW) + bias_g),  K = InC/G*KH*KW
//
// where col_g is the im2col matrix in Caffe's layout (row (c*KH+kh)*KW+kw,
// column oh*OW+ow), or the input itself for a 1x1, stride-1, unpadded
// convolution, which needs no copy. The simd GEMM never materializes col_g:
// it builds each kc x nc panel of it from the input (im2colRange, long runs
// of input rows) just before packing the panel, so a convolution's scratch
// is the GEMM's buffers alone (2.8 MB with AVX2, 5.6 MB with SIMD128;
// conv1's im2col matrix alone took 7.4 MB). The scalar build
// materializes col_g. The bias and the fused activation are applied in the
// GEMM's epilogue, while the output tile is still in cache.
//
// # Implementations
//
// With GOEXPERIMENT=simd the kernels use the portable simd package (AVX2 or
// AVX-512 natively, WASM SIMD128 in browsers and Workers); without it they
// use portable scalar twins. Files:
//
//	gemm.go           GEMM arguments, splitting work between goroutines
//	gemm_generic.go   scalar GEMM, GEMV, activation (both builds: the baseline and the twins)
//	gemm_simd.go      blocked GEMM with a 4 x 3-vector micro-kernel (goexperiment.simd)
//	gemm_scalar.go    the scalar build's bindings (!goexperiment.simd)
//	upper_*.go        VZEROUPPER after vector code on amd64, a no-op elsewhere
//	f16.go, f16_simd.go  binary16 widening, scalar and vector
//	conv.go, pool.go, elementwise.go  the ops; runner.go  the worker goroutines
//
// The simd GEMM follows Goto and van de Geijn: a kc x nc panel of B (for a
// convolution, first built from the input into a second panel-sized
// buffer) is packed per K slice into a per-worker buffer, in slivers of nr = 3L columns
// (L = simd.Float32s lanes: 4 with WASM SIMD128, 8 with AVX2, 16 with
// AVX-512); a micro-kernel keeps a 4 x nr tile of C in 12 vector registers
// across kc rank-1 updates, reading four rows of A in place (each is a
// contiguous run of kc weights, so A is not packed: packing it would cost as
// much as the product for ResNet's 7x7 layers). Full tiles get their bias,
// accumulation and ReLU in registers and go straight to C; partial tiles go
// through a small buffer and a vector epilogue. Vector values never cross a
// function call (a documented limitation of the simd package); on amd64
// every vector function ends with VZEROUPPER, since Go's scalar float code
// uses legacy SSE encodings, which were measured 20x slower after 256-bit
// code left the upper register halves dirty.
// Impl reports which implementation is compiled in.
//
// Measured on the 2-core AMD EPYC (Zen 3) development machine, and rejected
// (same-run comparisons of BenchmarkResNet50Convs, one thread): packing A
// into micro-panels (-20%: the packing costs more than the contiguous stream
// saves); a 4 x 2-vector tile, which keeps every value in registers (-3%);
// building each sliver of B straight from the convolution input, short runs
// per sliver row, instead of a panel first (-30% to -50%); kc of 256 or 512
// instead of 4096/nr (within noise). Building im2col panel by panel (the
// scheme above) measured the same speed as materializing the whole matrix.
// The micro-kernel's loop costs about 7.8 instructions per vector FMA
// (callgrind, SIMD128 build): the compiler's FMA overwrites a multiplicand,
// so each reuse of a broadcast is a register copy and the accumulators
// rotate through registers (moves at the loop's end); it hoists every load
// of an iteration ahead of the FMAs, which makes the 4 x 3 tile spill; and
// inline marks leave about 20 NOPs per iteration. Reshaping the source
// (packed A, unrolling, 5 x 2, 3 x 3, 6 x 2 tiles, Mul then Add, one
// statement per row) moved that figure between 7.6 and 12.
//
// # Invariants
//
//   - No kernel allocates. Conv2D takes scratch of ConvScratchSize floats
//     (the calling goroutine's GEMM buffers and, in the scalar build, one
//     group's im2col matrix); a Runner owns one set of GEMM buffers per
//     helper.
//   - Outputs are written only inside their extent (tests surround every
//     output, and the gaps between strided rows, with NaN guard values).
//   - A nil *Runner runs on the calling goroutine; NewRunner(n) keeps n-1
//     helper goroutines and the caller as worker 0, and hands them work
//     through preallocated task values, so parallel calls do not allocate
//     either. Wide GEMMs are split over columns (each worker builds and
//     packs its own panels of B), narrow ones over rows, the scalar build's
//     im2col over its rows, pooling over channels. A Runner serializes the
//     kernel calls made through it. In wasm, use a nil Runner: there is one
//     thread.
//   - Bad shapes (slices too short, inconsistent parameters) are caller bugs
//     and panic with a message naming the numbers.
//
// # Tolerance policy
//
// Each op is tested against a naive float64 reference with |got - ref| <=
// tol + scale*eps, where scale bounds the magnitude of what was summed:
//
//   - GEMM, Conv2D, InnerProduct: tol 1e-6, eps 1e-5, scale = |bias| +
//     sum_k |a_ik * b_kj|. float32 accumulation in a blocked FMA order
//     differs from any other order by about 2^-24 * scale for random signs
//     and by at most K * 2^-24 * scale; 1e-5 is about 170 ulps of scale,
//     safe up to ResNet's K = 4608, while a single wrong term (an indexing
//     bug) would move the result by about scale/K >= 2e-4 * scale.
//   - Pool2D: MAX exact; AVE tol 1e-6 + 1e-6*|ref| (at most 49 float32
//     additions and one division of values of size 1).
//   - Eltwise, Affine: tol 1e-6 + 1e-6 * sum of |terms| (one rounding per term).
//   - Activate: exact (at most one multiplication, done the same way).
//   - Softmax: tol 1e-7 + 1e-6*|ref| (float64 exp and sum, rounded once).
//   - WidenF16: exact, bit for bit against github.com/x448/float16 for all
//     65536 inputs (NaNs come out quiet with their payload).
//
// Besides the naive references, onnx_test.go runs the kernels on the ONNX
// backend node tests that Debian's libonnx-testdata installs (conv, pooling,
// batch norm, activations, eltwise, gemm, softmax, flatten, concat), mapped
// onto Caffe semantics where the two disagree; internal/onnxtest reads those
// files. They live here because they test the kernels, nothing above them.
package kernels
