// Package convert turns a parsed Caffe network ([caffe.Net]) into residual's
// weights format (weights/README.md): the runtime op list, float16 tensors in
// shards of at most 25 MiB, and manifest.json.
//
// The work happens in three steps:
//
//  1. [Lower] checks the net and turns its layers into a graph of nodes in SSA
//     form (an in-place layer, top == bottom, produces a new value), with the
//     C x H x W shape of every value (batch 1) inferred with Caffe's formulas.
//     Every layer's blobs are checked against what its parameters imply.
//  2. [Graph.Optimize] rewrites the graph: BatchNorm and Scale become
//     per-channel affines, which are folded into the convolution or inner
//     product before them (or merged into the affine before them); ReLU is
//     fused into the conv, inner product or eltwise before it when nothing
//     else reads the value before the ReLU; Dropout is already gone.
//  3. [Write] (or [Convert], which reads the files and does all three) rounds
//     every tensor to float16 and streams it into the shard files, then checks
//     the model with core's reader ([weights.Verify]) before renaming it into
//     place: a model the converter writes is a model core opens.
//
// Memory: the folded weights are never materialized for the whole net. A
// node keeps its original float32 Caffe blobs plus float64 per-output-channel
// multipliers and addends; folded values are computed in float64 one tensor
// at a time ([Graph.TensorF64]), when they are written.
//
// Float16 rounding is correct rounding of the float64 folded value (round to
// nearest, ties to even); see [RoundF16] for how double rounding is avoided.
package convert
