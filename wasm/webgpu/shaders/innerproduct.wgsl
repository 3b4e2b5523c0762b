// innerproduct.wgsl: Caffe's InnerProduct, out[o] = act(sum_k W[o][k] x[k] +
// bias[o]) over the flattened input, one workgroup of 64 threads per output
// and image (grid x: outputs, y: images), a tree reduction in workgroup
// memory. Weight layout (wasm/webgpu/layout.go): row o is k_words words,
// float16 pairs (k, k+1) packed in u32 (k rounded up to even, zero-padded);
// with WEIGHT_F32 one float32 per word.

struct Params {
  n: u32,
  k: u32,
  k_words: u32,
  in_stride: u32,
  in_off: u32,
  out_stride: u32,
  out_off: u32,
  flags: u32,   // 1: add bias, 4: ReLU
  slope: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

override WEIGHT_F32: bool = false;

var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let o = wg.x;
  let img = wg.y;
  let xb = p.in_off + img * p.in_stride;
  let row = o * p.k_words;
  var s = 0.0;
  if (WEIGHT_F32) {
    for (var k = t; k < p.k; k += 64u) {
      s = fma(bitcast<f32>(w[row + k]), x[xb + k], s);
    }
  } else {
    let pairs = p.k / 2u;
    for (var j = t; j < pairs; j += 64u) {
      let v = unpack2x16float(w[row + j]);
      s = fma(v.x, x[xb + 2u * j], s);
      s = fma(v.y, x[xb + 2u * j + 1u], s);
    }
    if (t == 0u && (p.k & 1u) != 0u) {
      s = fma(unpack2x16float(w[row + pairs]).x, x[xb + p.k - 1u], s);
    }
  }
  red[t] = s;
  workgroupBarrier();
  for (var h = 32u; h > 0u; h >>= 1u) {
    if (t < h) {
      red[t] += red[t + h];
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    var v = red[0];
    if ((p.flags & 1u) != 0u) {
      v += bias[o];
    }
    if ((p.flags & 4u) != 0u) {
      v = select(v * p.slope, v, v > 0.0);
    }
    out[p.out_off + img * p.out_stride + o] = v;
  }
}
