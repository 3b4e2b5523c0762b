// Package reference is an independent float64 forward pass over a *caffe.Net,
// written directly from Caffe's layer definitions (BVLC/caffe's
// src/caffe/layers/*.cpp). It is the oracle the runtime in core/ is tested
// against, so it shares no code with core/ and is kept deliberately plain:
// naive loops, float64 everywhere, one function per layer type, each one
// readable as the specification of that layer.
//
// Blobs are NCHW (Caffe's layout) with the batch dimension kept: [Forward]
// runs a batch of one, [Run] any batch. Layers are executed in file order,
// as Caffe does; in-place layers (top == bottom) overwrite their blob.
//
// Semantics implemented, with the Caffe rule each one follows:
//
//   - Convolution: output = floor((in + 2*pad - (dilation*(kernel-1)+1)) / stride) + 1;
//     weights [num_output, channels/group, kh, kw], optional bias [num_output].
//   - Pooling (MAX, AVE): output = ceil (or floor with round_mode FLOOR) of
//     (in + 2*pad - kernel)/stride, divided in float32 as Caffe does, plus 1;
//     when either pad is non-zero, a last window that would start in the
//     right/bottom padding is dropped, on each axis. MAX takes the
//     maximum over the window clipped to the image. AVE divides the sum over
//     the window clipped to the image by the size of the window clipped to
//     the PADDED image (hend = min(hstart+kernel, height+pad), measured before
//     clipping to the image). global_pooling uses the whole plane.
//   - BatchNorm: with use_global_stats (the default at test time) the blobs
//     are mean, variance and a 1-element scale factor s; mean and variance
//     are divided by s (s == 0 gives 0), then y = (x-mean)/sqrt(var+eps).
//     Without it, the statistics of the batch itself are used.
//   - Scale: y = x*gamma (+beta), gamma over axes [axis, axis+num_axes);
//     with two bottoms gamma is the second bottom.
//   - Eltwise: SUM with optional coefficients, PROD, MAX.
//   - ReLU: y = max(x,0) + negative_slope*min(x,0).
//   - InnerProduct: x flattened from axis; weights [N,K], or [K,N] with transpose.
//   - Softmax: over axis, after subtracting the maximum.
//   - Concat, Flatten, Split; Dropout is the identity at test time.
//
// Layers included only in the TRAIN phase are skipped, and so are data,
// loss and accuracy layers (they have no place in a test-time forward pass).
// Any other layer type is an [*UnsupportedLayerError] naming the layer.
package reference
