import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { float32ToFloat16Bits, loadStateDict, readConfig, type StateDict, type Tensor, tensor } from "@hart/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DDIMScheduler,
  DIFFUSION_PREFIX,
  IDDPMScheduler,
  ReplayNoise,
  ResidualDiffusion,
  type ResidualSampler,
  type ResidualScheduler,
  type SampleStep,
  ZeroNoise,
} from "../src/index";
import { goldenSets, llmDir, readCase } from "./golden";

const relErr = (a: Tensor, b: Tensor) => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.data.length; i++) {
    num += (Number(a.data[i]) - Number(b.data[i])) ** 2;
    den += Number(b.data[i]) ** 2;
  }
  return Math.sqrt(num / den);
};

const SET = goldenSets()[0];

describe.runIf(SET)("ResidualDiffusion on a golden set", () => {
  let diffusion: ResidualDiffusion;
  let c: ReturnType<typeof readCase>;
  beforeAll(async () => {
    diffusion = await ResidualDiffusion.fromPretrained(llmDir(SET));
    c = readCase(SET, "diffusion_sample");
  });
  afterAll(() => diffusion?.release());

  const z = (prefix: string) => c.tensors.get(`${prefix}.z`) as Tensor<"float32">;

  it("takes its sizes from config.json and the checkpoint, and is a ResidualSampler", () => {
    const config = readConfig(llmDir(SET)) as Record<string, number>;
    expect(diffusion.config.width).toBe(config.diff_width);
    expect(diffusion.config.depth).toBe(config.diff_depth);
    expect(diffusion.condWidth).toBe(config.embed_dim);
    expect(diffusion.channels).toBe(c.tensors.get("mlp.x")!.shape[1]);
    const sampler: ResidualSampler = diffusion;
    expect(typeof sampler.sample).toBe("function");
  });

  it("loads the EMA weights by default (the reference's mlp.out needs them)", async () => {
    const t = Array.from(c.tensors.get("mlp.t")!.data as BigInt64Array, Number);
    const x = c.tensors.get("mlp.x") as Tensor<"float32">;
    const cond = c.tensors.get("mlp.c") as Tensor<"float32">;
    const ref = c.tensors.get("mlp.out")!;
    expect(relErr(await diffusion.net.forward(x, t, cond), ref)).toBeLessThan(1e-5);
    const base = await ResidualDiffusion.fromPretrained(llmDir(SET), { useEma: false });
    expect(relErr(await base.net.forward(x, t, cond), ref)).toBeGreaterThan(1e-3);
    await base.release();
  });

  it("widens a float16 checkpoint to float32 at load", async () => {
    const ema = loadStateDict(llmDir(SET), { file: "ema_model.bin", prefix: DIFFUSION_PREFIX });
    const half: StateDict = new Map(
      [...ema].map(([k, t]) => [
        k,
        tensor("float16", t.shape, Uint16Array.from(t.data as Float32Array, float32ToFloat16Bits)),
      ]),
    );
    const net16 = await ResidualDiffusion.fromPretrained({ stateDict: half, config: readConfig(llmDir(SET)) });
    const t = Array.from(c.tensors.get("mlp.t")!.data as BigInt64Array, Number);
    const out = await net16.net.forward(
      c.tensors.get("mlp.x") as Tensor<"float32">,
      t,
      c.tensors.get("mlp.c") as Tensor<"float32">,
    );
    expect(out.dtype).toBe("float32");
    const err = relErr(out, c.tensors.get("mlp.out")!);
    expect(err).toBeGreaterThan(0); // the weights really were rounded to half precision…
    expect(err).toBeLessThan(5e-3); // …and the network still agrees to half-precision accuracy
    await net16.release();
  });

  it("replays the reference run with cfg (output and per-step trajectory)", async () => {
    const steps: SampleStep[] = [];
    const noise = ReplayNoise.fromSteps(c.tensors.get("cfg.noise_init")!, c.tensors.get("cfg.noise")!);
    const out = await diffusion.sample(z("cfg"), { cfg: c.json.cfg.cfg, noise, onStep: (s) => steps.push(s) });
    expect(relErr(out, c.tensors.get("cfg.out")!)).toBeLessThan(1e-4);
    expect(steps.map((s) => s.timestep)).toEqual(
      Array.from(c.tensors.get("cfg.t_mapped")!.data as BigInt64Array, Number),
    );
    // the network sees the conditional half of x twice
    const half = (steps[3].netX.shape[0] / 2) * diffusion.channels;
    expect(Array.from(steps[3].netX.data.subarray(half))).toEqual(Array.from(steps[3].netX.data.subarray(0, half)));
  });

  it("DDIM (η = 1) and iDDPM agree without noise: the same mean path", async () => {
    const a = await diffusion.sample(z("cfg"), { cfg: 2.5, noise: new ZeroNoise() });
    const b = await diffusion.sample(z("cfg"), {
      cfg: 2.5,
      noise: new ZeroNoise(),
      scheduler: new DDIMScheduler({ eta: 1 }),
    });
    expect(relErr(b, a)).toBeLessThan(1e-5);
    const deterministic = await diffusion.sample(z("nocfg"), {
      cfg: 1,
      noise: new ReplayNoise([c.tensors.get("nocfg.noise_init") as Tensor<"float32">]),
      scheduler: new DDIMScheduler(),
    });
    expect(deterministic.shape).toEqual(c.tensors.get("nocfg.out")!.shape);
  });

  it("accepts a user-written scheduler", async () => {
    // A two-step x₀-predictor: jump to the clipped x₀ estimate at t = 999, re-noise-free, then again at t = 0.
    const inner = new IDDPMScheduler({ numSamplingSteps: "2" });
    const seen: number[] = [];
    const mine: ResidualScheduler = {
      name: "x0-jump",
      indices: [1, 0],
      modelTimestep: (i) => inner.modelTimestep(i),
      step: (input) => {
        seen.push(input.index);
        const out = inner.step({ ...input, noise: new ZeroNoise() });
        return { sample: out.predXstart, predXstart: out.predXstart };
      },
    };
    const steps: number[] = [];
    const out = await diffusion.sample(z("nocfg"), {
      cfg: 1,
      scheduler: mine,
      noise: new ReplayNoise([c.tensors.get("nocfg.noise_init") as Tensor<"float32">]),
      onStep: (s) => steps.push(s.timestep),
    });
    expect(seen).toEqual([1, 0]);
    expect(steps).toEqual([999, 0]);
    for (const v of out.data) expect(Math.abs(v)).toBeLessThanOrEqual(0.6 * 1.0000001);
  });

  it("seeds its default noise: same seed, same draws", async () => {
    const other = await ResidualDiffusion.fromPretrained(llmDir(SET), { seed: 7 });
    const again = await ResidualDiffusion.fromPretrained(llmDir(SET), { seed: 7 });
    const a = await other.sample(z("nocfg"), { cfg: 1 });
    const b = await again.sample(z("nocfg"), { cfg: 1 });
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    const next = await other.sample(z("nocfg"), { cfg: 1 });
    expect(relErr(next, a)).toBeGreaterThan(1e-3);
    await Promise.all([other.release(), again.release()]);
  });

  it("gives clear errors for bad inputs", async () => {
    const width = diffusion.condWidth;
    const wrong = tensor("float32", [4, width + 1], new Float32Array(4 * (width + 1)));
    await expect(diffusion.sample(wrong, { cfg: 1 })).rejects.toThrow(
      new RegExp(`condND must be float32 \\[N, ${width}\\] \\(embed_dim`),
    );
    const odd = tensor("float32", [3, width], new Float32Array(3 * width));
    await expect(diffusion.sample(odd, { cfg: 2 })).rejects.toThrow(/3 rows; with cfg ≠ 1 it needs an even/);
    const empty = tensor("float32", [0, width], new Float32Array(0));
    await expect(diffusion.sample(empty, { cfg: 1 })).rejects.toThrow(/at least one/);
    const ok = z("nocfg");
    await expect(diffusion.sample(ok, { cfg: Number.NaN })).rejects.toThrow(/cfg must be a finite number/);
    await expect(diffusion.sample(ok, { cfg: 1, temperature: Number.POSITIVE_INFINITY })).rejects.toThrow(
      /temperature must be a finite number/,
    );
    const controller = new AbortController();
    controller.abort();
    await expect(diffusion.sample(ok, { cfg: 1, signal: controller.signal })).rejects.toThrow();
  });

  it("rejects bad configs and checkpoints when loading", async () => {
    const dir = llmDir(SET);
    await expect(ResidualDiffusion.fromPretrained(dir, { numSamplingSteps: "0" })).rejects.toThrow(/positive integers/);
    await expect(ResidualDiffusion.fromPretrained(dir, { numSamplingSteps: "-3" })).rejects.toThrow(
      /positive integers/,
    );
    await expect(ResidualDiffusion.fromPretrained(dir, { scheduler: "euler" as "ddim" })).rejects.toThrow(
      /unknown diffusion sampler "euler"/,
    );
    await expect(ResidualDiffusion.fromPretrained(dir, { dtype: "float16" })).rejects.toThrow(/float16/);
    const sd = loadStateDict(dir, { prefix: DIFFUSION_PREFIX });
    const config = readConfig(dir);
    expect(() => ResidualDiffusion.fromStateDict(sd, { ...config, diff_width: undefined })).toThrow(
      /"diff_width" must be/,
    );
    expect(() => ResidualDiffusion.fromStateDict(sd, { ...config, embed_dim: 7 })).toThrow(
      /diffloss\.net\.cond_embed\.weight" has shape \[\d+,\d+\], expected \[\d+,7\]/,
    );
    expect(() => ResidualDiffusion.fromStateDict(sd, { ...config, diff_depth: 1 })).toThrow(/more than diff_depth = 1/);
    const noEma = mkdtempSync(join(tmpdir(), "hart-rd-"));
    try {
      for (const f of ["config.json", "model.safetensors"]) copyFileSync(join(dir, f), join(noEma, f));
      await expect(ResidualDiffusion.fromPretrained(noEma)).rejects.toThrow(/ema_model\.bin not found.*useEma: false/);
      const base = await ResidualDiffusion.fromPretrained(noEma, { useEma: false });
      expect(base.channels).toBe(diffusion.channels);
      await base.release();
    } finally {
      rmSync(noEma, { recursive: true, force: true });
    }
  });
});

describe("ReplayNoise", () => {
  it("hands out recorded draws in order and names mismatches", () => {
    const a = tensor("float32", [2, 3], new Float32Array(6).fill(1));
    const steps = tensor(
      "float32",
      [2, 2, 3],
      Float32Array.from({ length: 12 }, (_, i) => i),
    );
    const noise = ReplayNoise.fromSteps(a, steps);
    expect(noise.remaining).toBe(3);
    expect(noise.normal([2, 3])).toBe(a);
    expect(Array.from(noise.normal([2, 3]).data)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(() => noise.normal([3, 2])).toThrow(/draw 2 was recorded as \[2,3\], but \[3,2\] was requested/);
    expect(Array.from(noise.normal([2, 3]).data)).toEqual([6, 7, 8, 9, 10, 11]);
    expect(() => noise.normal([2, 3])).toThrow(/only 3 were recorded/);
  });
});
