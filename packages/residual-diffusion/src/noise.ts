import { HartError, numel, type Tensor, tensor } from "@hart/core";
import type { NoiseSource } from "./types";

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Hands out recorded draws in order, checking that each request has the
 * recorded shape — how the golden cases replay the reference's
 * `torch.randn` calls (the initial noise, then one draw per step).
 *
 * @example
 * ```ts
 * const noise = ReplayNoise.fromSteps(ref("cfg.noise_init"), ref("cfg.noise")); // [K, N, C] split per step
 * await diffusion.sample(z, { cfg: 3, noise });
 * ```
 */
export class ReplayNoise implements NoiseSource {
  private next = 0;

  /** @param draws - the recorded draws, in the order they will be requested. */
  constructor(private readonly draws: readonly Tensor<"float32">[]) {}

  /** The initial draw followed by the K per-step draws stacked as `[K, …]`. */
  static fromSteps(initial: Tensor, stepsK: Tensor): ReplayNoise {
    const f = (t: Tensor, what: string) => {
      if (t.dtype !== "float32") throw new HartError("dtype", `ReplayNoise: ${what} must be float32, got ${t.dtype}`);
      return t as Tensor<"float32">;
    };
    const steps = f(stepsK, "the per-step draws");
    if (steps.shape.length < 1)
      throw new HartError("shape", "ReplayNoise: the per-step draws need a leading step axis");
    const inner = steps.shape.slice(1);
    const size = numel(inner);
    const perStep = Array.from({ length: steps.shape[0] }, (_, k) =>
      tensor("float32", inner, steps.data.subarray(k * size, (k + 1) * size)),
    );
    return new ReplayNoise([f(initial, "the initial draw"), ...perStep]);
  }

  /** How many draws have been handed out. */
  get used(): number {
    return this.next;
  }

  /** How many recorded draws are left. */
  get remaining(): number {
    return this.draws.length - this.next;
  }

  /** The next recorded draw; throws when it was recorded with another shape or none is left. */
  normal(shape: readonly number[]): Tensor<"float32"> {
    const k = this.next;
    if (k >= this.draws.length) {
      throw new HartError(
        "noise",
        `ReplayNoise: draw ${k} of shape [${shape}] requested, but only ${this.draws.length} were recorded`,
      );
    }
    const t = this.draws[k];
    if (!sameShape(t.shape, shape)) {
      throw new HartError("noise", `ReplayNoise: draw ${k} was recorded as [${t.shape}], but [${shape}] was requested`);
    }
    this.next++;
    return t;
  }
}

/** Always returns zeros: the samplers then follow their mean path (used to compare samplers). */
export class ZeroNoise implements NoiseSource {
  /** A zero tensor of `shape`. */
  normal(shape: readonly number[]): Tensor<"float32"> {
    return tensor("float32", shape, new Float32Array(numel(shape)));
  }
}
