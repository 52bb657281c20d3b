import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  cosCorrectlyRounded,
  cosineBetas,
  diffusionSchedule,
  respacedSchedule,
  spaceTimesteps,
  timestepEmbedding,
} from "../src/index";
import { GOLDEN_DIR, goldenSets, readCase } from "./golden";

/** Float64 reference of the cosine schedule, written from the iDDPM paper's formula. */
function referenceCosineBetas(T: number): number[] {
  const abar = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  return Array.from({ length: T }, (_, i) => Math.min(1 - abar((i + 1) / T) / abar(i / T), 0.999));
}

/** Relative distance in ulps-ish terms. */
const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);

describe("cosineBetas", () => {
  it("follows the float64 cosine formula and clips at 0.999", () => {
    const betas = cosineBetas(1000);
    const ref = referenceCosineBetas(1000);
    expect(betas.length).toBe(1000);
    for (let i = 0; i < 1000; i++) expect(rel(betas[i], ref[i])).toBeLessThan(1e-12);
    expect(betas[999]).toBe(0.999);
    expect(Math.max(...betas)).toBe(0.999);
    for (let i = 1; i < 999; i++) expect(betas[i]).toBeGreaterThan(betas[i - 1]);
  });

  it("rejects a non-positive length", () => {
    expect(() => cosineBetas(0)).toThrow(/positive integer/);
    expect(() => cosineBetas(2.5)).toThrow(/positive integer/);
  });
});

describe("cosCorrectlyRounded", () => {
  it("is within half an ulp of cos, i.e. never worse than Math.cos", () => {
    for (let i = 0; i <= 1000; i++) {
      const x = (((i / 1000 + 0.008) / 1.008) * Math.PI) / 2;
      const c = cosCorrectlyRounded(x);
      const m = Math.cos(x);
      const ulp = 2 ** (Math.floor(Math.log2(Math.abs(m))) - 52);
      expect(Math.abs(c - m)).toBeLessThanOrEqual(ulp);
      // cos(x)² + sin(x)² = 1 checked in float64 with the correctly rounded value
      expect(Math.abs(c * c + Math.sin(x) ** 2 - 1)).toBeLessThan(4e-16);
    }
    expect(cosCorrectlyRounded(0)).toBe(1);
    expect(cosCorrectlyRounded(-1)).toBe(cosCorrectlyRounded(1));
    expect(() => cosCorrectlyRounded(5)).toThrow(/≤ 4/);
  });
});

