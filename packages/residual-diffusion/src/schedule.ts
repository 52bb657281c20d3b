/**
 * Noise schedules of the residual diffusion head, as pure float64 functions
 * (the official `gaussian_diffusion.py` / `respace.py` computes them with
 * numpy in float64; these reproduce that arithmetic operation for operation so
 * that betas and timestep maps come out bit-identical).
 */
import { HartError } from "@hart/core";

/**
 * Base betas of the "cosine" schedule (iDDPM, Nichol & Dhariwal 2021):
 * `beta_i = min(1 − ᾱ((i+1)/T) / ᾱ(i/T), maxBeta)` with
 * `ᾱ(t) = cos((t + 0.008) / 1.008 · π/2)²`.
 *
 * @param numTimesteps - T, the length of the training process (1000 in HART).
 * @param maxBeta - upper clip of each beta (0.999 like the reference).
 */
export function cosineBetas(numTimesteps: number, maxBeta = 0.999): Float64Array {
  if (!Number.isInteger(numTimesteps) || numTimesteps <= 0) {
    throw new HartError("argument", `cosineBetas: numTimesteps must be a positive integer, got ${numTimesteps}`);
  }
  const alphaBar = (t: number) => {
    const c = cosCorrectlyRounded((((t + 0.008) / 1.008) * Math.PI) / 2);
    return c * c;
  };
  const betas = new Float64Array(numTimesteps);
  for (let i = 0; i < numTimesteps; i++) {
    betas[i] = Math.min(1 - alphaBar((i + 1) / numTimesteps) / alphaBar(i / numTimesteps), maxBeta);
  }
  return betas;
}

const FIXED_BITS = 200n;

/**
 * `cos(x)` rounded to the nearest double. V8's `Math.cos` (fdlibm) is one ulp
 * off for 37 of the 1001 arguments of the 1000-step cosine schedule, which
 * changes half of the respaced betas in their last bits; the reference (numpy
 * on glibc) agrees with the correctly rounded value on all of them but one
 * (t = 0.732, where glibc itself is 0.502 ulp off; its effect cancels in the
 * cumulative product, so respaced betas still match bit for bit). Evaluated
 * as a 200-bit fixed-point Taylor series; only for |x| ≤ 4.
 */
export function cosCorrectlyRounded(x: number): number {
  if (!(Math.abs(x) <= 4)) throw new HartError("argument", `cosCorrectlyRounded: |x| must be ≤ 4, got ${x}`);
  if (x === 0) return 1;
  const one = 1n << FIXED_BITS;
  const xFixed = toFixed(Math.abs(x));
  const x2 = (xFixed * xFixed) >> FIXED_BITS;
  let term = one;
  let sum = one;
  for (let k = 1n; term !== 0n; k++) {
    term = -((term * x2) >> FIXED_BITS) / ((2n * k - 1n) * (2n * k));
    sum += term;
  }
  return fixedToNumber(sum);
}

/** A double in [2^-60, 4] as an exact fixed-point BigInt with FIXED_BITS fraction bits. */
function toFixed(x: number): bigint {
  const exp = Math.floor(Math.log2(x)) - 52;
  const mantissa = BigInt(x / 2 ** exp);
  return mantissa << (FIXED_BITS + BigInt(exp));
}

/** A non-negative fixed-point value rounded to the nearest double (ties to even). */
function fixedToNumber(v: bigint): number {
  if (v < 0n) return -fixedToNumber(-v);
  const bits = v.toString(2).length;
  if (bits <= 53) return Number(v) * 2 ** -Number(FIXED_BITS);
  const shift = BigInt(bits - 53);
  let q = v >> shift;
  const rem = v - (q << shift);
  const half = 1n << (shift - 1n);
  if (rem > half || (rem === half && (q & 1n) === 1n)) q += 1n;
  return Number(q) * 2 ** Number(shift - FIXED_BITS);
}

/** Python's `round()` on floats: to nearest, ties to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Which steps of a `numTimesteps`-step process to keep (the official
 * `space_timesteps`), sorted ascending.
 *
 * - `"8"` or `"10,15,20"`: the process is cut into equal sections (the first
 *   `numTimesteps % sections` one step longer), one per comma-separated count,
 *   and each section keeps `count` evenly spaced steps
 *   (`start + round(k · (size−1)/(count−1))`, accumulated in float64 and
 *   rounded half-to-even like Python).
 * - `"ddimN"`: the smallest integer stride that gives exactly N steps
 *   (`0, s, 2s, …`), as in the DDIM paper.
 *
 * @throws HartError for empty, non-integer, non-positive or too large counts.
 */
