import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { HartError, relativeError, type Tensor, tensor } from "@hart/core";
import { ResidualDiffusion } from "@hart/residual-diffusion";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  blocklistFilter,
  DEFAULT_PROMPTS,
  type GenerationResult,
  HartPipeline,
  type PipelineProgressEvent,
  type ResidualSampler,
  type TextEncoder,
} from "../src/index";
import { type FakeHub, repoFromFolder, startFakeHub } from "./hub-server";

const GOLDEN = resolve(process.env.HART_GOLDEN_DIR ?? join(import.meta.dirname, "../../../../shared/golden"));
const MODEL = join(GOLDEN, "main");
const PROMPTS = ["a red heart", "an astronaut riding a horse"];

let pipe: HartPipeline;
let first: GenerationResult;
const temps: string[] = [];

beforeAll(async () => {
  pipe = await HartPipeline.fromPretrained({ model: MODEL });
  first = await pipe.generate({ prompts: PROMPTS, seed: 7 });
});
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

const same = (a: GenerationResult, b: GenerationResult) =>
  a.images.every((img, i) => Buffer.compare(Buffer.from(img.data), Buffer.from(b.images[i].data)) === 0);

/** Wraps a text encoder to count its calls (the real encoder still does the work). */
function counting(encoder: TextEncoder) {
  const counter = { calls: 0 };
  const wrapped: TextEncoder = {
    hiddenSize: encoder.hiddenSize,
    encode: (prompts, options) => {
      counter.calls++;
      return encoder.encode(prompts, options);
    },
    release: () => encoder.release(),
  };
  return { wrapped, counter };
}

function withEncoder(encoder: TextEncoder, extra: Partial<ConstructorParameters<typeof HartPipeline>[0]> = {}) {
  return new HartPipeline({
    textEncoder: encoder,
    transformer: pipe.transformer,
    diffusion: pipe.diffusion,
    tokenizer: pipe.tokenizer,
    ...extra,
  });
}

