/** The in-place KV cache keeps every row's tokens contiguous as scales are appended. */
import { tensor, toFloat16 } from "@hart/core";
import { describe, expect, it } from "vitest";
import { KVCache } from "../src/kv-cache";

describe("KVCache", () => {
  it("appends per-row token blocks in [N, P, C] order", () => {
    const N = 3;
    const C = 2;
    const cache = new KVCache(1, N, C, 6);
    const block = (l: number, tag: number) => {
      const d = new Float32Array(N * l * C);
      for (let n = 0; n < N; n++)
        for (let j = 0; j < l; j++) for (let c = 0; c < C; c++) d[(n * l + j) * C + c] = tag + 100 * n + 10 * j + c;
      return tensor("float32", [N, l, C], d);
    };
    const expected: number[][] = Array.from({ length: N }, () => []);
    for (const [l, tag] of [
      [1, 1000],
      [2, 2000],
      [3, 3000],
    ]) {
      const k = block(l, tag);
      cache.append(0, k, block(l, tag + 5));
      for (let n = 0; n < N; n++) expected[n].push(...k.data.slice(n * l * C, (n + 1) * l * C));
    }
    const past = cache.past(0);
    expect(past.k.shape).toEqual([N, 6, C]);
    expect(Array.from(past.k.data as Float32Array)).toEqual(expected.flat());
    expect(past.v.data[0]).toBe(1005);
    expect(() => cache.append(0, block(1, 0), block(1, 0))).toThrow(/exceed/);
  });

  it("keeps the fused graphs' [N, H, P, hd] layout (per head rows) in float16", () => {
    const [N, H, hd] = [2, 3, 2];
    const cache = new KVCache(1, N, hd, 5, H, "float16");
    const block = (l: number, tag: number) =>
      toFloat16(
        tensor(
          "float32",
          [N, H, l, hd],
          Float32Array.from({ length: N * H * l * hd }, (_, i) => tag + i),
        ),
      );
    const a = block(2, 0);
    const b = block(3, 100);
    cache.append(0, a, a);
    cache.append(0, b, b);
    const past = cache.past(0);
    expect(past.k.dtype).toBe("float16");
    expect(past.k.shape).toEqual([N, H, 5, hd]);
    // row (n, h) holds its 2 tokens of the first scale, then its 3 of the second
    const rows = Array.from({ length: N * H }, (_, r) => [
      ...a.data.subarray(r * 2 * hd, (r + 1) * 2 * hd),
      ...b.data.subarray(r * 3 * hd, (r + 1) * 3 * hd),
    ]);
    expect(Array.from(past.k.data as Uint16Array)).toEqual(rows.flat());
    expect(cache.bytes).toBe(2 * N * H * 5 * hd * 2);
    expect(() => cache.append(0, block(1, 0), tensor("float32", [N, H, 1, hd], new Float32Array(N * H * hd)))).toThrow(
      /do not fit/,
    );
  });
});
