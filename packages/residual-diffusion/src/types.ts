import type { Tensor } from "@hart/core";

/**
 * Where the samplers take their Gaussian draws from. Replaying recorded draws
 * (see {@link @hart/residual-diffusion!ReplayNoise}) reproduces a reference run exactly; a seeded
 * source makes runs repeatable.
 */
export interface NoiseSource {
  /** A tensor of `shape` filled with independent standard normal draws. */
  normal(shape: readonly number[]): Tensor<"float32">;
}

/** Options of {@link ResidualSampler.sample}. */
export interface ResidualSampleOptions {
  /**
   * Classifier-free guidance scale. With `cfg ≠ 1` the condition rows are
   * `[conditional; unconditional]` and the guided ε is
   * `(1+cfg)·ε_cond − cfg·ε_uncond` (the official `forward_with_cfg`).
   */
  cfg: number;
  /** Scales the noise added at each step (default 1). Must be finite. */
  temperature?: number;
  /** Source of the initial noise and the per-step draws (default: a seeded source). */
  noise?: NoiseSource;
  /** Aborts between steps. */
  signal?: AbortSignal;
}

/** Samples the per-token continuous residual given the transformer's conditioning. */
export interface ResidualSampler {
  /**
   * @param condND - `[N, C]` conditioning (with `cfg ≠ 1`: first half conditional
   *   rows, second half unconditional, like `forward_with_cfg`).
   * @returns the scaled residual (× `vae_scale` 0.6) `[N, Cvae]`, all rows (like
   *   `DiffLoss.sample`; with cfg only the first half is meaningful).
   */
  sample(condND: Tensor<"float32">, options: ResidualSampleOptions): Promise<Tensor<"float32">>;
}

/** What one reverse step receives (all tensors `float32`, row-major). */
export interface SchedulerStepInput {
  /** Respaced step index `i` (`numSteps−1` first, 0 last). */
  index: number;
  /** `x_t` `[N, Cvae]`. */
  x: Tensor<"float32">;
  /** Network output after guidance `[N, 2·Cvae]`: ε in the first Cvae columns, the variance interpolation value `v` in the rest. */
  modelOut: Tensor<"float32">;
  /** Draws for stochastic steps. */
  noise: NoiseSource;
  /** Multiplies the added noise. */
  temperature: number;
}

/** What one reverse step returns. */
export interface SchedulerStepOutput {
  /** `x_{t−1}` `[N, Cvae]`. */
  sample: Tensor<"float32">;
  /** The clipped x₀ prediction `[N, Cvae]`. */
  predXstart: Tensor<"float32">;
  /** The mean of `x_{t−1}` before noise, where the scheduler has one. */
  mean?: Tensor<"float32">;
  /** The per-element log variance, where the scheduler has one. */
  logVariance?: Tensor<"float32">;
}

/**
 * A reverse-process update rule over a fixed step schedule (like a diffusers
 * scheduler). The sampling loop asks it which timestep the network sees at
 * each step and hands it the guided network output; it owns every draw it
 * makes. Implement this to plug in your own sampler.
 */
export interface ResidualScheduler {
  /** A short name for logs (`"iddpm"`, `"ddim"`). */
  readonly name: string;
  /** Respaced step indices in execution order (e.g. `[7, 6, …, 0]`). */
  readonly indices: readonly number[];
  /** The (original, 1000-step) timestep the network sees at respaced step `index`. */
  modelTimestep(index: number): number;
  /** One reverse step `x_t → x_{t−1}`. */
  step(input: SchedulerStepInput): SchedulerStepOutput;
}
