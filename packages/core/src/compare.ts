import { HartError } from "./errors";
import { type Tensor, toFloat32 } from "./tensor";

function values(x: Tensor | ArrayLike<number>): ArrayLike<number> {
  if (!("dtype" in x)) return x;
  if (x.dtype === "int64") return Float64Array.from(x.data as BigInt64Array, Number);
  if (x.dtype === "float16" || x.dtype === "bfloat16") return toFloat32(x).data;
  return x.data as ArrayLike<number>;
}

/**
 * ‖actual − expected‖₂ / ‖expected‖₂ (the plain ‖Δ‖₂ when the reference is
 * all zeros), accumulated in float64 — the measure hart's conformance checks
 * use. float16/bfloat16 tensors are decoded first.
 */
export function relativeError(actual: Tensor | ArrayLike<number>, expected: Tensor | ArrayLike<number>): number {
  const a = values(actual);
  const b = values(expected);
  if (a.length !== b.length) {
    throw new HartError("shape", `relativeError: ${a.length} values compared with ${b.length}`);
  }
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
}
