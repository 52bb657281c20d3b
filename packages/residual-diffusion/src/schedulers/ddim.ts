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

/** Options of {@link DDIMScheduler}. */
export interface DDIMSchedulerOptions extends RespacedSchedulerOptions {
  /**
   * Stochasticity η (default 0: deterministic, no draws after the initial
   * noise). η = 1 has the posterior variance and the iDDPM posterior mean.
   */
  eta?: number;
}

/**
 * DDIM (Song et al. 2021, the reference's `ddim_sample`) on the same respaced
 * schedule as the release — the second implementation of
 * {@link ResidualScheduler}, and a template for your own. The network's
 * variance output is ignored; ε is re-derived from the clipped x₀:
 *
 * ```
 * x₀ = clip(√(1/ᾱ)·x − √(1/ᾱ − 1)·ε, −1, 1);   ε' = (√(1/ᾱ)·x − x₀) / √(1/ᾱ − 1)
 * σ  = η·√((1−ᾱ_prev)/(1−ᾱ))·√(1 − ᾱ/ᾱ_prev)
 * x' = √ᾱ_prev·x₀ + √(1 − ᾱ_prev − σ²)·ε' + [i ≠ 0]·σ·z·temperature
 * ```
 *
 * With η = 0 no noise is drawn and temperature has no effect.
 */
export class DDIMScheduler extends RespacedScheduler implements ResidualScheduler {
  /** `"ddim"`. */
  readonly name = "ddim";
  /** Stochasticity η (0: deterministic). */
  readonly eta: number;

  constructor(options: DDIMSchedulerOptions = {}) {
    super(options);
    this.eta = options.eta ?? 0;
    if (!Number.isFinite(this.eta) || this.eta < 0) {
      throw new HartError("argument", `DDIMScheduler: eta must be a finite number ≥ 0, got ${this.eta}`);
    }
  }

  /** One `ddim_sample` step; draws noise only when η > 0. */
  step(input: SchedulerStepInput): SchedulerStepOutput {
    const s = this.schedule;
    const i = input.index;
    const [n, c] = checkStep("DDIMScheduler", s, input);
    const x = input.x.data;
    const x0 = predictXstart(s, i, x, input.modelOut.data, n, c, this.clip);
    const ab = s.alphasCumprod[i];
    const abPrev = s.alphasCumprodPrev[i];
    const sigma64 = this.eta * Math.sqrt((1 - abPrev) / (1 - ab)) * Math.sqrt(1 - ab / abPrev);
    const a = f32(s.sqrtRecipAlphasCumprod[i]);
    const b = f32(s.sqrtRecipm1AlphasCumprod[i]);
    const cX0 = f32(Math.sqrt(abPrev));
    const cEps = f32(Math.sqrt(Math.max(1 - abPrev - sigma64 * sigma64, 0)));
    const sigma = i !== 0 ? f32(sigma64) : 0;
    const z = this.eta > 0 ? drawNoise("DDIMScheduler", input, n, c) : undefined;
    const temperature = f32(input.temperature);
    const mean = new Float32Array(n * c);
    const sample = new Float32Array(n * c);
    for (let j = 0; j < n * c; j++) {
      const eps = f32(f32(f32(a * x[j]) - x0[j]) / b);
      const mu = f32(f32(cX0 * x0[j]) + f32(cEps * eps));
      mean[j] = mu;
      sample[j] = z ? f32(mu + f32(f32(sigma * z[j]) * temperature)) : mu;
    }
    return { sample: nc(sample, n, c), predXstart: nc(x0, n, c), mean: nc(mean, n, c) };
  }
}
