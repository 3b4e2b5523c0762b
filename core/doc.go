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
//   - cpu.go: the Backend interface and CPU, the executor over core/kernels.
//   - plan.go: liveness planning of the activation buffers.
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
// # Execution plan
//
// The op list (already folded and fused by the converter) is planned once
// per Model: every blob version becomes a value with a producer and a last
// reader; flatten outputs share their input's storage and a standalone ReLU
// runs in place when nothing reads its input afterwards; storages are packed
// greedily into a few activation buffers by liveness (Info.ActivationBytes
// is their total: for ResNet-50, three buffers of 3.2 MB, where storing every
// blob apart would take 66 MB).
// All buffers, the im2col scratch and the weight-widening scratch are
// allocated at Open, so an inference allocates nothing.
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
// one preprocessed input tensor and returns the output blob. CPU (NewCPU) is
// the reference implementation. Another backend, such as the WebGPU one in
// wasm/, is plugged in with Options.Backend: it receives the verified
// *weights.Weights (the manifest's op list and every tensor's float16 bytes,
// ready to upload) and may fall back to NewCPU when its device is missing.
// Preprocessing, crop averaging and top-k stay in Model for every backend.
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
