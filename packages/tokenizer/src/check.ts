/** Argument checks shared by the tokenizer's entry points (clear {@link HartError}s for bad input). */
import { HartError, type Tensor } from "@hart/core";

/** Checks `t` is a float32 tensor whose shape matches `expected` (`null` = any size); `what` names the argument. */
export function checkFloatTensor(
  t: Tensor,
  what: string,
  expected: readonly (number | null)[],
  layout: string,
): asserts t is Tensor<"float32"> {
  if (!t || typeof t !== "object" || !("shape" in t))
    throw new HartError("argument", `${what}: expected a tensor ${layout}`);
  if (t.dtype !== "float32") throw new HartError("dtype", `${what}: expected float32 ${layout}, got ${t.dtype}`);
  const ok = t.shape.length === expected.length && expected.every((d, i) => d === null || t.shape[i] === d);
  if (!ok) {
    const want = expected.map((d) => d ?? "*").join(", ");
    throw new HartError("shape", `${what}: expected shape ${layout} = [${want}], got [${t.shape}]`);
  }
  if (t.shape[0] === 0) throw new HartError("shape", `${what}: the batch is empty`);
}

/** Throws when `t` holds a NaN or an infinity (they would silently poison every pixel downstream). */
export function checkFinite(t: Tensor<"float32">, what: string): void {
  const d = t.data;
  for (let i = 0; i < d.length; i++) {
    if (!Number.isFinite(d[i])) {
      throw new HartError("value", `${what}: element ${i} is ${d[i]}; inputs must be finite (no NaN or infinity)`);
    }
  }
}
