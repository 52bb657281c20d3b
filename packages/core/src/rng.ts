/**
 * A seeded, splittable random number generator whose every output is a
 * pure function of the seed — bit-identical under Node, Bun and Deno.
 *
 * Algorithms (all documented so draws can be reproduced elsewhere):
 * - **Seeding**: the seed (a safe integer or a BigInt, taken mod 2^64) starts a
 *   SplitMix64 sequence (Steele, Lea & Flood 2014; `state += 0x9E3779B97F4A7C15`,
 *   output `z ^= z >>> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >>> 27; z *= 0x94D049BB133111EB; z ^= z >>> 31`).
 *   Its first two outputs `a`, `b` give the xoshiro128** state `[lo(a), hi(a), lo(b), hi(b)]`
 *   (never all zero: SplitMix64's output function is a bijection, so `a` and `b` cannot both be 0).
 * - **Generator**: xoshiro128** 1.1 (Blackman & Vigna), 32-bit words, `Math.imul` arithmetic.
 * - **Uniform float32** in [0, 1): `(x >>> 8) · 2^-24` from one draw (24 bits, exact in float32).
 * - **Uniform float64** in [0, 1): `((a >>> 5) · 2^26 + (b >>> 6)) · 2^-53` from two draws.
 * - **Normal**: Box–Muller on two float64 uniforms: `r = √(−2 ln(1 − u1))`, `θ = 2π u2`,
 *   giving `r cos θ`, `r sin θ` (one pair per 4 draws; an odd count drops the last sine).
 * - **Gumbel**: `−ln(−ln u)` with `u = (k + ½) · 2^-52` for a 52-bit integer `k` from two draws,
 *   so `u ∈ [2^-53, 1 − 2^-53]` is never 0 or 1 and the result is always finite.
 * - **Integers**: `randint(low, high)` by rejection (no modulo bias).
 *
 * `ln`, `sin` and `cos` are computed here with IEEE-exact operations only (+ − × ÷ √), not with
 * `Math.log`/`Math.sin`, whose last bit differs between JavaScript engines. They agree with
 * `Math` to within a few units in the last place.
 *
 * Streams: {@link Rng.split}`(label)` derives an independent stream from the *seed* and a label
 * (the same whatever was drawn before), {@link Rng.fork} derives one from the current state.
 */
import { HartError } from "./errors";
import { numel, type Tensor, tensor } from "./tensor";

const MASK64 = (1n << 64n) - 1n;

/**
 * SplitMix64 (the reference `splitmix64.c` generator), on BigInt. Used to seed and split; its
 * first outputs for seed 1234567 are 6457827717110365317, 3203168211198807973, ….
 */
export class SplitMix64 {
  private state: bigint;
  constructor(seed: bigint) {
    this.state = BigInt.asUintN(64, seed);
  }
  /** The next 64-bit output. */
  next(): bigint {
    this.state = (this.state + 0x9e3779b97f4a7c15n) & MASK64;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    return z ^ (z >> 31n);
  }
}

/** FNV-1a, 64-bit, over the UTF-8 bytes of `text` (labels of {@link Rng.split}). */
export function fnv1a64(text: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) h = ((h ^ BigInt(byte)) * 0x100000001b3n) & MASK64;
  return h;
}

/** Seeds accepted by {@link createRng}: a safe integer (negative ones wrap mod 2^64) or a BigInt. */
export type Seed = number | bigint;

function seedToBigInt(seed: Seed): bigint {
  if (typeof seed === "bigint") return BigInt.asUintN(64, seed);
  if (typeof seed !== "number" || !Number.isSafeInteger(seed)) {
    throw new HartError("rng", `seed must be a safe integer (|seed| < 2^53) or a BigInt, got ${String(seed)}`);
  }
  return BigInt.asUintN(64, BigInt(seed));
}

// ---- IEEE-only elementary functions (identical on every engine) ----

const LN2_HI = 0.6931471803691238; // 0x3FE62E42FEE00000: ln 2 with 21 trailing zero bits, so e·LN2_HI is exact
const LN2_LO = 1.9082149292705877e-10; // 0x3DEA39EF35793C76: ln 2 − LN2_HI
const SQRT2 = Math.SQRT2;
const TWO54 = 2 ** 54;
const MIN_NORMAL = 2.2250738585072014e-308;
// Bit access to doubles; the word order is detected once (every engine stores IEEE doubles).
const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
f64[0] = 1;
const HI = u32[1] === 0x3ff00000 ? 1 : 0;

/** `ln m = 2 atanh(s)`, `s = (m−1)/(m+1)`, by its series to s^25: exact to < 1 ulp for m ∈ [√½, √2]. */
function lnSeries(m: number): number {
  const s = (m - 1) / (m + 1);
  const s2 = s * s;
  let p = 1 / 25;
  for (let k = 23; k >= 3; k -= 2) p = 1 / k + s2 * p;
  return 2 * s + 2 * s * (s2 * p);
}