describe("spaceTimesteps", () => {
  // Known answers of the official space_timesteps (hart/modules/diffusion/respace.py, run with Python).
  const official: [number, string, number[]][] = [
    [1000, "8", [0, 143, 285, 428, 571, 714, 856, 999]],
    [1000, "4,4", [0, 166, 333, 499, 500, 666, 833, 999]],
    [1000, "1,2,3", [0, 334, 666, 667, 833, 999]],
    [10, "3,3,3", [0, 2, 3, 4, 5, 6, 7, 8, 9]],
    [6, "3", [0, 2, 5]], // round(2.5) = 2: Python rounds half to even
    [11, "5", [0, 2, 5, 8, 10]],
    [21, "5,5", [0, 2, 5, 8, 10, 11, 13, 15, 18, 20]],
    [1000, "ddim8", [0, 125, 250, 375, 500, 625, 750, 875]],
    [100, "ddim3", [0, 34, 68]],
    [7, "7", [0, 1, 2, 3, 4, 5, 6]],
  ];
  it.each(official)("space_timesteps(%i, %s)", (T, spec, expected) => {
    expect(spaceTimesteps(T, spec)).toEqual(expected);
  });

  it("matches the float64 section formula for comma-separated counts", () => {
    // 300 steps, sections of 100: section s keeps count_s steps start + round(k·99/(count_s−1)).
    const counts = [10, 15, 20];
    const steps = spaceTimesteps(300, counts.join(","));
    expect(steps.length).toBe(45);
    counts.forEach((count, s) => {
      const section = steps.filter((t) => t >= 100 * s && t < 100 * (s + 1));
      expect(section.length).toBe(count);
      expect(section[0]).toBe(100 * s);
      expect(section[count - 1]).toBe(100 * s + 99);
      for (const [k, t] of section.entries()) {
        expect(Math.abs(t - (100 * s + (k * 99) / (count - 1)))).toBeLessThanOrEqual(0.5);
      }
    });
    expect(spaceTimesteps(300, counts)).toEqual(steps);
  });

  it("ddimN uses the smallest integer stride giving exactly N steps", () => {
    for (const n of [10, 25, 50, 100]) {
      const steps = spaceTimesteps(1000, `ddim${n}`);
      const stride = steps[1];
      expect(steps).toEqual(Array.from({ length: n }, (_, k) => k * stride));
      expect(Math.ceil(1000 / stride)).toBe(n);
      expect(Math.ceil(1000 / (stride - 1))).not.toBe(n);
    }
  });

  it("rejects zero, negative, malformed and too large counts", () => {
    for (const bad of ["0", "-1", "", "8,0", "abc", "2.5", "ddim", "ddim0", "ddimx"]) {
      expect(() => spaceTimesteps(1000, bad), bad).toThrow(/positive integers/);
    }
    expect(() => spaceTimesteps(1000, 0)).toThrow(/positive integers/);
    expect(() => spaceTimesteps(1000, [])).toThrow(/no section counts/);
    expect(() => spaceTimesteps(1000, "1001")).toThrow(/cannot divide a section of 1000 steps into 1001/);
    expect(() => spaceTimesteps(1000, "ddim999")).toThrow(/integer stride/);
  });
});

describe("respacedSchedule", () => {
  it("derives every array from the respaced betas with the float64 formulas", () => {
    const base = cosineBetas(1000);
    const keep = spaceTimesteps(1000, "10,5");
    const s = respacedSchedule(base, keep);
    expect(s.timestepMap).toEqual(keep);
    const acpAll: number[] = [];
    for (const b of base) acpAll.push((acpAll.at(-1) ?? 1) * (1 - b));
    // Respaced ᾱ is re-accumulated from 1 − β (as the reference does), which loses ~1e-10 relative where
    // ᾱ ≈ 1e-9: compare those arrays to 1e-9, the betas themselves to 1e-13.
    keep.forEach((t, k) => {
      const prev = k === 0 ? 1 : acpAll[keep[k - 1]];
      const beta = 1 - acpAll[t] / prev;
      expect(rel(s.betas[k], beta)).toBeLessThan(1e-13);
      expect(rel(s.logBetas[k], Math.log(beta))).toBeLessThan(1e-13);
      expect(rel(s.alphasCumprod[k], acpAll[t])).toBeLessThan(1e-9);
      expect(rel(s.alphasCumprodPrev[k], prev)).toBeLessThan(1e-9);
      expect(rel(s.sqrtRecipAlphasCumprod[k], 1 / Math.sqrt(acpAll[t]))).toBeLessThan(1e-9);
      expect(rel(s.sqrtRecipm1AlphasCumprod[k], Math.sqrt((1 - acpAll[t]) / acpAll[t]))).toBeLessThan(1e-9);
      const pv = (beta * (1 - prev)) / (1 - acpAll[t]);
      expect(Math.abs(s.posteriorVariance[k] - pv)).toBeLessThan(1e-15 + 1e-9 * pv);
      expect(rel(s.posteriorMeanCoef1[k], (beta * Math.sqrt(prev)) / (1 - acpAll[t]))).toBeLessThan(1e-9);
      expect(rel(s.posteriorMeanCoef2[k], ((1 - prev) * Math.sqrt(1 - beta)) / (1 - acpAll[t]))).toBeLessThan(1e-9);
    });
    // The clipped log variance repeats step 1's value at step 0 (the posterior variance is 0 there).
    expect(s.posteriorVariance[0]).toBe(0);
    expect(s.posteriorLogVarianceClipped[0]).toBe(Math.log(s.posteriorVariance[1]));
    expect(s.posteriorLogVarianceClipped[3]).toBe(Math.log(s.posteriorVariance[3]));
  });

  it("keeping every step reproduces the base process", () => {
    const base = cosineBetas(100);
    const s = respacedSchedule(base, spaceTimesteps(100, "100"));
    for (let i = 0; i < 100; i++) expect(rel(s.betas[i], base[i])).toBeLessThan(1e-9);
    expect(diffusionSchedule(base).timestepMap).toEqual(s.timestepMap);
  });

  it("rejects out-of-range timesteps and bad betas", () => {
    expect(() => respacedSchedule(cosineBetas(10), [0, 10])).toThrow(/outside 0..9/);
    expect(() => respacedSchedule(cosineBetas(10), [])).toThrow(/no timesteps/);
    expect(() => diffusionSchedule(Float64Array.of(0.1, 0))).toThrow(/betas\[1\]/);
  });
});

