/**
 * int8 blocks (`dtype: "int8"`): per-channel int8 weights with activations quantized on the fly. Not exact, so the
 * int8 run replays the float32 run's codes and its guided logits and diffusion conditioning are compared.
 */
import { HartError, relativeError } from "@hart/core";
import { describe, expect, it } from "vitest";
import { HartTransformer, replaySampler } from "../src/index";
import { tinyModel, tracedTinyRun } from "./helpers";

describe("int8 transformer blocks", () => {
  it("give guided logits and diffusion conditioning within int8 accuracy of float32 (same codes)", async () => {
    const model = tinyModel();
    const run = (options: { dtype?: "int8" }, sampler?: ReturnType<typeof replaySampler>) =>
      tracedTinyRun(model, options, sampler);
    const full = await run({});
    const int8 = await run({ dtype: "int8" }, replaySampler(full.result.indices));
    let compared = 0;
    for (const [n, t] of full.seen) {
      if (!n.endsWith("logits_cfg")) continue;
      const err = relativeError(int8.seen.get(n)!, t);
      console.log(`ar generate int8 ${n}: relative error ${err.toExponential(2)}`);
      expect(err).toBeLessThan(2e-2);
      expect(err).toBeGreaterThan(0); // the int8 graphs really ran
      compared++;
    }
    expect(compared).toBe(model.cfg.patchNums.length);
    const condErr = relativeError(int8.result.diffusionCond, full.result.diffusionCond);
    console.log(`ar generate int8 diffusion cond: relative error ${condErr.toExponential(2)}`);
    expect(condErr).toBeLessThan(2e-2);
  });

  it("is refused off the CPU's plain float32 form, naming why", async () => {
    const { cfg, quantizer, sd } = tinyModel();
    const err = await HartTransformer.fromStateDict(cfg, sd, quantizer, { dtype: "int8", graphFlavour: "fused" }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HartError);
    expect((err as Error).message).toMatch(/int8 linear layers.*DynamicQuantizeMatMul runs on the CPU/);
  });
});
