// pool.wgsl: max and average pooling with Caffe's semantics
// (caffe/src/caffe/layers/pooling_layer.cpp), one thread per output value of
// the batch:
//   - window (oy, ox) starts at oy*sh - ph, ox*sw - pw;
//   - max: the window clipped to the image (padding never wins); an empty
//     window gives -FLT_MAX, Caffe's initial value;
//   - average: the divisor is the window clipped to the padded input, taken
//     before the window is clipped to the image for the sum.
// The output size is given (Caffe's ceil or floor rule, applied in Go).

struct Params {
  n: u32,
  c: u32,
  in_h: u32,
  in_w: u32,
  in_stride: u32,
  in_off: u32,
  out_h: u32,
  out_w: u32,
  out_stride: u32,
  out_off: u32,
  kh: u32,
  kw: u32,
  sh: u32,
  sw: u32,
  ph: u32,
  pw: u32,
  is_max: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let idx = (wg.y * nwg.x + wg.x) * 256u + t;
  let per_image = p.c * p.out_h * p.out_w;
  if (idx >= p.n * per_image) {
    return;
  }
  let img = idx / per_image;
  let r = idx % per_image;
  let c = r / (p.out_h * p.out_w);
  let oy = (r / p.out_w) % p.out_h;
  let ox = r % p.out_w;
  let base = p.in_off + img * p.in_stride + c * p.in_h * p.in_w;
  let hs = i32(oy * p.sh) - i32(p.ph);
  let ws = i32(ox * p.sw) - i32(p.pw);
  var v: f32;
  if (p.is_max != 0u) {
    v = -3.40282346638528859812e+38f;
    for (var y = max(hs, 0); y < min(hs + i32(p.kh), i32(p.in_h)); y++) {
      for (var xx = max(ws, 0); xx < min(ws + i32(p.kw), i32(p.in_w)); xx++) {
        v = max(v, x[base + u32(y) * p.in_w + u32(xx)]);
      }
    }
  } else {
    let he = min(hs + i32(p.kh), i32(p.in_h + p.ph));
    let we = min(ws + i32(p.kw), i32(p.in_w + p.pw));
    let size = f32((he - hs) * (we - ws));
    var s = 0.0;
    for (var y = max(hs, 0); y < min(he, i32(p.in_h)); y++) {
      for (var xx = max(ws, 0); xx < min(we, i32(p.in_w)); xx++) {
        s += x[base + u32(y) * p.in_w + u32(xx)];
      }
    }
    v = s / size;
  }
  out[p.out_off + img * p.out_stride + r] = v;
}