/** ln(k/128) for k = 90..182 (the centres c of detLog's reduction), computed once by the series. */
const LN_C = Array.from({ length: 183 }, (_, k) => (k >= 90 ? lnSeries(k / 128) : 0));

/**
 * Natural logarithm of a positive `x` using only IEEE-exact operations, so every engine returns
 * the same bits: `x = m·2^e` with `m ∈ [√½, √2)`; `c = round(128m)/128`;
 * `ln x = e·ln 2 + ln c + 2 atanh((m−c)/(m+c))` with `|(m−c)/(m+c)| < 0.0028` (series to the 9th
 * power) and `ln c` from a table computed at load time by the same kind of series. Agrees with
 * `Math.log` to within a few ulp.
 */
export function detLog(x: number): number {
  if (!(x > 0) || x === Number.POSITIVE_INFINITY) {
    return x === 0 ? Number.NEGATIVE_INFINITY : x === Number.POSITIVE_INFINITY ? x : Number.NaN;
  }
  let e = 0;
  if (x < MIN_NORMAL) {
    x *= TWO54; // subnormal: scale into the normal range (exact)
    e = -54;
  }
  f64[0] = x;
  const hi = u32[HI];
  e += (hi >>> 20) - 1023; // x > 0: no sign bit
  u32[HI] = (hi & 0x000fffff) | 0x3ff00000;
  let m = f64[0]; // m ∈ [1, 2)
  if (m > SQRT2) {
    m *= 0.5;
    e += 1;
  }
  const k = Math.floor(m * 128 + 0.5);
  const c = k * 0.0078125; // k/128, exact
  const s = (m - c) / (m + c);
  const s2 = s * s;
  const r = 2 * s + 2 * s * (s2 * (1 / 3 + s2 * (1 / 5 + s2 * (1 / 7 + s2 * (1 / 9)))));
  return e * LN2_HI + (LN_C[k] + (r + e * LN2_LO));
}

const HALF_PI = Math.PI / 2;
/** 1/((2k)(2k+1)) and 1/((2k−1)(2k)) for the nested Taylor forms of sin and cos. */
const SIN_C = Array.from({ length: 10 }, (_, k) => 1 / ((2 * k + 2) * (2 * k + 3)));
const COS_C = Array.from({ length: 10 }, (_, k) => 1 / ((2 * k + 1) * (2 * k + 2)));

/**
 * `[sin 2πu, cos 2πu]` for `u ∈ [0, 1)` using only IEEE-exact operations: `4u = k + r` exactly
 * (k integer, |r| ≤ ½), `x = r·π/2`, Taylor series of sin and cos on |x| ≤ π/4 (to x^21),
 * then the quadrant `k` rotates the pair.
 */
export function detSinCos2Pi(u: number): [number, number] {
  const t = 4 * u;
  const k = Math.floor(t + 0.5);
  const x = (t - k) * HALF_PI;
  const x2 = x * x;
  let sp = 1;
  for (let i = 9; i >= 0; i--) sp = 1 - x2 * SIN_C[i] * sp;
  let cp = 1;
  for (let i = 9; i >= 0; i--) cp = 1 - x2 * COS_C[i] * cp;
  const s = x * sp;
  const c = cp;
  switch (k & 3) {
    case 0:
      return [s, c];
    case 1:
      return [c, -s];
    case 2:
      return [-s, -c];
    default:
      return [-c, s];
  }
}

const TWO_M24 = 2 ** -24;
const TWO_M52 = 2 ** -52;
const TWO_M53 = 2 ** -53;
const TWO_26 = 2 ** 26;

/** A draw target: a count (a new array), an array to fill, or — for `normal` — a tensor shape. */
function target(what: string, nOrOut: number | Float32Array): Float32Array {
  if (nOrOut instanceof Float32Array) return nOrOut;
  if (!Number.isSafeInteger(nOrOut) || nOrOut < 0) {
    throw new HartError("rng", `${what}: expected a non-negative integer count or a Float32Array, got ${nOrOut}`);
  }
  return new Float32Array(nOrOut);
}

/**
 * The seeded generator. Create it with {@link createRng}. It satisfies the
 * `NoiseSource` interface (`normal(shape) → Tensor<"float32">`) that samplers take.
 */
export class Rng {
  /** The 64-bit seed this stream was created from (what {@link split} derives from). */
  readonly seed: bigint;
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** Use {@link createRng}. */
  constructor(seed: Seed) {
    this.seed = seedToBigInt(seed);
    const sm = new SplitMix64(this.seed);
    const a = sm.next();
    const b = sm.next();
    this.s0 = Number(a & 0xffffffffn);
    this.s1 = Number(a >> 32n);
    this.s2 = Number(b & 0xffffffffn);
    this.s3 = Number(b >> 32n);
  }

