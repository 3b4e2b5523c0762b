// Package core classifies images with a converted Caffe network: it loads a
// model directory written by tools/convert (through io/fs, so natively from
// disk and in WebAssembly from any byte source), plans the network once, and
// runs it with float32 activations on the CPU kernels of core/kernels, after
// the preprocessing of core/preprocess.
//
// # Use
//
//	m, err := core.Open(os.DirFS("weights/resnet50"), core.Options{})
//	...
//	defer m.Close()
//	res, err := m.ClassifyBytes(jpeg, core.ClassifyOptions{Top: 5})
//	for _, p := range res.Top { fmt.Println(p.Index, p.Label, p.Prob) }
//
// # Layout
//
//   - api.go: Open, Model, Info, the Classify methods, top-k.
//   - program.go: Compile, the backend-neutral Program (steps, values,
//     buffer plan), Cuts and residual fusion.
//   - cpu.go: the Backend interface and CPU, the interpreter of a Program
//     over core/kernels.
//   - backendtest/: the conformance harness every Backend runs.
//   - errors.go: the error types.
//   - weights/: the format (manifest.go), its validation and the shard reader;
//     weights/weightstest builds small models for tests.
//
// # Loading
//
// Open reads manifest.json strictly (unknown format, version or field: a
// *weights.FormatError), validates every op, tensor and shard against each
// other before allocating anything, then reads each shard verifying its size
// and sha256 (*weights.ShardError, *weights.ChecksumError name the shard and
// say to copy the model again or re-run the converter). When the fs.FS
// implements fs.ReadFileFS the slices it returns are the storage: float16
// tensors are []uint16 views into them, never copied.
//
// # Compiled program
//
// The op list (already folded and fused by the converter) is compiled once
// per Model into a Program that every backend executes: each op becomes a
// step with its kernel parameters resolved; every blob version becomes a
// value with a producer and a last reader; flatten outputs share their
// input's storage and a standalone ReLU runs in place when nothing reads
// its input afterwards; storages are packed greedily into a few activation
// buffers by liveness (Info.ActivationBytes is their total: for ResNet-50,
// three buffers of 3.2 MB, where storing every blob apart would take 66 MB).
// Compile can also fuse each residual sum into the convolution that ends
// the block (CompileOptions.FuseResidual; the GPU does), keep blobs live as
// taps (the features of a class activation map), and compile a range of
// ops between two cuts, places where a single value crosses (Cuts): a
// Cloudflare stage Worker runs such a slice.
// The CPU allocates all buffers, the im2col scratch and the weight-widening
// scratch when it is built, so an inference allocates nothing.
//
// Two weight modes: float16 resident (the default; each op widens its
// weights and bias into one scratch buffer sized for the largest op just
// before it runs, which is what fits a 128 MB Cloudflare Worker) and float32
// (Options.Float32Weights: every tensor widened once at Open and the float16
// shards released). Both compute with exactly the same float32 weight values,
// so their results are identical.
//
// # Backends
//
// Network execution sits behind one seam, the Backend interface: Run takes
// a batch of preprocessed input tensors and returns the output blobs (and
// taps); a 10-crop classification is one batch of ten. CPU (NewCPU) is the
// reference implementation. Another backend, such as the WebGPU one in
// wasm/, is plugged in with Options.Backend: it receives the Program and
// the verified *weights.Weights (every tensor's float16 bytes, ready to
// upload), and may fall back to NewCPU when its device is missing. Who owns
// the weight bytes afterwards: a backend that reads them while it runs says
// so (BackendInfo.HostWeights: the CPU in float16 mode); otherwise Open
// releases them once the backend is built, so a page does not keep the
// shards in the Go heap beside the GPU's copy. Preprocessing, crop
// averaging and top-k stay in Model for every backend; package backendtest
// is the conformance harness a backend must pass.
//
// # Concurrency and errors
//
// A Model is safe for concurrent use. Decoding runs in the caller's
// goroutine; preprocessing and inference hold the Model's mutex, one image
// at a time, since the plan's buffers are shared; kernels themselves use
// Options.Threads goroutines (1 under wasm). A bad image gives an error
// wrapping *preprocess.ImageError (front ends answer 400); a bad option an
// *OptionError; a panic inside Classify never escapes: it becomes an
// *InternalError.
package core
