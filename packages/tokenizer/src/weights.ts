/**
 * Loading the tokenizer checkpoint: keeps the autoencoder's tensors (under
 * `vae.` in the official `HARTAutoEncoderWithDisc` layout; the discriminator's
 * `disc.*` are never read), strips the prefix and converts floating tensors to
 * float32 once.
 */
import {
  HartError,
  loadStateDict,
  resolveCheckpoint,
  type StateDict,
  type Tensor,
  takeTensor,
  toFloat32,
} from "@hart/core";
import type { Weights } from "./graph/layers";

/**
 * The checkpoint file of a tokenizer folder: `file` when given (a name inside `dir`), else the
 * first of `model.safetensors`, `model.safetensors.index.json`, `pytorch_model.bin`, ... present.
 */
export function findWeightsFile(dir: string, file?: string): string {
  return resolveCheckpoint(dir, { file });
}

/**
 * Loads the autoencoder's state dict from a checkpoint file: keys under `vae.` (or
 * unprefixed keys for a bare `hart_autoencoder` checkpoint) without the prefix, float32.
 */
export function loadTokenizerStateDict(file: string): { stateDict: StateDict; prefix: string } {
  const raw = loadStateDict(file, { filter: (key) => !key.startsWith("disc.") });
  const prefix = [...raw.keys()].some((k) => k.startsWith("vae.")) ? "vae." : "";
  const out: StateDict = new Map();
  for (const [key, t] of raw) {
    if (!key.startsWith(prefix)) continue;
    const isFloat = t.dtype.startsWith("float") || t.dtype === "bfloat16";
    out.set(key.slice(prefix.length), isFloat ? toFloat32(t) : t);
  }
  if (out.size === 0)
    throw new HartError("checkpoint", `${file}: no tokenizer weights found (expected keys under "vae.")`);
  return { stateDict: out, prefix };
}

/**
 * A {@link Weights} view of a prefix-free state dict. `source` (the checkpoint) and
 * `prefix` (how the keys are spelled there, e.g. `vae.`) make errors name the real key.
 */
export function weightsOf(sd: StateDict, source: string, prefix = "vae."): Weights {
  return {
    has: (key) => sd.has(key),
    get(key, shape) {
      const full = `${prefix}${key}`;
      if (!sd.has(key)) throw new HartError("missing-weight", `missing weight "${full}" in ${source}`);
      const t: Tensor = takeTensor(sd, key, { shape, source: `${source} (key "${full}")` });
      if (t.dtype !== "float32")
        throw new HartError("dtype", `weight "${full}" in ${source} is ${t.dtype}, expected float`);
      return t as Tensor<"float32">;
    },
  };
}