  /** The generator's state words (xoshiro128** `s[0..3]`), e.g. to check a port. */
  get state(): readonly [number, number, number, number] {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  /** A generator with exactly the given xoshiro128** state (not all zero); for tests and ports. */
  static fromState(state: readonly [number, number, number, number]): Rng {
    if (state.every((w) => w >>> 0 === 0)) throw new HartError("rng", "xoshiro128** state must not be all zero");
    const r = new Rng(0);
    [r.s0, r.s1, r.s2, r.s3] = state.map((w) => w >>> 0);
    return r;
  }

  /** The next 32-bit output (an integer in [0, 2^32)): one xoshiro128** step. */
  nextUint32(): number {
    const s1 = this.s1;
    const x = Math.imul(s1, 5);
    const result = Math.imul((x << 7) | (x >>> 25), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits (two draws). */
  nextFloat64(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * TWO_26 + b) * TWO_M53;
  }

  /** A uniform integer in [low, high) (`high − low` ≤ 2^32), by rejection sampling. */
  randint(low: number, high: number): number {
    const range = high - low;
    if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high) || range < 1 || range > 2 ** 32) {
      throw new HartError("rng", `randint(${low}, ${high}): need integers with 1 ≤ high − low ≤ 2^32`);
    }
    const limit = 2 ** 32 - (2 ** 32 % range); // largest multiple of range ≤ 2^32
    let x = this.nextUint32();
    while (x >= limit) x = this.nextUint32();
    return low + (x % range);
  }

  /** Uniform float32 values in [0, 1): `n` new ones, or fills `out`. */
  uniform(nOrOut: number | Float32Array): Float32Array {
    const out = target("uniform", nOrOut);
    for (let i = 0; i < out.length; i++) out[i] = (this.nextUint32() >>> 8) * TWO_M24;
    return out;
  }

  /** Standard normal float32 values (Box–Muller): `n` new ones, or fills `out`. */
  normal(nOrOut: number | Float32Array): Float32Array;
  /** A `[...shape]` tensor of standard normal float32 values (the `NoiseSource` form). */
  normal(shape: readonly number[]): Tensor<"float32">;
  normal(arg: number | Float32Array | readonly number[]): Float32Array | Tensor<"float32"> {
    if (Array.isArray(arg)) {
      const shape = arg as readonly number[];
      if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw new HartError("rng", `normal: bad shape [${shape}]`);
      }
      return tensor("float32", shape, this.normal(numel(shape)));
    }
    const out = target("normal", arg as number | Float32Array);
    for (let i = 0; i < out.length; i += 2) {
      const u1 = 1 - this.nextFloat64(); // (0, 1]: the log is finite
      const u2 = this.nextFloat64();
      const r = Math.sqrt(-2 * detLog(u1));
      const [sin, cos] = detSinCos2Pi(u2);
      out[i] = r * cos;
      if (i + 1 < out.length) out[i + 1] = r * sin;
    }
    return out;
  }

  /** Standard Gumbel float32 values `−ln(−ln u)`: `n` new ones, or fills `out`. */
  gumbel(nOrOut: number | Float32Array): Float32Array {
    const out = target("gumbel", nOrOut);
    for (let i = 0; i < out.length; i++) {
      const k = (this.nextUint32() >>> 6) * TWO_26 + (this.nextUint32() >>> 6); // 52 bits
      const u = (k + 0.5) * TWO_M52;
      out[i] = -detLog(-detLog(u));
    }
    return out;
  }

  /**
   * An independent stream named `label`, derived from this stream's seed only (not its state):
   * `split("noise")` gives the same stream however many numbers were drawn before. The child's
   * seed is the first SplitMix64 output of `seed XOR fnv1a64(label)`.
   */
  split(label: string): Rng {
    if (typeof label !== "string") throw new HartError("rng", `split: label must be a string, got ${typeof label}`);
    return new Rng(new SplitMix64(this.seed ^ fnv1a64(label)).next());
  }

  /** An independent stream seeded from this stream's next two draws (`hi · 2^32 + lo`); advances this stream. */
  fork(): Rng {
    const hi = BigInt(this.nextUint32());
    const lo = BigInt(this.nextUint32());
    return new Rng((hi << 32n) | lo);
  }

  /** A copy with the same seed and current state (both then produce the same numbers). */
  clone(): Rng {
    const r = Rng.fromState(this.state);
    (r as { seed: bigint }).seed = this.seed;
    return r;
  }
}

/**
 * Creates the seeded generator (see the module notes for the algorithms).
 *
 * @example
 * ```ts
 * const rng = createRng(42);
 * const noise = rng.split("diffusion").normal([4096, 32]); // Tensor<"float32">
 * const g = rng.split("gumbel").gumbel(1024);              // Float32Array
 * ```
 */
export function createRng(seed: Seed): Rng {
  return new Rng(seed);
}

/**
 * A fast xorshift32 stream of uniform numbers in [−1, 1), for synthetic
 * weights and benchmark data only (billions of values in seconds). Not the
 * generator used for sampling: that is {@link createRng}.
 */
export function xorshiftUniform(seed: number): () => number {
  let s = (seed ^ 0x9e3779b9) >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 31 - 1;
  };
}
