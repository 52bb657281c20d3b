import { HartError } from "@hart/core";
import type { ResidualScheduler, SchedulerStepInput, SchedulerStepOutput } from "../types";
import {
  checkStep,
  drawNoise,
  f32,
  nc,
  predictXstart,
  RespacedScheduler,
  type RespacedSchedulerOptions,
} from "./common";

/** Options of {@link IDDPMScheduler}. */
export type IDDPMSchedulerOptions = RespacedSchedulerOptions;

/**
 * The release's sampler: iDDPM ancestral sampling (`p_sample`) with ε
 * prediction and learned-range variance
 * `log σ² = f·log β_i + (1−f)·log β̃_i`, `f = (v+1)/2`:
 *
 * ```
 * x₀ = clip(√(1/ᾱ_i)·x − √(1/ᾱ_i − 1)·ε, −1, 1)
 * μ  = coef1_i·x₀ + coef2_i·x
 * x' = μ + [i ≠ 0]·exp(½·log σ²)·z·temperature,   z ~ N(0, I) drawn at every step
 * ```
 *
 * evaluated in float32 with every float64 schedule coefficient rounded to
 * float32 first, exactly as the reference's tensor ops do. A draw is made at
 * the last step too (and multiplied by 0), so replayed reference noise lines up.
 */
export class IDDPMScheduler extends RespacedScheduler implements ResidualScheduler {
  /** `"iddpm"`. */
  readonly name = "iddpm";

  constructor(options: IDDPMSchedulerOptions = {}) {
    super(options);
    if (this.schedule.posteriorLogVarianceClipped.length === 0) {
      throw new HartError(
        "argument",
        "IDDPMScheduler: learned-range variance needs at least 2 sampling steps (the 1-step posterior variance is 0)",
      );
    }
  }

  /** One `p_sample` step; draws `[N, Cvae]` noise from `input.noise`. */
  step(input: SchedulerStepInput): SchedulerStepOutput {
    const s = this.schedule;
    const i = input.index;
    const [n, c] = checkStep("IDDPMScheduler", s, input);
    const x = input.x.data;
    const out = input.modelOut.data;
    const x0 = predictXstart(s, i, x, out, n, c, this.clip);
    const maxLog = f32(s.logBetas[i]);
    const minLog = f32(s.posteriorLogVarianceClipped[i]);
    const coef1 = f32(s.posteriorMeanCoef1[i]);
    const coef2 = f32(s.posteriorMeanCoef2[i]);
    const mask = i !== 0 ? 1 : 0;
    const temperature = f32(input.temperature);
    const z = drawNoise("IDDPMScheduler", input, n, c);
    const mean = new Float32Array(n * c);
    const logVar = new Float32Array(n * c);
    const sample = new Float32Array(n * c);
    for (let r = 0; r < n; r++) {
      for (let k = 0; k < c; k++) {
        const j = r * c + k;
        const frac = f32(f32(out[r * 2 * c + c + k] + 1) / 2);
        const lv = f32(f32(frac * maxLog) + f32(f32(1 - frac) * minLog));
        const mu = f32(f32(coef1 * x0[j]) + f32(coef2 * x[j]));
        const std = f32(Math.exp(f32(0.5 * lv)));
        mean[j] = mu;
        logVar[j] = lv;
        sample[j] = f32(mu + f32(f32(f32(mask * std) * z[j]) * temperature));
      }
    }
    return { sample: nc(sample, n, c), predXstart: nc(x0, n, c), mean: nc(mean, n, c), logVariance: nc(logVar, n, c) };
  }
}
