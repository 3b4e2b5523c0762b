// conv.wgsl: 2-D convolution with Caffe's semantics (zero padding, stride,
// dilation, groups) as an implicit GEMM, for a batch folded into the GEMM's
// columns:
//
//   out[oc][col] = act(sum_k W[oc][k] * X[k][col] + bias[oc] + residual[oc][col])
//
// with M = output channels (per group), N = images x output pixels and
// K = input channels (per group) x KH x KW. X is never built: each tile of it
// is gathered from the input activation into workgroup memory (im2col on
// the fly). Weights are float16 pairs packed in u32 (two consecutive k of one
// output channel, see the layout below), widened with unpack2x16float;
// accumulation is float32.
//
// Weight layout (prepared once in Go, wasm/webgpu/layout.go): per group g,
// rows of k pairs, each row m_pad words wide (output channels padded to 64
// with zeros), k padded to a multiple of BK with zeros:
//   word(g, kp, m) = w[(g * k_pad / 2 + kp) * m_pad + m] = f16 W[g*out_c+m][2kp] | f16 W[..][2kp+1] << 16
// With WEIGHT_F32, one float32 per word: w[(g * k_pad + k) * m_pad + m].
//
// A workgroup of TX x TY threads computes a BM x BN = 4TY x 4TX tile, each
// thread a 4 x 4 register tile, stepping through K by BK = 16. Entry points:
//   main    the GEMM; the epilogue (bias, residual, activation) unless SPLIT,
//           in which case grid z splits K and raw sums go to `partial`
//   reduce  sums the K splits of `partial` and applies the epilogue

struct Params {
  n: u32,          // images in the batch
  groups: u32,
  in_c: u32,       // input channels per group
  in_h: u32,
  in_w: u32,
  in_stride: u32,  // floats from one image to the next in the input buffer
  in_off: u32,     // float offset of image 0 in the input buffer
  out_c: u32,      // output channels per group
  out_h: u32,
  out_w: u32,
  out_stride: u32,
  out_off: u32,
  res_stride: u32, // the residual (read when flags & 2)
  res_off: u32,
  kh: u32,
  kw: u32,
  sh: u32,
  sw: u32,
  ph: u32,
  pw: u32,
  dh: u32,
  dw: u32,
  k: u32,          // in_c * kh * kw
  k_pad: u32,      // k rounded up to a multiple of BK
  m_pad: u32,      // out_c rounded up to 64: the weight layout's row width
  m_tiles: u32,    // ceil(out_c / BM); grid y = groups * m_tiles
  k_split: u32,    // K per split, a multiple of BK (K itself without SPLIT)
  splits: u32,     // grid z
  flags: u32,      // 1: add bias, 2: add residual, 4: ReLU (after the residual)
  slope: f32,      // ReLU's negative slope
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> res: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;

override TX: u32 = 16u;          // threads along N; the tile is 4 * TX columns
override TY: u32 = 16u;          // threads along M; the tile is 4 * TY channels (TY % 4 == 0)
override IS_1X1: bool = false;   // 1x1, stride 1, no padding: a plain GEMM, X is the input itself
override SPLIT: bool = false;    // write raw partial sums per K split
override WEIGHT_F32: bool = false;

const BK: u32 = 16u;

// The tiles, as vec4s so that the inner loop reads a thread's four
// channels and four columns with one load each: As[k * TY + m / 4][m % 4],
// Bs[k * TX + col / 4][col % 4].
var<workgroup> As: array<vec4f, BK * TY>;
var<workgroup> Bs: array<vec4f, BK * TX>;

// finish applies the epilogue to one output value and stores it.
fn finish(oc: u32, col: u32, sum: f32) {
  let ohw = p.out_h * p.out_w;
  let img = col / ohw;
  let pix = col % ohw;
  var v = sum;
  if ((p.flags & 1u) != 0u) {
    v += bias[oc];
  }
  if ((p.flags & 2u) != 0u) {
    v += res[p.res_off + img * p.res_stride + oc * ohw + pix];
  }
  if ((p.flags & 4u) != 0u) {
    v = select(v * p.slope, v, v > 0.0);
  }
  out[p.out_off + img * p.out_stride + oc * ohw + pix] = v;
}

@compute @workgroup_size(TX, TY)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let BM = 4u * TY;
  let BN = 4u * TX;
  let WG = TX * TY;
  let g = wg.y / p.m_tiles;
  let m0 = (wg.y % p.m_tiles) * BM;
  let col0 = wg.x * BN;
  let ohw = p.out_h * p.out_w;
  let ncols = p.n * ohw;

