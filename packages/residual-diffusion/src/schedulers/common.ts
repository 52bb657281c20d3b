import { HartError, type Tensor, tensor } from "@hart/core";
import { cosineBetas, type DiffusionSchedule, respacedSchedule, spaceTimesteps } from "../schedule";
import type { SchedulerStepInput } from "../types";

/** Float32 rounding: the reference applies every float64 schedule coefficient as a float32 tensor op. */
export const f32 = Math.fround;

/** How to build the default schedule of a scheduler. */
export interface ScheduleSpec {
  /** Length of the training process (default 1000). */
  numTimesteps?: number;
  /** `space_timesteps` section counts, e.g. `"8"`, `"10,15,20"` or `"ddim25"` (default `"8"`, the release). */
  numSamplingSteps?: string | number | readonly number[];
}

/** Options every {@link RespacedScheduler} takes. */
export interface RespacedSchedulerOptions extends ScheduleSpec {
  /** A ready schedule (overrides `numTimesteps`/`numSamplingSteps`). */
  schedule?: DiffusionSchedule;
  /** Clip the x₀ prediction to [−1, 1] (default true, like `DiffLoss.sample`). */
  clipDenoised?: boolean;
}

/**
 * What a sampler on a respaced schedule shares (a base for your own `ResidualScheduler`): the schedule, its
 * execution order `numSteps−1, …, 0`, x₀ clipping, and the model's timestep for each respaced step.
 */
export abstract class RespacedScheduler {
  /** The respaced float64 schedule the coefficients come from. */
  readonly schedule: DiffusionSchedule;
  /** `numSteps−1, …, 0`. */
  readonly indices: readonly number[];
  /** Whether x₀ predictions are clipped to [−1, 1]. */
  protected readonly clip: boolean;

  constructor(options: RespacedSchedulerOptions = {}) {
    this.schedule = options.schedule ?? cosineRespaced(options);
    this.clip = options.clipDenoised ?? true;
    this.indices = descending(this.schedule.betas.length);
  }

  /** `timestep_map[index]`. */
  modelTimestep(index: number): number {
    return this.schedule.timestepMap[index];
  }
}

/** The release's schedule: cosine betas over `numTimesteps`, respaced to `numSamplingSteps`. */
export function cosineRespaced(spec: ScheduleSpec = {}): DiffusionSchedule {
  const total = spec.numTimesteps ?? 1000;
  return respacedSchedule(cosineBetas(total), spaceTimesteps(total, spec.numSamplingSteps ?? "8"));
}

/** Checks a step's inputs and returns N and Cvae. */
export function checkStep(name: string, schedule: DiffusionSchedule, input: SchedulerStepInput): [number, number] {
  const { index, x, modelOut, temperature } = input;
  if (!Number.isInteger(index) || index < 0 || index >= schedule.betas.length) {
    throw new HartError("argument", `${name}.step: index ${index} is outside 0..${schedule.betas.length - 1}`);
  }
  if (x.dtype !== "float32" || x.shape.length !== 2) {
    throw new HartError("shape", `${name}.step: x must be float32 [N, Cvae], got ${x.dtype} [${x.shape}]`);
  }
  const [n, c] = x.shape;
  if (
    modelOut.dtype !== "float32" ||
    modelOut.shape.length !== 2 ||
    modelOut.shape[0] !== n ||
    modelOut.shape[1] !== 2 * c
  ) {
    throw new HartError(
      "shape",
      `${name}.step: modelOut must be float32 [${n}, ${2 * c}] (ε | v), got ${modelOut.dtype} [${modelOut.shape}]`,
    );
  }
  if (!Number.isFinite(temperature))
    throw new HartError("argument", `${name}.step: temperature must be finite, got ${temperature}`);
  return [n, c];
}

/** A standard normal draw of `[n, c]` from the step's noise source, checked. */
export function drawNoise(name: string, input: SchedulerStepInput, n: number, c: number): Float32Array {
  const z = input.noise.normal([n, c]);
  if (z.dtype !== "float32" || z.shape.length !== 2 || z.shape[0] !== n || z.shape[1] !== c) {
    throw new HartError(
      "noise",
      `${name}: the noise source returned ${z.dtype} [${z.shape}] for a request of [${n}, ${c}]`,
    );
  }
  return z.data;
}

/**
 * x₀ = clip(√(1/ᾱ)·x − √(1/ᾱ − 1)·ε, −1, 1) in float32 (`_predict_xstart_from_eps`
 * + `clip_denoised`), from the ε columns of `modelOut`.
 */
export function predictXstart(
  schedule: DiffusionSchedule,
  index: number,
  x: Float32Array,
  modelOut: Float32Array,
  n: number,
  c: number,
  clip: boolean,
): Float32Array {
  const a = f32(schedule.sqrtRecipAlphasCumprod[index]);
  const b = f32(schedule.sqrtRecipm1AlphasCumprod[index]);
  const out = new Float32Array(n * c);
  for (let r = 0; r < n; r++) {
    for (let k = 0; k < c; k++) {
      const v = f32(f32(a * x[r * c + k]) - f32(b * modelOut[r * 2 * c + k]));
      out[r * c + k] = clip ? Math.min(Math.max(v, -1), 1) : v;
    }
  }
  return out;
}

/** Wraps a flat buffer as an `[n, c]` float32 tensor. */
export function nc(data: Float32Array, n: number, c: number): Tensor<"float32"> {
  return tensor("float32", [n, c], data);
}

/** Respaced indices in execution order: `steps−1, …, 0`. */
export function descending(steps: number): number[] {
  return Array.from({ length: steps }, (_, k) => steps - 1 - k);
}
