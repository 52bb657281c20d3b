import { createRng } from "@hart/core";
import type { NoiseSource } from "./components";

/**
 * The diffusion's default noise for a generation seed: core's seeded generator on its own
 * `"residual-diffusion"` stream, independent of the transformer's draws from the same seed.
 */
export function seededNoise(seed: number): NoiseSource {
  return createRng(seed).split("residual-diffusion");
}
