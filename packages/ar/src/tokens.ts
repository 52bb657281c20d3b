/**
 * Small reshuffles of token maps between graphs (last token, grid layout,
 * MaskGIT subsets and orders). They copy, never compute.
 */
import { type Tensor, tensor } from "@hart/core";
import type { RandomSource } from "./sampling";

/** Row-major grid positions `0..n-1`, one array per batch row. */
export function allPositions(B: number, n: number): Int32Array[] {
  const row = Int32Array.from({ length: n }, (_, i) => i);
  return Array.from({ length: B }, () => row);
}

/** `x[:, -1:]` of a `[N, l, D]` tensor. */
export function lastToken(x: Tensor<"float32">): Tensor<"float32"> {
  const [N, l, D] = x.shape;
  const out = new Float32Array(N * D);
  for (let n = 0; n < N; n++) out.set(x.data.subarray((n * l + l - 1) * D, (n * l + l) * D), n * D);
  return tensor("float32", [N, 1, D], out);
}

/** `[B, l, Cvae]` → `[B, Cvae, pn, pn]` (`h.transpose(1, 2).reshape(B, Cvae, pn, pn)`). */
export function toBChw(h: Tensor<"float32">, pn: number): Tensor<"float32"> {
  const [B, l, Cv] = h.shape;
  const out = new Float32Array(B * l * Cv);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < l; j++) for (let c = 0; c < Cv; c++) out[(b * Cv + c) * l + j] = h.data[(b * l + j) * Cv + c];
  }
  return tensor("float32", [B, Cv, pn, pn], out);
}

/** Tokens of `x` `[N, L, C]` at per-row positions (row n uses `positions[n mod B]`). */
export function gatherTokens(x: Tensor<"float32">, positions: readonly Int32Array[]): Tensor<"float32"> {
  const [N, L, C] = x.shape;
  const B = positions.length;
  const l = positions[0].length;
  const out = new Float32Array(N * l * C);
  for (let n = 0; n < N; n++) {
    const pos = positions[n % B];
    for (let j = 0; j < l; j++)
      out.set(x.data.subarray((n * L + pos[j]) * C, (n * L + pos[j] + 1) * C), (n * l + j) * C);
  }
  return tensor("float32", [N, l, C], out);
}

/** A random generation order of the last scale's tokens per image (Fisher–Yates). */
export function maskgitOrders(random: RandomSource, B: number, n: number): Int32Array[] {
  return Array.from({ length: B }, () => {
    const order = Int32Array.from({ length: n }, (_, i) => i);
    const u = random.uniform(n);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.min(i, Math.floor(u[i] * (i + 1)));
      [order[i], order[j]] = [order[j], order[i]];
    }
    return order;
  });
}

/** Rows `[from, to)` of a `[N, ...]` tensor (a view, no copy). */
export function rowsOf<T extends Tensor>(t: T, from: number, to: number): T {
  const per = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return tensor(t.dtype, [to - from, ...t.shape.slice(1)], t.data.subarray(from * per, to * per) as T["data"]) as T;
}

/** Whether every row `[from, to)` of a `[N, l, D]` tensor repeats its first token exactly. */
export function rowsRepeatFirstToken(x: Tensor<"float32">, from: number, to: number): boolean {
  const [, l, D] = x.shape;
  for (let n = from; n < to; n++) {
    const first = n * l * D;
    for (let j = 1; j < l; j++) {
      const at = (n * l + j) * D;
      for (let c = 0; c < D; c++) if (x.data[at + c] !== x.data[first + c]) return false;
    }
  }
  return true;
}

/** `x[from:to, :1]` of a `[N, l, D]` tensor, as `[to - from, 1, D]`. */
export function firstTokenOf(x: Tensor<"float32">, from: number, to: number): Tensor<"float32"> {
  const [, l, D] = x.shape;
  const out = new Float32Array((to - from) * D);
  for (let n = from; n < to; n++) out.set(x.data.subarray(n * l * D, (n * l + 1) * D), (n - from) * D);
  return tensor("float32", [to - from, 1, D], out);
}

/**
 * Stacks `[R, ..., l, W]` rows over `[R', ..., 1, W]` rows whose one token is repeated `l` times:
 * `cat(a, b.expand(.., l, W))` along the first axis (any element type).
 */
export function stackRepeated<T extends Tensor>(a: T, b: T): T {
  const d = a.shape.length;
  const l = a.shape[d - 2];
  const W = a.shape[d - 1];
  const rowsA = a.data.length / (l * W);
  const rowsB = b.data.length / W;
  const out = new (a.data.constructor as new (n: number) => T["data"])((rowsA + rowsB) * l * W);
  out.set(a.data as never);
  for (let r = 0; r < rowsB; r++) {
    const token = b.data.subarray(r * W, (r + 1) * W);
    for (let j = 0; j < l; j++) out.set(token as never, ((rowsA + r) * l + j) * W);
  }
  return tensor(a.dtype, [a.shape[0] + b.shape[0], ...a.shape.slice(1)], out) as T;
}
