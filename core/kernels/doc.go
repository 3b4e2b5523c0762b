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
//	gemm_simd.go      blocked GEMM: the loops over panels and K slices, epilogue, GEMV (goexperiment.simd)
//	gemm_kernel_simd.go  its inner block, packing of B and 4 x 3-vector micro-kernels (simd, !wasm)
//	gemm_wasm.go, gemm_wasm.s  the same for WebAssembly, in SIMD128 assembly (simd, wasm);
//	                  gemm_wasm_gen.go generates the .s (go generate)
//	gemm_scalar.go    the scalar build's bindings (!goexperiment.simd)
//	upper_*.go        VZEROUPPER after vector code on amd64, a no-op elsewhere
//	f16.go, f16_simd.go, f16_wasm.go/.s  binary16 widening: scalar, vector, SIMD128 assembly
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
// # WebAssembly
//
// In WebAssembly the simd build's micro-kernels, its packing of B and
// WidenF16 are SIMD128 assembly (Go's wasm assembler: a stack-machine
// notation over the instance's locals). What the Go compiler emits for
// kernel4x3 (go build -gcflags=-S, GOOS=js GOARCH=wasm) explains the cost
// above: simd's MulAdd has no SIMD128 instruction and becomes f32x4.mul plus
// f32x4.add; the compiler computes all twelve products of an iteration
// before the additions and, having 16 vector registers in its own allocator,
// spills accumulators to the Go stack (v128.store/v128.load to linear
// memory, which V8 cannot keep in registers); every load is an i64 address
// computation with a bounds check; and inline marks leave NOPs. The assembly
// (generated by gemm_wasm_gen.go) instead keeps the 4 x 12 tile in twelve
// v128 locals, broadcasts A with f32.load + f32x4.splat, does f32x4.mul and
// f32x4.add per accumulator, and covers a whole column of tiles of a block
// per call (called tile by tile, the Go driver's own slicing and calls took
// 7% of the profile; one call per column: +13% GFLOP/s). The k loop is unrolled by two
// with an exit test after each step: V8's optimizing compiler (TurboFan)
// schedules every load of a basic block at its top, so an unrolled body
// without branches holds the operands of all its steps at once and spills.
// Reading TurboFan's x64 code (node --print-code) shows what remains: V8
// allocates 15 XMM registers (xmm15 is its scratch), the tile needs 17 (12
// accumulators, 3 vectors of B, a broadcast, a product), so 4 accumulators
// live in the stack frame, about 10 extra memory operations per 24
// arithmetic ones. Tiles that fit (4 x 8 and 2 x 16: 8 accumulators, no
// spill) ran 5-15% faster alone on data in L1 (hand-written .wat kernels)
// but measured the same within the GEMM (24-26 GFLOP/s,
// BenchmarkResNet50Convs under node, process CPU time, three alternating
// runs each), so the 4 x 12 tile of the other simd builds stays and the
// driver is shared. Broadcasting A with i32.load + i32x4.splat (general
// registers are not scarce) removed most spills but was not faster.
//
// SIMD128 has no fused multiply-add. relaxed-simd's f32x4.relaxed_madd is
// faster (a 2 x 16 kernel alone: +20%; the 4 x 12: +5%) but is not used:
// the relaxed instructions may round differently on each engine and CPU
// (fused or not), so the same page would give different probabilities on
// different machines and stop matching the CLI's and the Cloudflare
// Worker's within their tests' tolerance by construction rather than by
// measurement; it would also need a third .wasm build and a feature probe,
// since not every engine that runs SIMD128 has it. Two limits of Go 1.27's
// wasm assembler shape the code: V128Store ignores its offset operand (the
// encoder reads To, the parser fills From), so every store gets its address
// computed in full; and the load-and-splat/extend instructions
// (v128.load32_splat, v128.load16x4_u) are emitted without their memory
// operand, which makes an invalid module, so A is broadcast from an f32.load
// (vmovss + vbroadcastss instead of one vbroadcastss from memory: about 7%
// in a hand-written .wat kernel) and halves are widened with
// i32x4.extend_*_i16x8_u after a v128.load. A separate hand-written .wasm
// kernel module sharing the instance's memory was rejected: core must not
// import syscall/js, a call through JavaScript per column of tiles costs
// microseconds, and a go:wasmimport would make every js/wasm host (node's
// test runner, the Cloudflare Worker) provide the module.
//
// Measured under node (V8 11.3), same runs, process CPU time, on the 2-core
// Intel Xeon development machine (other work competing): the convolutions
// of ResNet-50 12.2 -> 24-26 GFLOP/s; WidenF16 0.68 -> 1.8 GB/s of binary16
// on BenchmarkWidenF16's mix of every exponent (the simd package's two
// passes: a scalar zero-extension, then vector bit arithmetic; the assembly
// widens 8 values per v128.load), and 1.8 -> 2.7 GB/s on normal numbers
// with a short path for blocks of eight normals (five operations per four
// values instead of sixteen); packing B with v128 loads instead of a memmove
// call per 48-byte row took memmove from 8% to 2% of the profile. One
// ResNet-50 image (core.Model.ClassifyImage, float16 weights): 680 -> 370 ms
// of CPU (float32 weights: 375), against 335 for ONNX Runtime Web 1.30's
// wasm build under the same node in the same sitting (1 thread,
// session.run only). What is left (node --cpu-prof): the micro-kernel 66%,
// widening 7%, im2col 6%, packing, eltwise, pooling, the narrow-sliver
// kernel and image resizing 2-3% each.
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
