import { HartError } from "@hart/core";

/** What the diffusion head needs from the transformer's `llm/config.json`. */
export interface DiffusionHeadConfig {
  /** Hidden width of the MLP (`diff_width`; 1024 in the release). */
  readonly width: number;
  /** Residual blocks (`diff_depth`; 6 in the release). */
  readonly depth: number;
  /** Width of the condition rows: the transformer's `embed_dim`. */
  readonly condWidth: number;
  /** `space_timesteps` section counts (`num_sampling_steps`; `"8"` in the release). */
  readonly numSamplingSteps: string;
  /** Sampler name (`sampler`; `"iddpm"` in the release, `"ddim"` also accepted here). */
  readonly sampler: string;
}

/**
 * Reads and validates the diffusion head's fields of an llm config
 * (`diff_width`, `diff_depth`, `embed_dim`, `num_sampling_steps`, `sampler`).
 *
 * @param source - the config file, named in errors.
 */
export function diffusionHeadConfig(config: Record<string, unknown>, source = "config.json"): DiffusionHeadConfig {
  const int = (key: string): number => {
    const v = config[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      throw new HartError("config", `${source}: "${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const steps = config.num_sampling_steps ?? "8";
  if (typeof steps !== "string" && typeof steps !== "number") {
    throw new HartError(
      "config",
      `${source}: "num_sampling_steps" must be a string like "8", got ${JSON.stringify(steps)}`,
    );
  }
  const sampler = config.sampler ?? "iddpm";
  if (typeof sampler !== "string") {
    throw new HartError("config", `${source}: "sampler" must be a string, got ${JSON.stringify(sampler)}`);
  }
  return {
    width: int("diff_width"),
    depth: int("diff_depth"),
    condWidth: int("embed_dim"),
    numSamplingSteps: String(steps),
    sampler,
  };
}
