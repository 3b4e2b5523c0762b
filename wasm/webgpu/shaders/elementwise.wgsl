// elementwise.wgsl: the ops that touch each value once, one thread per value
// of the batch. Entry points (each with its own bindings after `p`):
//   eltwise       out = op(ca*a, cb*b), or with flags & 2 out = op(out, cb*b)
//                 (Caffe's Eltwise of three or more inputs is a chain of
//                 these, in input order, as the CPU sums them); op 0 sum,
//                 1 product, 2 max; the activation (flags & 1) only on the last
//   affine        out = act(a * sb[c] + sb[C + c]): per-channel scale, shift
//   copy          out[dst_off + i] = a[i] for i < size: one input of a concat

struct Params {
  n: u32,
  size: u32,       // values per image
  a_stride: u32,
  a_off: u32,
  b_stride: u32,
  b_off: u32,
  out_stride: u32,
  out_off: u32,
  op: u32,
  flags: u32,      // 1: activation, 2: accumulate into out
  ca: f32,
  cb: f32,
  slope: f32,
  hw: u32,         // affine: values per channel
  c: u32,          // affine: channels
  dst_off: u32,    // copy: where the input starts in the output image
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn act(v: f32) -> f32 {
  return select(v * p.slope, v, v > 0.0);
}

// index returns (image, value in image) for this thread, or false past the end.
fn index(wg: vec3u, nwg: vec3u, t: u32) -> vec3u {
  let idx = (wg.y * nwg.x + wg.x) * 256u + t;
  return vec3u(idx / p.size, idx % p.size, select(0u, 1u, idx < p.n * p.size));
}

@compute @workgroup_size(256)
fn eltwise(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) t: u32) {
  let i = index(wg, nwg, t);
  if (i.z == 0u) {
    return;
  }
  let o = p.out_off + i.x * p.out_stride + i.y;
  var l: f32;
  if ((p.flags & 2u) != 0u) {
    l = out[o];
  } else {
    l = a[p.a_off + i.x * p.a_stride + i.y];
  }
  let r = b[p.b_off + i.x * p.b_stride + i.y];
  var v: f32;
  switch (p.op) {
    case 1u: {
      v = l * r;
    }
    case 2u: {
      v = select(l, r, r > l);
    }
    default: {
      if ((p.flags & 2u) != 0u) {
        v = l + p.cb * r;
      } else {
        v = p.ca * l + p.cb * r;
      }
    }
  }
  if ((p.flags & 1u) != 0u) {
    v = act(v);
  }
  out[o] = v;
}

@compute @workgroup_size(256)
fn affine(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) t: u32) {
  let i = index(wg, nwg, t);
  if (i.z == 0u) {
    return;
  }
  let c = i.y / p.hw;
  var v = a[p.a_off + i.x * p.a_stride + i.y] * b[c] + b[p.c + c];
  if ((p.flags & 1u) != 0u) {
    v = act(v);
  }
  out[p.out_off + i.x * p.out_stride + i.y] = v;
}

@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let i = index(wg, nwg, t);
  if (i.z == 0u) {
    return;
  }
  out[p.out_off + i.x * p.out_stride + p.dst_off + i.y] = a[p.a_off + i.x * p.a_stride + i.y];
}
