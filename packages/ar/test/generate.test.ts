/**
 * The generation contract on a tiny random model: reproducibility by seed,
 * batch independence, result shapes, progress, cancellation and the input
 * errors.
 */
import { HartError, type Tensor, tensor } from "@hart/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { argmaxSampler, HartTransformer, randomTransformerStateDict } from "../src/index";
import { tinyConfig, tinyContext, tinyQuantizer } from "./helpers";

const cfg = tinyConfig({ disable_aln: true, sep_aln_pooling_mode: "max" });
const quantizer = tinyQuantizer(cfg.patchNums);
let model: HartTransformer;

beforeAll(async () => {
  const sd = randomTransformerStateDict(cfg, {
    vocabSize: quantizer.vocabSize,
    latentChannels: quantizer.latentChannels,
  });
  model = await HartTransformer.fromStateDict(cfg, sd, quantizer);
});
afterAll(() => model.release());

const context = tinyContext(5, 12, [5, 2]);
const codes = (r: { indices: Tensor<"int64">[] }) => r.indices.map((t) => Array.from(t.data, Number));

describe("HartTransformer.generate", () => {
  it("gives the same codes for the same seed and different codes for different seeds", async () => {
    const a = await model.generate(context, { cfg: 4.5, seed: 7 });
    const b = await model.generate(context, { cfg: 4.5, seed: 7 });
    const c = await model.generate(context, { cfg: 4.5, seed: 8 });
    expect(codes(b)).toEqual(codes(a));
    expect(Array.from(b.diffusionCond.data)).toEqual(Array.from(a.diffusionCond.data));
    expect(codes(c)).not.toEqual(codes(a));
    const s1 = await model.generate(context, { cfg: 4.5, seed: 7, moreSmooth: true });
    const s2 = await model.generate(context, { cfg: 4.5, seed: 7, moreSmooth: true });
    expect(codes(s2)).toEqual(codes(s1));
    expect(Array.from(s2.lastHBLC.data)).toEqual(Array.from(s1.lastHBLC.data));
  });

  it("returns the documented shapes and the last scale's guidance", async () => {
    const S = cfg.patchNums.length;
    const HW = cfg.patchNums[S - 1];
    const r = await model.generate(context, { cfg: 3, seed: 1 });
    expect(r.indices.map((t) => t.shape)).toEqual(cfg.patchNums.map((pn, si) => [2, si === 0 ? 1 : pn * pn]));
    expect(r.fHatBCHW.shape).toEqual([2, quantizer.latentChannels, HW, HW]);
    expect(r.lastHBLC.shape).toEqual([2, HW * HW, quantizer.latentChannels]);
    expect(r.diffusionCond.shape).toEqual([4 * HW * HW, cfg.embedDim]);
    expect(r.lastCfg).toBeCloseTo((3 * (S - 2)) / (S - 1), 12);
    const exact = await model.generate(context, { cfg: 3, seed: 1, lastScaleRatio: "last" });
    expect(exact.lastCfg).toBe(3);
  });

  it("treats the images of a batch independently", async () => {
    const both = await model.generate(context, { cfg: 2, sampler: argmaxSampler });
    for (const b of [0, 1]) {
      const one = {
        contextBLD: tensor("float32", [1, 5, 12], context.contextBLD.data.slice(b * 60, (b + 1) * 60)),
        mask: tensor("bool", [1, 5], context.mask.data.slice(b * 5, (b + 1) * 5)),
        positionIds: tensor("int64", [1, 5], context.positionIds.data.slice(b * 5, (b + 1) * 5)),
      };
      const single = await model.generate(one, { cfg: 2, sampler: argmaxSampler });
      for (const [si, t] of single.indices.entries()) {
        const l = t.shape[1];
        expect(Array.from(t.data), `scale ${si}`).toEqual(Array.from(both.indices[si].data.slice(b * l, (b + 1) * l)));
      }
      const n = single.lastHBLC.data.length;
      expect(Array.from(single.lastHBLC.data)).toEqual(Array.from(both.lastHBLC.data.slice(b * n, (b + 1) * n)));
    }
  });

  it("reports progress once per scale", async () => {
    const events: { scale: number; step: number; total: number; stage: string }[] = [];
    await model.generate(context, { cfg: 1, onProgress: (e) => events.push(e) });
    expect(events.map((e) => e.scale)).toEqual(cfg.patchNums.map((_, i) => i));
    expect(events.every((e) => e.stage === "ar" && e.total === cfg.patchNums.length && e.step === e.scale + 1)).toBe(
      true,
    );
  });

  it("stops when the signal is aborted", async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(model.generate(context, { cfg: 1, signal: controller.signal })).rejects.toMatchObject({
      name: "AbortError",
    });
  });

  it("rejects bad inputs with errors naming them", async () => {
    const bad = async (
      ctx: Parameters<typeof model.generate>[0],
      options: Parameters<typeof model.generate>[1],
      pattern: RegExp,
    ) => {
      const err = await model.generate(ctx, options).catch((e) => e);
      expect(err).toBeInstanceOf(HartError);
      expect((err as Error).message).toMatch(pattern);
    };
    await bad(tinyContext(4, 12, [4]), { cfg: 1 }, /context_token = 5/);
    await bad(tinyContext(5, 16, [5]), { cfg: 1 }, /context_dim = 12/);
    const empty = {
      contextBLD: tensor("float32", [0, 5, 12], new Float32Array(0)),
      mask: tensor("bool", [0, 5], new Uint8Array(0)),
      positionIds: tensor("int64", [0, 5], new BigInt64Array(0)),
    };
    await bad(empty, { cfg: 1 }, /empty batch/);
    await bad(context, { cfg: Number.NaN }, /cfg must be a finite number/);
    await bad(context, { cfg: Number.POSITIVE_INFINITY }, /cfg must be a finite number/);
    await bad({ ...context, mask: tensor("bool", [2, 4], new Uint8Array(8)) }, { cfg: 1 }, /context\.mask/);
    await bad(
      { ...context, positionIds: tensor("int32", [2, 5], new Int32Array(10)) as never },
      { cfg: 1 },
      /positionIds/,
    );
    await bad(context, { cfg: 1, topP: 1 }, /topP/);
    await bad(context, { cfg: 1, numMaskgitIters: 0 }, /numMaskgitIters/);
    await bad(context, { cfg: 1, topK: -1 }, /topK/);
  });

  it("refuses a quantizer with another schedule or codebook", async () => {
    const sd = randomTransformerStateDict(cfg, {
      vocabSize: quantizer.vocabSize,
      latentChannels: quantizer.latentChannels,
    });
    await expect(HartTransformer.fromStateDict(cfg, sd, tinyQuantizer([1, 2, 3, 4]))).rejects.toThrow(/schedule/);
    await expect(HartTransformer.fromStateDict(cfg, sd, tinyQuantizer(cfg.patchNums, 40))).rejects.toThrow(/V=40/);
  });
});
