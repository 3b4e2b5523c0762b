// softmax.wgsl: softmax over channels at every spatial position (Caffe's
// Softmax layer, axis 1): subtract the maximum, exponentiate, normalize. One
// workgroup of 256 threads per position and image (grid x: positions, y:
// images); float32 throughout (the CPU uses float64 exp and sum; the
// conformance tolerance allows for it).

struct Params {
  n: u32,
  c: u32,
  hw: u32,
  in_stride: u32,
  in_off: u32,
  out_stride: u32,
  out_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let pos = wg.x;
  let img = wg.y;
  let in_base = p.in_off + img * p.in_stride + pos;
  let out_base = p.out_off + img * p.out_stride + pos;
  var m = -3.40282346638528859812e+38f;
  for (var c = t; c < p.c; c += 256u) {
    m = max(m, x[in_base + c * p.hw]);
  }
  red[t] = m;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (t < s) {
      red[t] = max(red[t], red[t + s]);
    }
    workgroupBarrier();
  }
  m = red[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var c = t; c < p.c; c += 256u) {
    let e = exp(x[in_base + c * p.hw] - m);
    out[out_base + c * p.hw] = e;
    sum += e;
  }
  red[t] = sum;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (t < s) {
      red[t] += red[t + s];
    }
    workgroupBarrier();
  }
  let inv = 1.0 / red[0];
  for (var c = t; c < p.c; c += 256u) {
    out[out_base + c * p.hw] *= inv;
  }
}
