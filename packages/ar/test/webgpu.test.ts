/**
 * The transformer on WebGPU, where the KV cache stays in device memory between scales (`presentK`/`presentV`
 * `gpu-buffer` outputs fed back as `pastK`/`pastV`) and attention runs as MatMul/Softmax. Whole generations are
 * compared with the CPU's: same codes, the same guided logits and diffusion conditioning to float32 accuracy. The
 * schedule ends at 8×8 so the last scale has 64 queries (the WebGPU provider's `MultiHeadAttention` is wrong from 32).
 * Runs where a WebGPU adapter exists (e.g. Mesa's llvmpipe Vulkan driver on a CPU-only machine); skipped elsewhere.
 */
import { HartError, relativeError, type Tensor } from "@hart/core";
import { verifyDevice } from "@hart/kernels-cuda";
import { describe, expect, it } from "vitest";
import { HartTransformer, type HartTransformerOptions, replaySampler, type TokenSampler } from "../src/index";
import { lcgRandom, tinyContext, tinyModel } from "./helpers";

const report = await verifyDevice("webgpu");
if (!report.usable) console.log(`WebGPU transformer tests skipped: ${report.reason}`);

const PATCH_NUMS = [1, 2, 4, 8];

async function generate(
  overrides: Record<string, unknown>,
  iters: number,
  options: HartTransformerOptions,
  sampler?: TokenSampler,
) {
  const { cfg, quantizer, sd } = tinyModel({ patch_nums: PATCH_NUMS, ...overrides });
  const model = await HartTransformer.fromStateDict(cfg, sd, quantizer, options);
  const seen = new Map<string, Tensor>();
  try {
    const result = await model.generate(tinyContext(cfg.contextToken, cfg.contextDim, [5, 3]), {
      cfg: 3,
      topK: 20,
      numMaskgitIters: iters,
      random: lcgRandom(21),
      sampler,
      trace: (n, t) => seen.set(n, t),
    });
    return { result, seen };
  } finally {
    await model.release();
  }
}

describe("kvCacheOnDevice", () => {
  it("is refused off WebGPU", async () => {
    const err = await generate({}, 1, { kvCacheOnDevice: true }).catch((e) => e);
    expect(err).toBeInstanceOf(HartError);
    expect(err.message).toMatch(/kvCacheOnDevice on device "cpu"/);
  });
});

describe.skipIf(!report.usable)("the transformer on WebGPU", () => {
  for (const [name, overrides, iters, kvCacheOnDevice] of [
    ["llama, adaLN, cache on the device", {}, 1, true],
    [
      "release-like, 3 MaskGIT iterations, cache on the device",
      { disable_aln: true, sep_aln_pooling_mode: "max" },
      3,
      true,
    ],
    [
      "gpt2 attention, cache on the device",
      { attn_type: "gpt2", mlp_type: "gpt2", use_timestep_embed: false, use_context_norm: false },
      1,
      true,
    ],
    ["llama, adaLN, cache on the host", {}, 1, false],
  ] as const) {
    it(`${name}: codes, guided logits and diffusion conditioning match the CPU`, async () => {
      const cpu = await generate(overrides, iters, {});
      const gpu = await generate(overrides, iters, { device: "webgpu", kvCacheOnDevice });
      for (const [si, idx] of cpu.result.indices.entries()) expect(gpu.result.indices[si].data).toEqual(idx.data);
      const logits = [...cpu.seen.keys()].filter((n) => n.endsWith("logits_cfg"));
      expect(logits.length).toBeGreaterThanOrEqual(PATCH_NUMS.length);
      let worst = 0;
      for (const n of logits) worst = Math.max(worst, relativeError(gpu.seen.get(n)!, cpu.seen.get(n)!));
      const cond = relativeError(gpu.result.diffusionCond, cpu.result.diffusionCond);
      console.log(
        `webgpu vs cpu (${name}): guided logits ${worst.toExponential(2)}, diffusion cond ${cond.toExponential(2)}`,
      );
      expect(worst).toBeLessThan(1e-5);
      expect(cond).toBeLessThan(1e-5);
    });
  }

  it("float16 blocks and device cache: guided logits and diffusion conditioning within 1e-2 of float32 on CPU", async () => {
    const cpu = await generate({}, 1, {});
    const half = await generate({}, 1, { device: "webgpu", dtype: "float16" }, replaySampler(cpu.result.indices));
    let worst = 0;
    for (const [n, t] of cpu.seen)
      if (n.endsWith("logits_cfg")) worst = Math.max(worst, relativeError(half.seen.get(n)!, t));
    const cond = relativeError(half.result.diffusionCond, cpu.result.diffusionCond);
    console.log(
      `webgpu float16 vs cpu float32: guided logits ${worst.toExponential(2)}, diffusion cond ${cond.toExponential(2)}`,
    );
    expect(worst).toBeLessThan(1e-2);
    expect(cond).toBeLessThan(1e-2);
  });
});