describe("golden schedules", () => {
  it("finds golden sets", () => {
    expect(goldenSets().length, `no golden sets under ${GOLDEN_DIR}`).toBeGreaterThan(0);
  });
  for (const set of goldenSets()) {
    it(`${set}: timestep map and betas are bit-identical to the reference (float64)`, () => {
      const json = JSON.parse(readFileSync(join(GOLDEN_DIR, set, "cases", "diffusion_sample.json"), "utf8")).schedule;
      const s = respacedSchedule(cosineBetas(1000), spaceTimesteps(1000, json.num_sampling_steps));
      expect(s.timestepMap).toEqual(json.timestep_map);
      expect(Array.from(s.betas)).toEqual(json.betas);
      expect(Array.from(s.alphasCumprod)).toEqual(json.alphas_cumprod);
      expect(Array.from(s.posteriorMeanCoef1)).toEqual(json.posterior_mean_coef1);
      expect(Array.from(s.posteriorMeanCoef2)).toEqual(json.posterior_mean_coef2);
      const lv = json.posterior_log_variance_clipped as number[];
      for (const [i, v] of lv.entries()) expect(rel(s.posteriorLogVarianceClipped[i], v)).toBeLessThan(1e-15);
    });

    it(`${set}: timestep embedding matches the reference's float32 t_freq`, () => {
      const { tensors } = readCase(set, "diffusion_sample");
      const t = Array.from(tensors.get("mlp.t")!.data as BigInt64Array, Number);
      const ref = tensors.get("mlp.t_freq")!.data as Float32Array;
      const got = timestepEmbedding(t).data;
      expect(got.length).toBe(ref.length);
      for (let i = 0; i < ref.length; i++) expect(Math.abs(got[i] - ref[i])).toBeLessThan(1e-4);
    });
  }
});

describe("timestepEmbedding", () => {
  it("is cos | sin of float32 angles with float32 frequencies", () => {
    const e = timestepEmbedding([0, 3, 500], 8);
    expect(e.shape).toEqual([3, 8]);
    const freqs = [0, 1, 2, 3].map((i) => Math.fround(Math.exp(Math.fround(Math.fround(-Math.log(10000)) * i) / 4)));
    [0, 3, 500].forEach((t, r) => {
      freqs.forEach((f, i) => {
        const a = Math.fround(t * f);
        expect(e.data[r * 8 + i]).toBe(Math.fround(Math.cos(a)));
        expect(e.data[r * 8 + 4 + i]).toBe(Math.fround(Math.sin(a)));
      });
    });
  });

  it("pads an odd dimension with a zero column and rejects non-finite timesteps", () => {
    const e = timestepEmbedding([7], 5);
    expect(e.shape).toEqual([1, 5]);
    expect(e.data[4]).toBe(0);
    expect(() => timestepEmbedding([Number.NaN])).toThrow(/not finite/);
  });
});

// Keep the golden listing honest: every set has the case this file reads.
it("golden sets have diffusion_sample cases", () => {
  for (const set of goldenSets())
    expect(readdirSync(join(GOLDEN_DIR, set, "cases"))).toContain("diffusion_sample.json");
});