describe("HartPipeline on the golden main set", () => {
  it("loads from the official folder layout and reports where from", () => {
    expect(pipe.paths?.llmDir).toBe(join(MODEL, "llm"));
    expect(pipe.paths?.textModelDir).toBe(join(MODEL, "text_model"));
  });

  it("generates one image per prompt, as floats in [0, 1] and RGB8 bytes of the release's rounding", () => {
    const side = 8 * 4; // latent 8×8 (patch_nums ends at 8), tokenizer ch_mult of length 3 → ×4
    expect(first.imagesB3HW.shape).toEqual([2, 3, side, side]);
    expect(first.images.map((i) => [i.width, i.height, i.prompt])).toEqual(PROMPTS.map((p) => [side, side, p]));
    const x = first.imagesB3HW.data;
    expect(Math.min(...x)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...x)).toBeLessThanOrEqual(1);
    for (let b = 0; b < 2; b++) {
      for (let c = 0; c < 3; c++) {
        for (let p = 0; p < side * side; p++) {
          const v = x[(b * 3 + c) * side * side + p];
          expect(first.images[b].data[p * 3 + c]).toBe(Math.trunc(Math.fround(v * 255)));
        }
      }
    }
    expect(first.seed).toBe(7);
    expect(first.indices.map((t) => t.shape)).toEqual([1, 2, 3, 4, 6, 8].map((pn) => [2, pn === 1 ? 1 : pn * pn]));
  });

  it("is deterministic for a seed and changes with it", async () => {
    expect(same(first, await pipe.generate({ prompts: PROMPTS, seed: 7 }))).toBe(true);
    expect(same(first, await pipe.generate({ prompts: PROMPTS, seed: 8 }))).toBe(false);
    const random = await pipe.generate({ prompts: PROMPTS });
    expect(Number.isInteger(random.seed)).toBe(true);
    expect(same(random, await pipe.generate({ prompts: PROMPTS, seed: random.seed }))).toBe(true);
  });

  it("reports stage timings and progress in order", async () => {
    const events: PipelineProgressEvent[] = [];
    const r = await pipe.generate({ prompts: PROMPTS[0], seed: 1, onProgress: (e) => events.push(e) });
    const t = r.timings;
    for (const v of [t.filterMs, t.textMs, t.arMs, t.diffusionMs, t.decodeMs]) expect(v).toBeGreaterThanOrEqual(0);
    expect(t.arScaleMs).toHaveLength(6);
    expect(t.totalMs).toBeGreaterThanOrEqual(t.textMs + t.arMs + t.diffusionMs + t.decodeMs);
    const starts = events.filter((e) => e.phase === "start").map((e) => e.stage);
    expect(starts).toEqual(["filter", "text", "ar", "diffusion", "decode"]);
    const arSteps = events.filter((e) => e.stage === "ar" && e.phase === "step");
    expect(arSteps.map((e) => [e.step, e.total])).toEqual([1, 2, 3, 4, 5, 6].map((s) => [s, 6]));
    expect(events.filter((e) => e.stage === "diffusion" && e.phase === "step").length).toBe(8);
  });

  it("rejects bad requests before doing any work", async () => {
    const { wrapped, counter } = counting(pipe.loadedTextEncoder!);
    const p = withEncoder(wrapped);
    const bad: [object, RegExp][] = [
      [{ prompts: [] }, /at least one prompt/],
      [{ prompts: ["ok", "  "] }, /prompt 2 of 2 is empty/],
      [{ prompts: "" }, /prompt 1 of 1 is empty/],
      [{ prompts: "x", cfg: -1 }, /cfg must be a finite number ≥ 0, got -1/],
      [{ prompts: "x", cfg: Number.NaN }, /cfg must be/],
      [{ prompts: "x", maxTokenLength: 0 }, /maxTokenLength must be a positive integer/],
      [{ prompts: "x", seed: -3 }, /seed must be a non-negative integer/],
    ];
    for (const [request, message] of bad) {
      const error = await p.generate(request as never).catch((e) => e);
      expect(error).toBeInstanceOf(HartError);
      expect(error.code).toBe("argument");
      expect(error.message).toMatch(message);
    }
    expect(counter.calls).toBe(0);
    expect(() => new HartPipeline({ transformer: pipe.transformer } as never)).toThrow(
      /diffusion component is missing/,
    );
  });

  it("cancels between steps with an AbortSignal", async () => {
    const controller = new AbortController();
    const error = await pipe
      .generate({
        prompts: PROMPTS,
        seed: 7,
        signal: controller.signal,
        onProgress: (e) => {
          if (e.stage === "ar" && e.step === 2) controller.abort();
        },
      })
      .catch((e) => e);
    expect(error).toBeInstanceOf(HartError);
    expect(error.code).toBe("aborted");
    const pre = await pipe.generate({ prompts: PROMPTS, signal: AbortSignal.abort() }).catch((e) => e);
    expect(pre.code).toBe("aborted");
    // The pipeline is still usable afterwards.
    expect(same(first, await pipe.generate({ prompts: PROMPTS, seed: 7 }))).toBe(true);
  });

  it("releases the text encoder after encoding and reloads it when needed", async () => {
    const p = await HartPipeline.fromPretrained({ model: MODEL, releaseTextEncoder: true });
    const r = await p.generate({ prompts: PROMPTS, seed: 7 });
    expect(p.loadedTextEncoder).toBeUndefined();
    expect(same(first, r)).toBe(true);
    expect(same(first, await p.generate({ prompts: PROMPTS, seed: 7 }))).toBe(true);
    // Without a loader, a released encoder is a clear error.
    const own = withEncoder(pipe.loadedTextEncoder!);
    const { wrapped } = counting(
      await (async () => (await HartPipeline.fromPretrained({ model: MODEL })).loadedTextEncoder!)(),
    );
    const once = withEncoder(wrapped);
    await once.generate({ prompts: PROMPTS, seed: 7, releaseTextEncoder: true });
    const error = await once.generate({ prompts: PROMPTS, seed: 7 }).catch((e) => e);
    expect(error.code).toBe("released");
    expect(own.loadedTextEncoder).toBeDefined();
  });

  it("replaces prompts a PromptFilter flags, reproducibly from the seed", async () => {
    const filtered = withEncoder(pipe.loadedTextEncoder!, { promptFilter: blocklistFilter(["heart"]) });
    const r = await filtered.generate({ prompts: PROMPTS, seed: 7 });
    expect(r.replacedPrompts).toEqual([0]);
    expect(DEFAULT_PROMPTS).toContain(r.prompts[0]);
    expect(r.prompts[1]).toBe(PROMPTS[1]);
    expect(r.images[0].prompt).toBe(r.prompts[0]);
    // Same as asking for the replacement prompt directly.
    expect(same(r, await pipe.generate({ prompts: r.prompts, seed: 7 }))).toBe(true);
    expect((await filtered.generate({ prompts: PROMPTS, seed: 7 })).prompts[0]).toBe(r.prompts[0]);
    const fixed = withEncoder(pipe.loadedTextEncoder!, {
      promptFilter: { isUnsafe: async (p) => p.includes("horse") },
      unsafePromptReplacement: "A red heart.",
    });
    expect((await fixed.generate({ prompts: PROMPTS, seed: 7 })).prompts).toEqual([PROMPTS[0], "A red heart."]);
  });

  it("takes any ResidualSampler: a zero residual equals skipping the diffusion; DDIM can be swapped in", async () => {
    const zero: ResidualSampler = {
      async sample(condND: Tensor<"float32">) {
        return tensor("float32", [condND.shape[0], 8], new Float32Array(condND.shape[0] * 8));
      },
    };
    const withZero = await withEncoder(pipe.loadedTextEncoder!, { diffusion: zero }).generate({
      prompts: PROMPTS,
      seed: 7,
    });
    const skipped = await pipe.generate({ prompts: PROMPTS, seed: 7, residualDiffusion: false });
    expect(skipped.timings.diffusionMs).toBe(0);
    expect(same(withZero, skipped)).toBe(true);
    expect(same(skipped, first)).toBe(false);

    const ddim = await ResidualDiffusion.fromPretrained(join(MODEL, "llm"), { scheduler: "ddim" });
    const r = await withEncoder(pipe.loadedTextEncoder!, { diffusion: ddim }).generate({ prompts: PROMPTS, seed: 7 });
    expect(r.indices.every((t, si) => t.data.every((v, i) => v === first.indices[si].data[i]))).toBe(true);
    expect(same(r, first)).toBe(false);
  });

  it("dtype int8: quantized transformer and text encoder stay close to float32 on replayed codes; release() frees it", async () => {
    const request = { prompts: PROMPTS, seed: 7, moreSmooth: false };
    const reference = await pipe.generate(request);
    const int8 = await HartPipeline.fromPretrained({ model: MODEL, dtype: "int8" });
    const replayed = await int8.generate({
      ...request,
      transformerOptions: { replay: { indices: reference.indices } },
    });
    const err = relativeError(replayed.imagesB3HW, reference.imagesB3HW);
    console.log(`pipeline int8 vs float32 (codes replayed): image relative error ${err.toExponential(2)}`);
    expect(err).toBeGreaterThan(0);
    expect(err).toBeLessThan(5e-2);
    await int8.release();
    await int8.release(); // idempotent
    await expect(int8.generate(request)).rejects.toThrow(/generate\(\) after release\(\)/);
  });

  it("uses the EMA weights by default", async () => {
    const base = await HartPipeline.fromPretrained({ model: MODEL, useEma: false });
    expect(same(first, await base.generate({ prompts: PROMPTS, seed: 7 }))).toBe(false);
  });
});

