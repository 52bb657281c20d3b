import { createRng, type Tensor, tensor } from "@hart/core";
import { describe, expect, it } from "vitest";
import {
  cosineBetas,
  DDIMScheduler,
  IDDPMScheduler,
  ReplayNoise,
  type ResidualScheduler,
  respacedSchedule,
  spaceTimesteps,
  ZeroNoise,
} from "../src/index";

const N = 64;
const C = 4;

function randomInputs(seed: number): { x: Tensor<"float32">; modelOut: Tensor<"float32">; z: Tensor<"float32"> } {
  const rng = createRng(seed);
  const x = rng.normal([N, C]);
  const modelOut = rng.normal([N, 2 * C]);
  // variance values live in [−1, 1]
  for (let r = 0; r < N; r++)
    for (let k = C; k < 2 * C; k++) modelOut.data[r * 2 * C + k] = Math.tanh(modelOut.data[r * 2 * C + k]);
  return { x, modelOut, z: rng.normal([N, C]) };
}

describe("IDDPMScheduler", () => {
  const scheduler = new IDDPMScheduler();
  const s = scheduler.schedule;

  it("uses the release schedule and runs the respaced steps in descending order", () => {
    expect(scheduler.indices).toEqual([7, 6, 5, 4, 3, 2, 1, 0]);
    expect(scheduler.indices.map((i) => scheduler.modelTimestep(i))).toEqual([999, 856, 714, 571, 428, 285, 143, 0]);
  });

  it.each([7, 5, 3, 1, 0])("step %i follows the float64 iDDPM formulas", (i) => {
    const { x, modelOut, z } = randomInputs(100 + i);
    const temperature = 0.7;
    const out = scheduler.step({ index: i, x, modelOut, noise: new ReplayNoise([z]), temperature });
    for (let r = 0; r < N; r++) {
      for (let k = 0; k < C; k++) {
        const j = r * C + k;
        const xv = x.data[j];
        const eps = modelOut.data[r * 2 * C + k];
        const v = modelOut.data[r * 2 * C + C + k];
        const a = s.sqrtRecipAlphasCumprod[i] * xv;
        const b = s.sqrtRecipm1AlphasCumprod[i] * eps;
        const x0 = Math.min(Math.max(a - b, -1), 1);
        // float32 cancellation in a − b (a, b up to 2e4 at the noisiest step) bounds the achievable accuracy
        const tolX0 = 1e-6 + 2e-7 * (Math.abs(a) + Math.abs(b));
        expect(Math.abs(out.predXstart.data[j] - x0)).toBeLessThan(tolX0);
        const frac = (v + 1) / 2;
        const logVar = frac * Math.log(s.betas[i]) + (1 - frac) * s.posteriorLogVarianceClipped[i];
        expect(Math.abs(out.logVariance!.data[j] - logVar)).toBeLessThan(1e-5 * (1 + Math.abs(logVar)));
        const mean = s.posteriorMeanCoef1[i] * x0 + s.posteriorMeanCoef2[i] * xv;
        const tolMean = 1e-6 + s.posteriorMeanCoef1[i] * tolX0 + 1e-6 * Math.abs(mean);
        expect(Math.abs(out.mean!.data[j] - mean)).toBeLessThan(tolMean);
        const sample = mean + (i !== 0 ? Math.exp(0.5 * logVar) * z.data[j] * temperature : 0);
        expect(Math.abs(out.sample.data[j] - sample)).toBeLessThan(tolMean + 1e-5 * Math.abs(sample));
      }
    }
  });

  it("draws noise at every step, the last included (so replayed reference noise lines up)", () => {
    const { x, modelOut, z } = randomInputs(1);
    const noise = new ReplayNoise([z]);
    const out = scheduler.step({ index: 0, x, modelOut, noise, temperature: 1 });
    expect(noise.used).toBe(1);
    expect(Array.from(out.sample.data)).toEqual(Array.from(out.mean!.data));
  });

  it("rejects bad inputs with clear errors", () => {
    const { x, modelOut } = randomInputs(2);
    const noise = new ZeroNoise();
    expect(() => scheduler.step({ index: 8, x, modelOut, noise, temperature: 1 })).toThrow(/index 8 is outside 0..7/);
    expect(() => scheduler.step({ index: 1, x, modelOut: x, noise, temperature: 1 })).toThrow(
      /modelOut must be float32 \[64, 8\]/,
    );
    expect(() => scheduler.step({ index: 1, x, modelOut, noise, temperature: Number.NaN })).toThrow(
      /temperature must be finite/,
    );
    const wrongShape = new ReplayNoise([tensor("float32", [1, 1], new Float32Array(1))]);
    expect(() => scheduler.step({ index: 1, x, modelOut, noise: wrongShape, temperature: 1 })).toThrow(
      /recorded as \[1,1\], but \[64,4\] was requested/,
    );
    expect(() => new IDDPMScheduler({ numSamplingSteps: "1" })).toThrow(/at least 2 sampling steps/);
    expect(() => new IDDPMScheduler({ numSamplingSteps: "0" })).toThrow(/positive integers/);
  });
});