  // The X element this thread gathers: one column (WG is a multiple of BN),
  // rows bk, bk + WG/BN, ...
  let bn = t % BN;
  let bk = t / BN;
  let bstep = WG / BN;
  let col = col0 + bn;
  let col_ok = col < ncols;
  let img = col / ohw;
  let pix = col % ohw;
  let oy = pix / p.out_w;
  let ox = pix % p.out_w;
  let in_hw = p.in_h * p.in_w;
  let in_base = p.in_off + img * p.in_stride + g * p.in_c * in_hw;
  let iy0 = i32(oy * p.sh) - i32(p.ph);
  let ix0 = i32(ox * p.sw) - i32(p.pw);
  let khw = p.kh * p.kw;

  var acc: array<f32, 16>;
  let kbeg = wg.z * p.k_split;
  let kend = min(p.k, kbeg + p.k_split);
  for (var k0 = kbeg; k0 < kend; k0 += BK) {
    // A: BK x BM weights (zero-padded in the layout: no bounds checks).
    if (WEIGHT_F32) {
      for (var i = t; i < BK * BM; i += WG) {
        let m = i % BM;
        let kk = i / BM;
        As[kk * TY + m / 4u][m % 4u] = bitcast<f32>(w[(g * p.k_pad + k0 + kk) * p.m_pad + m0 + m]);
      }
    } else {
      for (var i = t; i < BK * BM / 2u; i += WG) {
        let m = i % BM;
        let kp = i / BM;
        let v = unpack2x16float(w[(g * p.k_pad / 2u + k0 / 2u + kp) * p.m_pad + m0 + m]);
        As[(2u * kp) * TY + m / 4u][m % 4u] = v.x;
        As[(2u * kp + 1u) * TY + m / 4u][m % 4u] = v.y;
      }
    }
    // B: BK x BN of the implicit im2col matrix.
    for (var kk = bk; kk < BK; kk += bstep) {
      let kidx = k0 + kk;
      var v = 0.0;
      if (col_ok && kidx < kend) {
        if (IS_1X1) {
          v = x[in_base + kidx * in_hw + pix];
        } else {
          let c = kidx / khw;
          let r = kidx % khw;
          let iy = iy0 + i32((r / p.kw) * p.dh);
          let ix = ix0 + i32((r % p.kw) * p.dw);
          if (iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w)) {
            v = x[in_base + c * in_hw + u32(iy) * p.in_w + u32(ix)];
          }
        }
      }
      Bs[kk * TX + bn / 4u][bn % 4u] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let a = As[kk * TY + lid.y];
      let b = Bs[kk * TX + lid.x];
      for (var i = 0u; i < 4u; i++) {
        acc[i * 4u] = fma(a[i], b.x, acc[i * 4u]);
        acc[i * 4u + 1u] = fma(a[i], b.y, acc[i * 4u + 1u]);
        acc[i * 4u + 2u] = fma(a[i], b.z, acc[i * 4u + 2u]);
        acc[i * 4u + 3u] = fma(a[i], b.w, acc[i * 4u + 3u]);
      }
    }
    workgroupBarrier();
  }

  let total_oc = p.groups * p.out_c;
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y * 4u + i;
    if (m >= p.out_c) {
      break;
    }
    let oc = g * p.out_c + m;
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + lid.x * 4u + j;
      if (c >= ncols) {
        break;
      }
      if (SPLIT) {
        partial[(wg.z * total_oc + oc) * ncols + c] = acc[i * 4u + j];
      } else {
        finish(oc, c, acc[i * 4u + j]);
      }
    }
  }
}

// reduce: one thread per output value, summing its K splits in order.
@compute @workgroup_size(256)
fn reduce(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) t: u32) {
  let idx = (wg.y * nwg.x + wg.x) * 256u + t;
  let total_oc = p.groups * p.out_c;
  let ncols = p.n * p.out_h * p.out_w;
  if (idx >= total_oc * ncols) {
    return;
  }
  var s = 0.0;
  for (var z = 0u; z < p.splits; z++) {
    s += partial[z * total_oc * ncols + idx];
  }
  finish(idx / ncols, idx % ncols, s);
}
