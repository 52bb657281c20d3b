import { HartError } from "../errors";
import type { DType, Tensor } from "../tensor";

/** A checkpoint's tensors by key, as PyTorch's `state_dict()` names them. */
export type StateDict = Map<string, Tensor>;

/**
 * Takes a tensor from a state dict, checking its presence, shape and dtype.
 * `source` (a file or folder) is named in the error.
 */
export function takeTensor(
  sd: StateDict,
  key: string,
  expected: { shape?: readonly number[]; dtype?: DType | readonly DType[]; source?: string } = {},
): Tensor {
  const t = sd.get(key);
  const where = expected.source ? ` in ${expected.source}` : "";
  if (!t) {
    // A prefix mismatch (e.g. "vae.encoder…" vs "encoder…") is the usual cause; name the near misses.
    const near = [...sd.keys()].filter((k) => k.endsWith(`.${key}`) || key.endsWith(`.${k}`)).slice(0, 3);
    const hint = near.length ? `; similar keys: ${near.map((k) => `"${k}"`).join(", ")}` : "";
    throw new HartError("missing-weight", `missing weight "${key}"${where} (state dict has ${sd.size} tensors${hint})`);
  }
  if (
    expected.shape &&
    (t.shape.length !== expected.shape.length || t.shape.some((d, i) => d !== expected.shape![i]))
  ) {
    throw new HartError("shape", `weight "${key}"${where} has shape [${t.shape}], expected [${expected.shape}]`);
  }
  if (expected.dtype) {
    const ok = typeof expected.dtype === "string" ? [expected.dtype] : expected.dtype;
    if (!ok.includes(t.dtype))
      throw new HartError("dtype", `weight "${key}"${where} is ${t.dtype}, expected ${ok.join(" or ")}`);
  }
  return t;
}
