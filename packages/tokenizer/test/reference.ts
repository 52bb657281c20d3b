/**
 * Float64 reference implementations written straight from PyTorch's definitions
 * (per output pixel, no matrices), used to check the tokenizer's resampling
 * matrices and graphs independently.
 */

/** A float64 image stack `[N, H, W]` (N = B·C planes). */
export interface Planes {
  n: number;
  h: number;
  w: number;
  data: Float64Array;
}

/** PyTorch `upsample_bicubic2d(align_corners=False)` on one plane stack, directly from its 4×4 formula. */
export function bicubic2d(x: Planes, outH: number, outW: number): Planes {
  const A = -0.75;
  const cc1 = (t: number) => ((A + 2) * t - (A + 3)) * t * t + 1;
  const cc2 = (t: number) => ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
  const coeffs = (t: number) => [cc2(t + 1), cc1(t), cc1(1 - t), cc2(2 - t)];
  const out = new Float64Array(x.n * outH * outW);
  const clamp = (v: number, n: number) => Math.min(Math.max(v, 0), n - 1);
  for (let p = 0; p < x.n; p++) {
    for (let oy = 0; oy < outH; oy++) {
      const ry = (x.h / outH) * (oy + 0.5) - 0.5;
      const iy = Math.floor(ry);
      const wy = coeffs(ry - iy);
      for (let ox = 0; ox < outW; ox++) {
        const rx = (x.w / outW) * (ox + 0.5) - 0.5;
        const ix = Math.floor(rx);
        const wx = coeffs(rx - ix);
        let acc = 0;
        for (let a = 0; a < 4; a++) {
          const yy = clamp(iy - 1 + a, x.h);
          let row = 0;
          for (let b = 0; b < 4; b++) row += wx[b] * x.data[(p * x.h + yy) * x.w + clamp(ix - 1 + b, x.w)];
          acc += wy[a] * row;
        }
        out[(p * outH + oy) * outW + ox] = acc;
      }
    }
  }
  return { n: x.n, h: outH, w: outW, data: out };
}

/** PyTorch `adaptive_avg_pool2d` (= `interpolate(mode="area")`), directly from its window definition. */
export function area2d(x: Planes, outH: number, outW: number): Planes {
  const out = new Float64Array(x.n * outH * outW);
  for (let p = 0; p < x.n; p++) {
    for (let oy = 0; oy < outH; oy++) {
      const y0 = Math.floor((oy * x.h) / outH);
      const y1 = Math.ceil(((oy + 1) * x.h) / outH);
      for (let ox = 0; ox < outW; ox++) {
        const x0 = Math.floor((ox * x.w) / outW);
        const x1 = Math.ceil(((ox + 1) * x.w) / outW);
        let acc = 0;
        for (let y = y0; y < y1; y++) for (let xx = x0; xx < x1; xx++) acc += x.data[(p * x.h + y) * x.w + xx];
        out[(p * outH + oy) * outW + ox] = acc / ((y1 - y0) * (x1 - x0));
      }
    }
  }
  return { n: x.n, h: outH, w: outW, data: out };
}

/** A 3×3 conv with padding 1 on `[B, C, H, W]` in float64 (PyTorch Conv2d semantics, weight `[O, I, 3, 3]`). */
export function conv3x3(
  x: Float64Array,
  B: number,
  C: number,
  H: number,
  W: number,
  weight: ArrayLike<number>,
  bias: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(x.length);
  for (let b = 0; b < B; b++)
    for (let o = 0; o < C; o++)
      for (let y = 0; y < H; y++)
        for (let xx = 0; xx < W; xx++) {
          let acc = bias[o];
          for (let i = 0; i < C; i++)
            for (let ky = 0; ky < 3; ky++)
              for (let kx = 0; kx < 3; kx++) {
                const sy = y + ky - 1;
                const sx = xx + kx - 1;
                if (sy < 0 || sy >= H || sx < 0 || sx >= W) continue;
                acc += weight[((o * C + i) * 3 + ky) * 3 + kx] * x[((b * C + i) * H + sy) * W + sx];
              }
          out[((b * C + o) * H + y) * W + xx] = acc;
        }
  return out;
}

/** Applies `[out, in]` row/column matrices separably: `R_h · X · R_wᵀ` per plane, in float64. */
export function applySeparable(x: Planes, mh: Float64Array, outH: number, mw: Float64Array, outW: number): Planes {
  const out = new Float64Array(x.n * outH * outW);
  for (let p = 0; p < x.n; p++)
    for (let oy = 0; oy < outH; oy++)
      for (let ox = 0; ox < outW; ox++) {
        let acc = 0;
        for (let y = 0; y < x.h; y++) {
          const a = mh[oy * x.h + y];
          if (a === 0) continue;
          for (let xx = 0; xx < x.w; xx++) acc += a * mw[ox * x.w + xx] * x.data[(p * x.h + y) * x.w + xx];
        }
        out[(p * outH + oy) * outW + ox] = acc;
      }
  return { n: x.n, h: outH, w: outW, data: out };
}

/** Deterministic values in [−1, 1). */
export function pseudoRandom(n: number, seed: number): Float64Array {
  const out = new Float64Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** ‖a − b‖ / ‖b‖. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}
