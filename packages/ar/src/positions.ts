/**
 * Positions fed to the RoPE graph, computed with the reference's float32
 * rounding (`p = f32(f32(r/pn)·HW) + offset`). Only exact IEEE operations are
 * used here; cos/sin/pow run in onnxruntime (see graphs/encodings.ts).
 */
import { type Tensor, tensor } from "@hart/core";

const f32 = Math.fround;

/** Frequency exponents `f32(idx/hd)` per head-dim element; idx = (i mod hd/k)·k for stride k (2: 1-D, 4: 2-D). */
export function ropeExponents(hd: number, stride: 2 | 4): Tensor<"float32"> {
  const period = hd / stride;
  const out = new Float32Array(hd);
  for (let i = 0; i < hd; i++) out[i] = f32(((i % period) * stride) / hd);
  return tensor("float32", [hd], out);
}

/** 1-D positions of the context tokens: each head-dim element of token t sees `positionIds[n, t]`. */
export function contextPositions(positionIds: ArrayLike<bigint>, N: number, T: number, hd: number): Tensor<"float32"> {
  const out = new Float32Array(N * T * hd);
  for (let r = 0; r < N * T; r++) out.fill(Number(positionIds[r]), r * hd, (r + 1) * hd);
  return tensor("float32", [N, T, hd], out);
}

/**
 * 2-D positions of image tokens of a pn×pn scale: token (r, c) has
 * `p_r = f32(f32(r/pn)·HW) + offset[n]` on the first half of the head dim and
 * `p_c` likewise on the second (HW = last scale's side, offset = the row's last
 * context position id). `positions[n mod B]` lists the grid positions fed in.
 */
export function imagePositions(
  pn: number,
  HW: number,
  offsets: Float32Array,
  positions: readonly Int32Array[],
  hd: number,
): Tensor<"float32"> {
  const N = offsets.length;
  const B = positions.length;
  const l = positions[0].length;
  const out = new Float32Array(N * l * hd);
  for (let n = 0; n < N; n++) {
    for (let t = 0; t < l; t++) {
      const pos = positions[n % B][t];
      const pr = f32(f32(f32(Math.floor(pos / pn) / pn) * HW) + offsets[n]);
      const pc = f32(f32(f32((pos % pn) / pn) * HW) + offsets[n]);
      const base = (n * l + t) * hd;
      out.fill(pr, base, base + hd / 2);
      out.fill(pc, base + hd / 2, base + hd);
    }
  }
  return tensor("float32", [N, l, hd], out);
}
