/**
 * End to end through @hart/pipeline on the golden sets: the official components loaded by
 * `HartPipeline.fromPretrained` from each set's folder, the recorded text features fed in through an
 * injected text encoder (the AR cases start from random text features, not from a prompt), the
 * recorded codes / Gumbel noise replayed by the transformer and the recorded diffusion noise by the
 * sampler. The pipeline's final image must equal the reference `final.image` within 1e-3.
 */
import { type Tensor, tensor } from "@hart/core";
import { type EncodedPrompts, HartPipeline, type TextEncoder } from "@hart/pipeline";
import { ReplayNoise } from "@hart/residual-diffusion";
import { afterAll, describe, expect, it } from "vitest";
import { CaseContext, findGoldenSets, TARGET } from "./harness";

const CASES = ["ar_generate", "ar_generate_smooth"];
const sets = findGoldenSets().filter((s) => CASES.some((c) => s.cases.includes(c)));
const summary: string[] = [];
const pipelines = new Map<string, Promise<HartPipeline>>();

/** A text encoder that hands back the case's recorded text features. */
function recordedTextEncoder(ctx: CaseContext): TextEncoder {
  const context = ctx.ref("context") as Tensor<"float32">;
  const mask = ctx.ref("context_mask");
  const [B, L] = mask.shape;
  return {
    hiddenSize: context.shape[2],
    async encode(prompts): Promise<EncodedPrompts> {
      expect(prompts.length).toBe(B);
      return {
        contextBLD: context,
        mask: tensor("bool", mask.shape, Uint8Array.from(mask.data as Uint8Array)),
        positionIds: ctx.ref("context_position_ids") as Tensor<"int64">,
        tokens: tensor("int64", [B, L], new BigInt64Array(B * L)),
      };
    },
    async release() {},
  };
}

describe("pipeline end to end (golden replay)", () => {
  it("finds golden sets with AR cases", () => {
    expect(sets.length).toBeGreaterThan(0);
  });

  for (const set of sets) {
    for (const caseName of CASES.filter((c) => set.cases.includes(c))) {
      it(`${set.name}/${caseName}: final image`, async () => {
        const ctx = new CaseContext(set, caseName);
        const json = ctx.json;
        if (!pipelines.has(set.name))
          pipelines.set(
            set.name,
            HartPipeline.fromPretrained({ model: set.dir, device: TARGET.device, dtype: TARGET.dtype }),
          );
        const loaded = await pipelines.get(set.name)!;
        const pipeline = new HartPipeline({
          textEncoder: recordedTextEncoder(ctx),
          transformer: loaded.transformer,
          diffusion: loaded.diffusion,
          tokenizer: loaded.tokenizer,
        });
        const SN = (json.patch_nums as number[]).length;
        const indices = Array.from({ length: SN }, (_, si) => ctx.ref(`s${si}.idx`) as Tensor<"int64">);
        const gumbel = json.more_smooth
          ? Array.from({ length: SN }, (_, si) => ctx.ref(`s${si}.gumbel`) as Tensor<"float32">)
          : undefined;
        const result = await pipeline.generate({
          prompts: Array.from({ length: json.B as number }, (_, b) => `recorded prompt ${b}`),
          cfg: json.cfg as number,
          moreSmooth: json.more_smooth as boolean,
          transformerOptions: { replay: { indices, gumbel } },
          diffusionNoise: ReplayNoise.fromSteps(ctx.ref("diff.noise_init"), ctx.ref("diff.noise")),
        });

        const image = ctx.compare("final.image", result.imagesB3HW, "final.image", { rtol: 1e-3, atol: 1e-3 });
        result.indices.forEach((idx, si) => {
          ctx.compare(`s${si}.idx`, idx, `s${si}.idx`, { exact: true });
        });
        // The RGB8 bytes are the reference image through the release's uint8(x·255); float32 noise may move
        // a value across an integer boundary, by one step at most.
        const ref = ctx.ref("final.image").data as Float32Array;
        const [, , H, W] = ctx.ref("final.image").shape;
        let worstByte = 0;
        result.images.forEach((img, b) => {
          for (let c = 0; c < 3; c++) {
            for (let p = 0; p < H * W; p++) {
              const want = Math.trunc(Math.fround(ref[(b * 3 + c) * H * W + p] * 255));
              worstByte = Math.max(worstByte, Math.abs(img.data[p * 3 + c] - want));
            }
          }
        });
        // float32 (CPU, WebGPU): the reference's bounds; float16 or CUDA: the device tolerance compare() applied
        const strict = TARGET.exact;
        const pass = image.ok && (!strict || (image.maxAbs <= 1e-3 && worstByte <= 1));
        summary.push(
          `pipeline ${set.name}/${caseName}: ${pass ? "pass" : "fail"} ` +
            `(final image max abs err ${image.maxAbs.toExponential(2)}, rel err ${image.relErr.toExponential(2)}, RGB8 max diff ${worstByte})`,
        );
        expect(ctx.results.every((r) => r.ok)).toBe(true);
        if (strict) {
          expect(image.maxAbs).toBeLessThanOrEqual(1e-3);
          expect(worstByte).toBeLessThanOrEqual(1);
        }
      });
    }
  }

  afterAll(() => {
    console.log(`\npipeline end-to-end summary (${TARGET.device}, ${TARGET.dtype}):\n${summary.sort().join("\n")}`);
  });
});
