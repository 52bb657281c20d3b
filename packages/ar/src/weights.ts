/**
 * Reading the transformer's tensors out of a state dict: presence and shape
 * checks with the checkpoint named in errors, float32 conversion, and
 * releasing what has been handed to a session (so one copy of the weights
 * lives at a time).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { HartError, loadStateDict, type StateDict, type Tensor, takeTensor, toFloat32 } from "@hart/core";

/** Keys of `HARTForT2I.state_dict()` that inference never reads. */
function isUnused(key: string): boolean {
  return (
    key.startsWith("diffloss.") || // the residual diffusion head (@hart/residual-diffusion reads it)
    key === "attn_bias_for_masking" || // training-only causal mask, (L+ctx)² floats
    key === "lvl_1L" // recomputed from the schedule
  );
}

/** Options of {@link loadTransformerStateDict}. */
export interface LoadWeightsOptions {
  /** Load `ema_model.bin` over the base weights, as the official sampler does (default true). */
  useEma?: boolean;
  /** Base checkpoint file in the folder (default: `model.safetensors`, else `pytorch_model.bin`, …). */
  weightsFile?: string;
  /** EMA checkpoint file in the folder (default `ema_model.bin`). */
  emaFile?: string;
}

/**
 * Loads the transformer's tensors from an `llm/` folder. With `useEma` (the
 * default) the EMA file is read first and the base file only for keys the EMA
 * file lacks, which equals loading the base and then the EMA weights over it
 * without holding both in memory. Diffusion-head and training-only tensors
 * are never read.
 */
export function loadTransformerStateDict(dir: string, options: LoadWeightsOptions = {}): StateDict {
  const useEma = options.useEma ?? true;
  const keep = (k: string) => !isUnused(k);
  if (!useEma) return loadStateDict(dir, { file: options.weightsFile, filter: keep });
  const emaFile = options.emaFile ?? "ema_model.bin";
  if (!existsSync(join(dir, emaFile))) {
    throw new HartError(
      "missing-file",
      `${dir}: no ${emaFile} (the EMA weights the official sampler uses); pass { useEma: false } to use the base weights`,
    );
  }
  const sd = loadStateDict(dir, { file: emaFile, filter: keep });
  let base: StateDict;
  try {
    base = loadStateDict(dir, { file: options.weightsFile, filter: (k) => keep(k) && !sd.has(k) });
  } catch (err) {
    // the EMA file holds every key (the usual case): nothing to take from the base file
    if (err instanceof HartError && err.code === "missing-weight") return sd;
    throw err;
  }
  for (const [k, t] of base) sd.set(k, t);
  return sd;
}

/**
 * A state dict being turned into graphs. `take` checks a tensor and returns
 * it as float32; with `consume` the key is removed from the map once taken,
 * so the caller's copy can be collected after the session holding it exists.
 */
export class WeightReader {
  constructor(
    private readonly sd: StateDict,
    private readonly source: string,
    private readonly consume: boolean,
  ) {}

  /** Whether `key` exists. */
  has(key: string): boolean {
    return this.sd.has(key);
  }

  /** The float32 tensor `key` with the given shape (missing/shape/dtype errors name the key and the checkpoint). */
  take(key: string, shape: readonly number[]): Tensor<"float32"> {
    const t = takeTensor(this.sd, key, {
      shape,
      dtype: ["float32", "float16", "bfloat16", "float64"],
      source: this.source,
    });
    if (this.consume) this.sd.delete(key);
    return toFloat32(t);
  }

  /** Like {@link take} for an optional tensor. */
  maybe(key: string, shape: readonly number[]): Tensor<"float32"> | undefined {
    return this.sd.has(key) ? this.take(key, shape) : undefined;
  }
}
