// Package webgpu runs a compiled core.Program with WebGPU compute shaders:
// the backend the browser page uses on a real GPU, with the CPU executor of
// package core as the fallback it never fails to reach.
//
// # Layout
//
//	shaders/*.wgsl   one op family per file, embedded (shaders.go):
//	                 conv.wgsl (implicit GEMM + epilogue, split-K reduce),
//	                 pool.wgsl, elementwise.wgsl (eltwise, affine, concat copy),
//	                 relu.wgsl, innerproduct.wgsl, softmax.wgsl
//	layout.go        weight layouts prepared once in Go (float16 pairs in u32)
//	plan.go          Program -> dispatches for a batch of n: pipeline keys,
//	                 uniform parameters, bindings, grids, tile choice
//	limits.go        the limits the backend needs, checked against the device
//	device_js.go     adapter, device, pipeline cache, error scopes (js && wasm)
//	backend_js.go    Backend: upload, buffers, bind groups, Run (js && wasm)
//	select_js.go     Select: the fallback ladder and the self-check (js && wasm)
//
// Everything without syscall/js (layouts, planning, limit checks) builds and
// is tested natively; the rest runs under GOOS=js GOARCH=wasm in node with
// Dawn's bindings (npm webgpu, test/preload.mjs) on whatever Vulkan driver
// is there (SwiftShader on a CPU-only machine): `make webgpu-test`.
//
// # What one inference does
//
// Load (New): every pipeline the planned batches need is created with
// createComputePipelineAsync, all at once; the weights are laid out in Go and
// written to GPU buffers region by region through one reused staging array
// (float16 stays float16); activation buffers follow the program's liveness
// plan, each holding n images one after another; the uniform parameters of
// every dispatch are written once into one buffer (256 bytes per dispatch)
// and every bind group is made. Run: one writeBuffer of the input, one
// command encoder, one compute pass with one dispatch per step (two for a
// split-K conv), the copies of the output and the taps into one mappable
// buffer, one submit, one mapAsync. Nothing is allocated per Run once a
// batch size has been seen. ResNet-50 at batch 1 is 79 dispatches: 53
// convs (the 16 residual sums fused into them), 22 split-K reduces (the
// 14x14 and 7x7 stages), 2 pools, the inner product and the softmax (the
// flatten is free); at batch 10 it is 63, as only 6 convs still split.
// ResNet-101: 164 and 114; ResNet-152: 245 and 165 (TestResNetDispatches).
//
// # Design decisions
//
//   - Convolution is an implicit GEMM (conv.wgsl): M = output channels,
//     N = images x output pixels (the batch folded into N, so a 10-crop batch
//     fills the 7x7 stage's tiles ten times better than one image), K =
//     input channels x kernel. Tiles of X are gathered from the activation
//     into workgroup memory (no im2col buffer); weights are prepared as
//     [group][k pair][output channel], so that the threads of a workgroup
//     read consecutive words. Each thread computes a 4x4 register tile,
//     reading its four channels and four columns of each k as two vec4
//     loads from workgroup memory; the workgroup is 16x16 threads (a 64x64
//     tile) or 8x8 (32x32). 1x1
//     stride-1 unpadded convolutions (two thirds of ResNet's) are a plain
//     GEMM (the IS_1X1 override drops the index arithmetic).
//   - Tile choice (plan.go convChoice): the 64x64 tile when it gives at least
//     264 workgroups (two per SM of a 132-SM H200), else the 32x32 tile, and
//     when even that leaves the GPU half idle and K >= 1024 (ResNet's 7x7
//     stage: 512 channels x 49 pixels, K = 4608), K is split across grid z and
//     a second dispatch sums the splits in order and applies the epilogue.
//   - The epilogue of every conv adds the bias (BatchNorm folded by the
//     converter), the residual (the program is compiled with FuseResidual:
//     the block's eltwise sum moves into the conv that computes its last
//     operand) and the ReLU: no separate pass over memory per block.
//   - Shapes go through uniform parameters, variants (tile size, 1x1, split,
//     float32 weights) through override constants: the WGSL is never built
//     from strings, and a ResNet needs about six pipelines.
//   - float16 weights are read as pairs with unpack2x16float and accumulated
//     in float32; activations are float32. Native f16 (shader-f16) is not
//     used: no adapter here offers it (SwiftShader does not; Dawn hides it on
//     NVIDIA's Vulkan driver by default), and the unpack is one ALU op per
//     two weights in a loop bound by memory and workgroup barriers.
//   - Explicit bind group layouts per entry point (plan.go layouts), so that
//     an override that disables a binding's use cannot change the layout;
//     unused bindings get a small dummy buffer per binding number (two
//     writable bindings may never alias).
//   - Weight regions are bound at their own offsets (aligned to
//     minStorageBufferOffsetAlignment) in pages of at most maxBufferSize, so
//     no single binding needs the whole model: ResNet-152's 120 MB fit
//     WebGPU's default 128 MiB binding limit with room to spare.
//   - Limits: the device is requested with the adapter's largest buffer and
//     binding sizes (requiredLimits); the model's largest activation buffer
//     and weight region are checked against them (LimitError names the
//     limit); a batch larger than one binding allows runs in several submits.
//   - Errors: shader modules are compiled inside an error scope and their
//     getCompilationInfo messages become a ShaderError naming file, line and
//     column; pipeline creation failures name the pipeline key; buffer and
//     bind group creation are checked with validation and out-of-memory
//     scopes; device.lost makes Run return a DeviceLostError.
//   - The fallback ladder (Select): no navigator.gpu, no adapter, a fallback
//     or software adapter (isFallbackAdapter, or a name with SwiftShader,
//     llvmpipe, lavapipe, WARP), no device, a failed self-check (a tiny
//     bottleneck network run on both and compared), or a backend that cannot
//     be built: each gives the CPU executor and a reason. A lost device is
//     reported by Run; the page then reloads the model on the CPU.
//   - Weight ownership: the backend reports HostWeights false, so core.Open
//     releases the shard bytes once they are on the GPU. Measured under node
//     with the generated ResNet-50: the Go heap holds about 1 MB more than
//     before the load with the GPU backend, 77 MB more with the CPU path
//     (its float16 weights stay resident).
//
// # Alternatives not taken (reasoned, not measured: no GPU here)
//
//   - A submit every few dispatches, as ONNX Runtime Web does (every 16):
//     one encoder and one submit per inference instead; KataGo's WebGPU
//     backend reports +20% from one submit and one readback, +9% from one
//     compute pass.
//   - An explicit im2col buffer: for ResNet-50's stem at batch 10 it would be
//     147 x 125440 floats (74 MB) written and read once; the implicit gather
//     costs a few integer divisions per loaded element instead, against 256
//     multiply-adds per thread per K step.
//   - Split-K with atomics: WGSL has no float atomics (a compare-exchange loop
//     on u32 would make the sum order, hence the result, vary between runs);
//     the reduce pass sums the splits in a fixed order.
//   - The residual sum as its own dispatch (ORT Web, TF.js, ggml): one more
//     pass over a block's output per block, 16 more dispatches in ResNet-50.
//   - Winograd for the 3x3 convolutions (KataGo: +72-80% over its direct
//     conv): left for a GPU to measure it on; it changes the rounding of every
//     3x3 output, which the conformance tolerance would have to allow.
//
// # Measured, and what could not be
//
// Correctness only, here: the machines this was written on have no GPU, so
// Dawn runs on SwiftShader's Vulkan (a CPU). The conformance harness
// (core/backendtest) passes at batches 1 and 3 with every tile variant
// forced; the generated ResNet-50 matches the CPU path (top-5 identical,
// max |dp| 6.7e-6 over the 1000 probabilities). On SwiftShader a ResNet-50
// image takes about 40 s of CPU under node (90-120 s wall on a shared,
// loaded 2-core machine) and 40-58 s wall in headless Chromium, against
// 1.2-4.5 s for the WebAssembly CPU path on the same machine in the same
// runs: no speed figure from here says anything about a GPU, and `make
// bench-gpu` prints the adapter beside every figure for that reason.
package webgpu