export function spaceTimesteps(numTimesteps: number, sectionCounts: string | number | readonly number[]): number[] {
  const what = `spaceTimesteps(${numTimesteps}, ${JSON.stringify(sectionCounts)})`;
  if (!Number.isInteger(numTimesteps) || numTimesteps <= 0) {
    throw new HartError("argument", `${what}: numTimesteps must be a positive integer`);
  }
  let counts: number[];
  if (typeof sectionCounts === "string") {
    const spec = sectionCounts.trim();
    if (spec.startsWith("ddim")) {
      const desired = parseCount(spec.slice(4), what);
      for (let stride = 1; stride < numTimesteps; stride++) {
        if (Math.ceil(numTimesteps / stride) === desired) {
          return Array.from({ length: desired }, (_, k) => k * stride);
        }
      }
      throw new HartError(
        "argument",
        `${what}: cannot take exactly ${desired} of ${numTimesteps} steps with an integer stride`,
      );
    }
    counts = spec.split(",").map((s) => parseCount(s, what));
  } else {
    counts = typeof sectionCounts === "number" ? [sectionCounts] : [...sectionCounts];
    for (const c of counts) parseCount(String(c), what);
  }
  if (counts.length === 0) throw new HartError("argument", `${what}: no section counts`);
  const sizePer = Math.floor(numTimesteps / counts.length);
  const extra = numTimesteps % counts.length;
  const steps = new Set<number>();
  let start = 0;
  counts.forEach((count, i) => {
    const size = sizePer + (i < extra ? 1 : 0);
    if (size < count)
      throw new HartError("argument", `${what}: cannot divide a section of ${size} steps into ${count}`);
    const stride = count <= 1 ? 1 : (size - 1) / (count - 1);
    let cur = 0;
    for (let k = 0; k < count; k++) {
      steps.add(start + roundHalfEven(cur));
      cur += stride;
    }
    start += size;
  });
  return [...steps].sort((a, b) => a - b);
}

function parseCount(s: string, what: string): number {
  const t = s.trim();
  const n = /^\d+$/.test(t) ? Number(t) : Number.NaN;
  if (!Number.isInteger(n) || n <= 0) {
    throw new HartError("argument", `${what}: step counts must be positive integers, got "${s}"`);
  }
  return n;
}

/**
 * Every per-step float64 array of a (respaced) Gaussian diffusion process, as
 * the official `GaussianDiffusion.__init__` computes them. Index `i` is the
 * respaced step (0 = least noise); the network sees `timestepMap[i]`.
 */
export interface DiffusionSchedule {
  /** Original (training-process) timestep of each respaced step. */
  readonly timestepMap: readonly number[];
  /** iDDPM noise variance `β_t` of each (respaced) step, in (0, 1]. */
  readonly betas: Float64Array;
  /** `log(betas)`: the upper end of the learned-range log variance. */
  readonly logBetas: Float64Array;
  /** `ᾱ_t = ∏_{s≤t} (1 − β_s)`: the fraction of signal variance left at step t. */
  readonly alphasCumprod: Float64Array;
  /** `[1, alphasCumprod[:-1]]`. */
  readonly alphasCumprodPrev: Float64Array;
  /** `sqrt(1 / ᾱ_t)`: scales `x_t` in the prediction of `x_0` from ε. */
  readonly sqrtRecipAlphasCumprod: Float64Array;
  /** `sqrt(1 / ᾱ_t − 1)`: scales ε in the prediction of `x_0` (`x_0 = sqrtRecip·x_t − sqrtRecipm1·ε`). */
  readonly sqrtRecipm1AlphasCumprod: Float64Array;
  /** Variance `β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)` of the posterior `q(x_{t−1} | x_t, x_0)` (0 at step 0). */
  readonly posteriorVariance: Float64Array;
  /** `log(append(pv[1], pv[1:]))` (empty for a 1-step schedule, like the reference). */
  readonly posteriorLogVarianceClipped: Float64Array;
  /** Posterior mean coefficient of `x_0`: `β_t sqrt(ᾱ_{t−1}) / (1 − ᾱ_t)`. */
  readonly posteriorMeanCoef1: Float64Array;
  /** Posterior mean coefficient of `x_t`: `(1 − ᾱ_{t−1}) sqrt(1 − β_t) / (1 − ᾱ_t)`. */
  readonly posteriorMeanCoef2: Float64Array;
}