describe("HartPipeline.fromPretrained from the hub", () => {
  let hub: FakeHub;
  beforeAll(async () => {
    hub = await startFakeHub({
      "mit-han-lab/hart-golden-main": repoFromFolder(MODEL, ["llm", "tokenizer", "text_model"]),
    });
  });
  afterAll(() => hub.close());

  it("downloads a repo into the cache and generates the same image as from the folder; offline afterwards", async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), "hart-pipe-"));
    temps.push(cacheDir);
    const fromHub = await HartPipeline.fromPretrained({
      model: "mit-han-lab/hart-golden-main",
      hubUrl: hub.url,
      cacheDir,
    });
    expect(fromHub.paths?.root).toContain(join(cacheDir, "models--mit-han-lab--hart-golden-main", "snapshots"));
    expect(same(first, await fromHub.generate({ prompts: PROMPTS, seed: 7 }))).toBe(true);
    hub.requests.length = 0;
    await HartPipeline.fromPretrained({ model: "mit-han-lab/hart-golden-main", cacheDir, localFilesOnly: true });
    expect(hub.requests).toEqual([]);
  });

  it("fails clearly for a missing folder, a wrong model and an empty offline cache", async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), "hart-pipe-"));
    temps.push(cacheDir);
    const cases: [object, string, RegExp][] = [
      [{ model: join(cacheDir, "absent") }, "model-not-found", /folder .*absent does not exist/],
      [{ model: join(MODEL, "text_model") }, "config", /model_type "qwen2"/],
      [
        { model: "mit-han-lab/hart-golden-main", cacheDir, localFilesOnly: true },
        "not-cached",
        /not in the Hugging Face cache/,
      ],
      [{ model: MODEL, textModel: join(MODEL, "nope") }, "model-not-found", /text model: folder/],
    ];
    for (const [options, code, message] of cases) {
      const error = await HartPipeline.fromPretrained(options).catch((e) => e);
      expect(error).toBeInstanceOf(HartError);
      expect(error.code).toBe(code);
      expect(error.message).toMatch(message);
    }
  });
});
