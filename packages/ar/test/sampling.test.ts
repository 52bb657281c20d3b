/** The sampling pieces: the filter graph against float64 top-k/top-p, inverse-CDF sampling, replay checks, the per-scale plan. */
import { createSession, HartError, tensor } from "@hart/core";
import { describe, expect, it } from "vitest";
import { buildFilterGraph } from "../src/graphs/sampling";
import { filterLogits, multinomialSampler, replaySampler, scalePlan } from "../src/index";

function logits(rows: number, V: number, seed: number): Float32Array {
  const out = new Float32Array(rows * V);
  let s = seed;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = Math.fround((s / 2 ** 32 - 0.5) * 6);
  }
  return out;
}

/** float64 `sample_with_top_k_top_p_` masking: the kept codes of one row. */
function kept(row: number[], k: number, p: number): Set<number> {
  const kth = [...row].sort((a, b) => b - a)[k - 1];
  let keep = row.map((v, i) => [v, i]).filter(([v]) => v >= kth);
  if (p > 0) {
    keep.sort((a, b) => a[0] - b[0]);
    const mx = keep[keep.length - 1][0];
    const z = keep.reduce((s, [v]) => s + Math.exp(v - mx), 0);
    let cum = 0;
    keep = keep.filter(([v], j) => {
      cum += Math.exp(v - mx) / z;
      return !(cum <= 1 - p) || j === keep.length - 1;
    });
  }
  return new Set(keep.map(([, i]) => i));
}

describe("filterLogits", () => {
  for (const [k, p] of [
    [7, 0],
    [50, 0],
    [20, 0.6],
    [64, 0.9],
  ]) {
    it(`keeps the reference's codes (top-k ${k}, top-p ${p}) and returns their softmax`, async () => {
      const V = 64;
      const data = logits(6, V, 17 + k);
      data[5] = data[6]; // a tie
      const session = await createSession(buildFilterGraph(V, p > 0));
      const { filteredBLV, probsBLV } = await filterLogits(session, tensor("float32", [2, 3, V], data), k, p);
      for (let r = 0; r < 6; r++) {
        const row = Array.from(data.subarray(r * V, (r + 1) * V));
        const want = kept(row, k, p);
        const got = new Set(row.map((_, i) => i).filter((i) => filteredBLV.data[r * V + i] > Number.NEGATIVE_INFINITY));
        expect(got).toEqual(want);
        const mx = Math.max(...row);
        const z = [...want].reduce((s, i) => s + Math.exp(row[i] - mx), 0);
        for (let i = 0; i < V; i++) {
          const ref = want.has(i) ? Math.exp(row[i] - mx) / z : 0;
          expect(Math.abs(probsBLV.data[r * V + i] - ref)).toBeLessThan(1e-6);
        }
      }
      await session.release();
    });
  }
});

describe("samplers", () => {
  const probs = tensor("float32", [1, 2, 4], Float32Array.of(0, 0.5, 0, 0.5, 0.25, 0.25, 0.25, 0.25));
  const request = (u: number[]) => ({
    si: 0,
    filteredBLV: probs,
    probsBLV: probs,
    positions: [Int32Array.of(0, 1)],
    random: { uniform: () => u, gumbel: () => probs },
  });

  it("inverts the cumulative distribution and never picks a zero-probability code", async () => {
    const pick = async (u: number[]) => Array.from((await multinomialSampler.sample(request(u))).data, Number);
    expect(await pick([0, 0])).toEqual([1, 0]);
    expect(await pick([0.49, 0.26])).toEqual([1, 1]);
    expect(await pick([0.5, 0.74])).toEqual([3, 2]);
    expect(await pick([0.999, 0.999])).toEqual([3, 3]);
  });

  it("replays recorded codes and refuses codes outside the filtered set", async () => {
    const ok = replaySampler([tensor("int64", [1, 2], BigInt64Array.of(3n, 2n))]);
    expect(Array.from((await ok.sample(request([]))).data)).toEqual([3n, 2n]);
    const bad = replaySampler([tensor("int64", [1, 2], BigInt64Array.of(2n, 2n))]);
    expect(() => bad.sample(request([]))).toThrow(HartError);
    expect(() => replaySampler([]).sample(request([]))).toThrow(/no recorded indices/);
  });
});

describe("scalePlan", () => {
  it("follows the released schedule: top-k 600 then 300, the last scale keeps the previous ratio", () => {
    const pns = [1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 48, 64];
    const plan = scalePlan(pns, 4.5);
    expect(plan.map((s) => s.topK)).toEqual(pns.map((_, si) => (si < 7 ? 600 : 300)));
    expect(plan[13].ratio).toBe(12 / 13);
    expect(plan[13].t).toBe(4.5 * (12 / 13));
    expect(plan[5].gumbelTau).toBe(Math.max(0.27 * (1 - (5 / 13) * 0.95), 0.005));
    expect(scalePlan(pns, 4.5, { lastScaleRatio: "last" })[13].t).toBe(4.5);
    expect(scalePlan(pns, 1, { topK: (si) => si })[3].topK).toBe(3);
  });
});
