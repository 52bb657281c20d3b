/**
 * The fused transformer graphs (the CUDA forms: SimplifiedLayerNormalization, SkipSimplifiedLayerNormalization,
 * RotaryEmbedding, MultiHeadAttention with past/present keys/values) compute the plain graphs' function. Every op
 * has a CPU kernel, so both flavours run here in float32: one block on its own, then whole generations.
 */
import { createSession, HartError, relativeError, type Tensor, tensor, toFloat16 } from "@hart/core";
import { describe, expect, it } from "vitest";
import { headDim, mlpHidden } from "../src/config";
import { type BlockWeights, buildBlockGraph } from "../src/graphs/block";
import { buildRopeGraph } from "../src/graphs/encodings";
import { HartTransformer, randomTransformerStateDict, replaySampler } from "../src/index";
import { imagePositions, ropeExponents } from "../src/positions";
import { lcgRandom, tinyConfig, tinyContext, tinyModel, tinyQuantizer, tracedTinyRun } from "./helpers";

const FUSED = { flavour: "fused", precision: "float32" } as const;
const HALF = { flavour: "fused", precision: "float16" } as const;

/** ‖a − b‖₂ / ‖b‖₂, printed so the run shows the measured error. */
function relErr(label: string, actual: Tensor, expected: Tensor | Float32Array): number {
  const err = relativeError(actual, expected);
  console.log(`${label}: relative error ${err.toExponential(2)}`);
  return err;
}

let seed = 1;
function rand(shape: number[], scale = 1, offset = 0): Tensor<"float32"> {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    data[i] = offset + scale * (seed / 2 ** 32 - 0.5) * 2;
  }
  return tensor("float32", shape, data);
}

/** `[N, T, C]` → `[N, H, T, hd]`. */
function toHeads(t: Tensor<"float32">, H: number): Float32Array {
  const [N, T, C] = t.shape;
  const hd = C / H;
  const out = new Float32Array(t.data.length);
  for (let n = 0; n < N; n++)
    for (let p = 0; p < T; p++)
      for (let h = 0; h < H; h++)
        for (let i = 0; i < hd; i++) out[((n * H + h) * T + p) * hd + i] = t.data[((n * T + p) * H + h) * hd + i];
  return out;
}

describe("fused transformer block", () => {
  for (const [name, overrides] of [
    ["adaLN block", {}],
    ["plain block with attn_l2_norm", { disable_aln: true, shared_aln: true, attn_l2_norm: true }],
  ] as const) {
    it(`${name}: 2-D RoPE scale over a cache, fused vs plain`, async () => {
      const cfg = tinyConfig(overrides);
      const C = cfg.embedDim;
      const H = cfg.numHeads;
      const hd = headDim(cfg);
      const hidden = mlpHidden(cfg);
      const w: BlockWeights = {
        qkvOI: rand([3 * C, C], Math.sqrt(3 / C)),
        qkvBias: rand([3 * C], 0.05),
        projOI: rand([C, C], Math.sqrt(3 / C)),
        projB: rand([C], 0.05),
        normW: rand([C], 0.1, 1),
        ffn: { kind: "llama", gateUpOI: rand([2 * hidden, C], Math.sqrt(3 / C)), downOI: rand([C, hidden], 0.1) },
        l2Scale: cfg.attnL2Norm ? rand([H, 1], 0.5, 2) : undefined,
      };
      const modulated = !cfg.disableAln;
      const [N, pn, P] = [4, 3, 7];
      const l = pn * pn;
      // HART's 2-D tables of a 3×3 scale: rows on the first half of the head dim, columns on the second
      const ropeSession = await createSession(buildRopeGraph(hd));
      const positions = [Int32Array.from({ length: l }, (_, i) => i), Int32Array.from({ length: l }, (_, i) => i)];
      const pos = imagePositions(pn, 8, Float32Array.of(4, 2, 0, 0), positions, hd);
      const { cos, sin } = await ropeSession.run({ pos, expo: ropeExponents(hd, 4) });
      await ropeSession.release();
      const x = rand([N, l, C], 2);
      const pastK = rand([N, P, C]);
      const pastV = rand([N, P, C]);
      const feeds: Record<string, Tensor> = { x, cos, sin };
      if (modulated) feeds.mod = rand([N, 6, C], 0.3);

      const plain = await createSession(buildBlockGraph(cfg, 0, w, modulated));
      const fused = await createSession(buildBlockGraph(cfg, 0, w, modulated, FUSED));
      const half = await createSession(buildBlockGraph(cfg, 0, w, modulated, HALF));
      const a = await plain.run({ ...feeds, pastK, pastV });
      const pastHeads = {
        pastK: tensor("float32", [N, H, P, hd], toHeads(pastK, H)),
        pastV: tensor("float32", [N, H, P, hd], toHeads(pastV, H)),
      };
      const b = await fused.run({ ...feeds, ...pastHeads });
      const c = await half.run({ ...feeds, pastK: toFloat16(pastHeads.pastK), pastV: toFloat16(pastHeads.pastV) });
      await plain.release();
      await fused.release();
      await half.release();
      expect(relErr(`ar block (${name}) y fused vs plain`, b.y, a.y)).toBeLessThan(1e-5);
      // the cache update: this scale's keys/values in [N, H, l, hd]
      expect(b.k.shape).toEqual([N, H, l, hd]);
      expect(relErr(`ar block (${name}) new k fused vs plain`, b.k, toHeads(a.k as Tensor<"float32">, H))).toBeLessThan(
        1e-5,
      );
      expect(relErr(`ar block (${name}) new v fused vs plain`, b.v, toHeads(a.v as Tensor<"float32">, H))).toBeLessThan(
        1e-5,
      );
      // float16 weights, activations and cache (float32 x/y at the boundary)
      expect(c.y.dtype).toBe("float32");
      expect(c.k.dtype).toBe("float16");
      expect(relErr(`ar block (${name}) y float16 fused vs float32 plain`, c.y, a.y)).toBeLessThan(1e-2);
      const newK = toHeads(a.k as Tensor<"float32">, H);
      const newV = toHeads(a.v as Tensor<"float32">, H);
      expect(relErr(`ar block (${name}) new k float16 vs float32`, c.k, newK)).toBeLessThan(1e-2);
      expect(relErr(`ar block (${name}) new v float16 vs float32`, c.v, newV)).toBeLessThan(1e-2);
    });
  }
});

