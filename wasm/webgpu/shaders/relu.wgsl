// relu.wgsl: a standalone (leaky) ReLU, y = x > 0 ? x : x * slope, one
// thread per value of the batch: `relu` from a to out, `relu_inplace` on out
// (the program runs a ReLU in place when nothing else reads its input).

struct Params {
  n: u32,
  size: u32,
  a_stride: u32,
  a_off: u32,
  out_stride: u32,
  out_off: u32,
  slope: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;

@compute @workgroup_size(256)
fn relu(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let idx = (wg.y * nwg.x + wg.x) * 256u + t;
  if (idx >= p.n * p.size) {
    return;
  }
  let img = idx / p.size;
  let i = idx % p.size;
  let v = a[p.a_off + img * p.a_stride + i];
  out[p.out_off + img * p.out_stride + i] = select(v * p.slope, v, v > 0.0);
}

@compute @workgroup_size(256)
fn relu_inplace(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) t: u32) {
  let idx = (wg.y * nwg.x + wg.x) * 256u + t;
  if (idx >= p.n * p.size) {
    return;
  }
  let o = p.out_off + (idx / p.size) * p.out_stride + idx % p.size;
  let v = out[o];
  out[o] = select(v * p.slope, v, v > 0.0);
}