describe("DDIMScheduler", () => {
  it("with η = 1 its mean is the iDDPM posterior mean (zero noise: the same step)", () => {
    const iddpm = new IDDPMScheduler();
    const ddim = new DDIMScheduler({ eta: 1 });
    for (const i of iddpm.indices) {
      const { x, modelOut } = randomInputs(200 + i);
      const a = iddpm.step({ index: i, x, modelOut, noise: new ZeroNoise(), temperature: 1 });
      const b = ddim.step({ index: i, x, modelOut, noise: new ZeroNoise(), temperature: 1 });
      for (let j = 0; j < N * C; j++) {
        expect(Math.abs(a.mean!.data[j] - b.mean!.data[j]), `step ${i}`).toBeLessThan(
          2e-5 * (1 + Math.abs(a.mean!.data[j])),
        );
        expect(a.predXstart.data[j]).toBe(b.predXstart.data[j]);
      }
    }
  });

  it("with η = 0 draws nothing and follows √ᾱ_prev·x₀ + √(1−ᾱ_prev)·ε'", () => {
    const ddim = new DDIMScheduler({ numSamplingSteps: "ddim10" });
    expect(ddim.schedule.timestepMap).toEqual(spaceTimesteps(1000, "ddim10"));
    const s = ddim.schedule;
    const { x, modelOut } = randomInputs(3);
    const noise = new ReplayNoise([]);
    const i = 4;
    const out = ddim.step({ index: i, x, modelOut, noise, temperature: 5 });
    expect(noise.used).toBe(0);
    for (let j = 0; j < N * C; j++) {
      const x0 = out.predXstart.data[j];
      const eps = (s.sqrtRecipAlphasCumprod[i] * x.data[j] - x0) / s.sqrtRecipm1AlphasCumprod[i];
      const ref = Math.sqrt(s.alphasCumprodPrev[i]) * x0 + Math.sqrt(1 - s.alphasCumprodPrev[i]) * eps;
      expect(Math.abs(out.sample.data[j] - ref)).toBeLessThan(1e-5 * (1 + Math.abs(ref)));
    }
    expect(() => new DDIMScheduler({ eta: -1 })).toThrow(/eta must be/);
  });
});

/**
 * Runs a scheduler on a Gaussian data distribution N(μ, σ²) whose optimal ε
 * predictor is known in closed form: ε̂(x_t) = √(1−ᾱ)(x_t − √ᾱ μ) / (ᾱσ² + 1 − ᾱ).
 */
function runGaussianOracle(scheduler: ResidualScheduler, xT: Float32Array, mu: number, sigma: number): Float32Array {
  const s = (scheduler as unknown as { schedule: ReturnType<typeof respacedSchedule> }).schedule;
  const rows = xT.length;
  let x = tensor("float32", [rows, 1], Float32Array.from(xT));
  for (const i of scheduler.indices) {
    const ab = s.alphasCumprod[i];
    const out = new Float32Array(rows * 2);
    for (let r = 0; r < rows; r++) {
      out[2 * r] = (Math.sqrt(1 - ab) * (x.data[r] - Math.sqrt(ab) * mu)) / (ab * sigma * sigma + 1 - ab);
      out[2 * r + 1] = 0;
    }
    x = scheduler.step({
      index: i,
      x,
      modelOut: tensor("float32", [rows, 2], out),
      noise: new ZeroNoise(),
      temperature: 1,
    }).sample;
  }
  return x.data;
}

describe("DDIM and iDDPM with zero noise", () => {
  it("converge to the data mean of a Gaussian with the exact ε predictor", () => {
    const mu = 0.3;
    const sigma = 0.2;
    const half = createRng(5).normal(4096);
    const xT = new Float32Array(8192);
    xT.set(half);
    xT.set(
      half.map((v) => -v),
      4096,
    ); // exactly zero-mean start
    const mean = (a: Float32Array) => a.reduce((p, v) => p + v, 0) / a.length;
    const schedule = respacedSchedule(cosineBetas(1000), spaceTimesteps(1000, "8"));
    const iddpm = runGaussianOracle(new IDDPMScheduler({ schedule }), xT, mu, sigma);
    const ddim = runGaussianOracle(new DDIMScheduler({ schedule }), xT, mu, sigma);
    expect(Math.abs(mean(iddpm) - mu)).toBeLessThan(1e-4);
    expect(Math.abs(mean(ddim) - mu)).toBeLessThan(1e-4);
    // DDIM (η = 0) follows the probability-flow ODE and keeps (at 8 steps, roughly) the data's spread;
    // the iDDPM mean path without noise shrinks it.
    const std = (a: Float32Array) => {
      const m = mean(a);
      return Math.sqrt(a.reduce((p, v) => p + (v - m) ** 2, 0) / a.length);
    };
    expect(std(ddim)).toBeGreaterThan(0.5 * sigma);
    expect(std(ddim)).toBeLessThan(2 * sigma);
    expect(std(iddpm)).toBeLessThan(0.5 * std(ddim));
  });
});
