/**
 * Every config variant against the float64 re-implementation of the official
 * scale loop (test/reference.ts), on tiny models with random weights: the
 * guided logits of every step and the diffusion conditioning must agree, and
 * the sampled codes must lie inside the reference's top-k / top-p set.
 */
import type { Tensor } from "@hart/core";
import { describe, expect, it } from "vitest";
import { HartTransformer, randomTransformerStateDict } from "../src/index";
import { lcgRandom, tinyConfig, tinyContext, tinyQuantizer } from "./helpers";
import { referenceGenerate } from "./reference";

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return worst;
}

/** Codes of `guided` rows [rows, V] kept by top-k then top-p (float64, the reference's rule). */
function keptSets(guided: Float64Array, V: number, topK: number, topP: number): Set<number>[] {
  const sets: Set<number>[] = [];
  for (let r = 0; r < guided.length / V; r++) {
    const row = Array.from(guided.subarray(r * V, (r + 1) * V));
    const kth = [...row].sort((a, b) => b - a)[Math.min(topK, V) - 1];
    let kept = row.map((v, i) => (v >= kth - 1e-4 ? i : -1)).filter((i) => i >= 0);
    if (topP > 0) {
      const asc = [...kept].sort((a, b) => row[a] - row[b]);
      const mx = Math.max(...asc.map((i) => row[i]));
      const z = asc.reduce((s, i) => s + Math.exp(row[i] - mx), 0);
      let cum = 0;
      const removed = new Set<number>();
      for (const [j, i] of asc.entries()) {
        cum += Math.exp(row[i] - mx) / z;
        // the float32 cumulative sum may land on either side of the threshold near it
        if (cum <= 1 - topP - 1e-4 && j < asc.length - 1) removed.add(i);
      }
      kept = kept.filter((i) => !removed.has(i));
    }
    sets.push(new Set(kept));
  }
  return sets;
}

const variants: { name: string; overrides: Record<string, unknown>; iters?: number; topP?: number; B?: number[] }[] = [
  { name: "llama, adaLN (avg pooling), sinusoidal levels, context norm", overrides: {} },
  {
    name: "gpt2 attention (absolute positions, LayerNorm) and gpt2 FFN, learned levels, adaLN (max pooling)",
    overrides: {
      attn_type: "gpt2",
      mlp_type: "gpt2",
      use_timestep_embed: false,
      sep_aln_pooling_mode: "max",
      use_context_norm: false,
    },
  },
  {
    name: "release-like plain blocks (disable_aln) with 3 MaskGIT iterations and top-p",
    overrides: { disable_aln: true, sep_aln_pooling_mode: "max" },
    iters: 3,
    topP: 0.8,
  },
  { name: "shared_aln table + attn_l2_norm", overrides: { disable_aln: true, shared_aln: true, attn_l2_norm: true } },
  { name: "B = 1", overrides: { disable_aln: true }, B: [4] },
];

describe("scale loop vs float64 reference", () => {
  for (const v of variants) {
    it(v.name, async () => {
      const cfg = tinyConfig(v.overrides);
      const quantizer = tinyQuantizer(cfg.patchNums);
      const sd = randomTransformerStateDict(cfg, {
        vocabSize: quantizer.vocabSize,
        latentChannels: quantizer.latentChannels,
        seed: 5,
      });
      const model = await HartTransformer.fromStateDict(cfg, sd, quantizer);
      const context = tinyContext(cfg.contextToken, cfg.contextDim, v.B ?? [5, 3]);
      const seen = new Map<string, Tensor>();
      const topK = 20;
      const result = await model.generate(context, {
        cfg: 3,
        topK,
        topP: v.topP,
        numMaskgitIters: v.iters,
        random: lcgRandom(11),
        trace: (name, t) => seen.set(name, t),
      });
      const ref = await referenceGenerate(cfg, sd, quantizer, context, {
        cfg: 3,
        codes: result.indices,
        iters: v.iters,
        orders: seen.get("last.orders") as Tensor<"int64"> | undefined,
      });
      const SN = cfg.patchNums.length;
      const names = [
        ...Array.from({ length: SN - 1 }, (_, si) => `s${si}.logits_cfg`),
        ...(v.iters
          ? Array.from({ length: v.iters }, (_, k) => `s${SN - 1}.iter${k}.logits_cfg`)
          : [`s${SN - 1}.logits_cfg`]),
      ];
      expect(ref.guided.length).toBe(names.length);
      const V = quantizer.vocabSize;
      for (const [k, name] of names.entries()) {
        const mine = seen.get(name);
        expect(mine, name).toBeDefined();
        expect(maxRelDiff(mine!.data as Float32Array, ref.guided[k]), name).toBeLessThan(2e-5);
      }
      expect(maxRelDiff(result.diffusionCond.data, ref.stageCond)).toBeLessThan(2e-5);
      // every sampled code is one the reference's filter keeps
      for (let si = 0; si < SN - 1; si++) {
        const kept = keptSets(ref.guided[si], V, topK, v.topP ?? 0);
        const idx = result.indices[si].data;
        for (const [r, set] of kept.entries()) expect(set.has(Number(idx[r])), `scale ${si} token ${r}`).toBe(true);
      }
      await model.release();
    });
  }
});