describe("fused transformer generation", () => {
  for (const [name, overrides, iters] of [
    ["llama, adaLN", {}, 1],
    ["release-like plain blocks, 3 MaskGIT iterations", { disable_aln: true, sep_aln_pooling_mode: "max" }, 3],
    [
      "gpt2 attention (LayerNorm blocks, no RoPE)",
      { attn_type: "gpt2", mlp_type: "gpt2", use_timestep_embed: false, use_context_norm: false },
      1,
    ],
  ] as const) {
    it(`${name}: guided logits, codes and diffusion conditioning match the plain flavour`, async () => {
      const { cfg, quantizer, sd } = tinyModel(overrides);
      const context = tinyContext(cfg.contextToken, cfg.contextDim, [5, 3]);
      const run = async (graphFlavour: "plain" | "fused") => {
        const model = await HartTransformer.fromStateDict(cfg, sd, quantizer, { graphFlavour });
        const seen = new Map<string, Tensor>();
        const result = await model.generate(context, {
          cfg: 3,
          topK: 20,
          numMaskgitIters: iters,
          random: lcgRandom(21),
          trace: (n, t) => seen.set(n, t),
        });
        await model.release();
        return { result, seen };
      };
      const plain = await run("plain");
      const fused = await run("fused");
      const names = [...plain.seen.keys()].filter((n) => n.endsWith("logits_cfg"));
      expect(names.length).toBeGreaterThanOrEqual(cfg.patchNums.length);
      for (const n of names) {
        expect(
          relErr(`ar generate (${name}) ${n} fused vs plain`, fused.seen.get(n)!, plain.seen.get(n)!),
        ).toBeLessThan(1e-5);
      }
      for (const [si, idx] of plain.result.indices.entries()) expect(fused.result.indices[si].data).toEqual(idx.data);
      expect(
        relErr(
          `ar generate (${name}) diffusion cond fused vs plain`,
          fused.result.diffusionCond,
          plain.result.diffusionCond,
        ),
      ).toBeLessThan(1e-5);
    });
  }
});

describe("float16 transformer", () => {
  for (const [form, blockOptions] of [
    ["fused blocks", { graphFlavour: "fused" }],
    ["plain blocks with MatMul attention (the WebGPU form)", { attention: "matmul" }],
  ] as const) {
    it(`${form}: float16 blocks and cache give guided logits within float16 accuracy of float32 (same codes)`, async () => {
      const model = tinyModel();
      const run = (options: { dtype?: "float16" }, sampler?: ReturnType<typeof replaySampler>) =>
        tracedTinyRun(model, { ...blockOptions, ...options }, sampler);
      const full = await run({});
      // the float16 run replays the float32 run's codes, so every scale sees the same conditioning
      const half = await run({ dtype: "float16" }, replaySampler(full.result.indices));
      for (const [n, t] of full.seen) {
        if (n.endsWith("logits_cfg"))
          expect(relErr(`ar generate float16 (${form}) ${n}`, half.seen.get(n)!, t)).toBeLessThan(1e-2);
      }
      expect(
        relErr(`ar generate float16 (${form}) diffusion cond`, half.result.diffusionCond, full.result.diffusionCond),
      ).toBeLessThan(1e-2);
    });
  }

  it("refuses float16 with the plain flavour's MultiHeadAttention, naming the fixes", async () => {
    const cfg = tinyConfig();
    const quantizer = tinyQuantizer(cfg.patchNums);
    const sd = randomTransformerStateDict(cfg, { vocabSize: quantizer.vocabSize, latentChannels: 4 });
    const err = await HartTransformer.fromStateDict(cfg, sd, quantizer, { dtype: "float16" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HartError);
    expect((err as Error).message).toMatch(/graphFlavour: "fused".*attention: "matmul"/);
  });
});