/**
 * Derives every schedule array from `betas` (the official
 * `GaussianDiffusion.__init__`, float64, same operation order).
 *
 * @param timestepMap - original timestep of each step (identity when not respaced).
 */
export function diffusionSchedule(betas: Float64Array, timestepMap?: readonly number[]): DiffusionSchedule {
  const n = betas.length;
  if (n === 0) throw new HartError("argument", "diffusionSchedule: betas is empty");
  for (let i = 0; i < n; i++) {
    if (!(betas[i] > 0 && betas[i] <= 1)) {
      throw new HartError("argument", `diffusionSchedule: betas[${i}] = ${betas[i]} is outside (0, 1]`);
    }
  }
  const map = timestepMap ?? Array.from({ length: n }, (_, i) => i);
  if (map.length !== n) throw new HartError("argument", `diffusionSchedule: ${map.length} timesteps for ${n} betas`);
  const make = (fn: (i: number) => number) => Float64Array.from({ length: n }, (_, i) => fn(i));
  const acp = new Float64Array(n);
  let prod = 1;
  for (let i = 0; i < n; i++) {
    prod *= 1 - betas[i];
    acp[i] = prod;
  }
  const acpPrev = make((i) => (i === 0 ? 1 : acp[i - 1]));
  const pv = make((i) => (betas[i] * (1 - acpPrev[i])) / (1 - acp[i]));
  return {
    timestepMap: [...map],
    betas: Float64Array.from(betas),
    logBetas: make((i) => Math.log(betas[i])),
    alphasCumprod: acp,
    alphasCumprodPrev: acpPrev,
    sqrtRecipAlphasCumprod: make((i) => Math.sqrt(1 / acp[i])),
    sqrtRecipm1AlphasCumprod: make((i) => Math.sqrt(1 / acp[i] - 1)),
    posteriorVariance: pv,
    posteriorLogVarianceClipped: n > 1 ? make((i) => Math.log(i === 0 ? pv[1] : pv[i])) : new Float64Array(0),
    posteriorMeanCoef1: make((i) => (betas[i] * Math.sqrt(acpPrev[i])) / (1 - acp[i])),
    posteriorMeanCoef2: make((i) => ((1 - acpPrev[i]) * Math.sqrt(1 - betas[i])) / (1 - acp[i])),
  };
}

/**
 * The schedule of a process that keeps only `useTimesteps` of the base process
 * (the official `SpacedDiffusion`): new `beta_k = 1 − ᾱ[map_k] / ᾱ[map_{k−1}]`
 * with `ᾱ[map_{−1}] = 1`, everything else derived from the new betas.
 *
 * @example
 * ```ts
 * const schedule = respacedSchedule(cosineBetas(1000), spaceTimesteps(1000, "8"));
 * schedule.timestepMap; // [0, 143, 285, 428, 571, 714, 856, 999]
 * ```
 */
export function respacedSchedule(baseBetas: Float64Array, useTimesteps: Iterable<number>): DiffusionSchedule {
  const keep = new Set(useTimesteps);
  for (const t of keep) {
    if (!Number.isInteger(t) || t < 0 || t >= baseBetas.length) {
      throw new HartError("argument", `respacedSchedule: timestep ${t} is outside 0..${baseBetas.length - 1}`);
    }
  }
  if (keep.size === 0) throw new HartError("argument", "respacedSchedule: no timesteps to keep");
  const map: number[] = [];
  const newBetas: number[] = [];
  let acp = 1;
  let last = 1;
  for (let i = 0; i < baseBetas.length; i++) {
    acp *= 1 - baseBetas[i];
    if (keep.has(i)) {
      newBetas.push(1 - acp / last);
      last = acp;
      map.push(i);
    }
  }
  return diffusionSchedule(Float64Array.from(newBetas), map);
}
