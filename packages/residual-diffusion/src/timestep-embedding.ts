import { HartError, type Tensor, tensor } from "@hart/core";

const f32 = Math.fround;

/**
 * The sinusoidal timestep embedding of `TimestepEmbedder` (GLIDE/DiT):
 * `[cos(t·f_0), …, cos(t·f_{h−1}), sin(t·f_0), …, sin(t·f_{h−1})]` with
 * `h = dim/2` and `f_i = exp(−ln(maxPeriod) · i / h)` (a zero column is
 * appended when `dim` is odd).
 *
 * It is tiny (one row per distinct timestep), so it is computed here rather
 * than in the graph, following PyTorch's float32 rounding exactly: `f_i` and
 * the angles `t·f_i` are float32 values (at t = 999 a float64 angle would move
 * the network output by up to ~8e-5); only cos/sin are taken in float64 and
 * rounded once.
 *
 * @param timesteps - one timestep per row (integers or fractions).
 * @returns `[timesteps.length, dim]` float32.
 */
export function timestepEmbedding(timesteps: readonly number[], dim = 256, maxPeriod = 10000): Tensor<"float32"> {
  if (!Number.isInteger(dim) || dim <= 0)
    throw new HartError("argument", `timestepEmbedding: dim must be a positive integer, got ${dim}`);
  for (const t of timesteps) {
    if (!Number.isFinite(t)) throw new HartError("argument", `timestepEmbedding: timestep ${t} is not finite`);
  }
  const half = Math.floor(dim / 2);
  const logPeriod = f32(-Math.log(maxPeriod));
  const freqs = Float32Array.from({ length: half }, (_, i) => f32(Math.exp(f32(f32(logPeriod * i) / half))));
  const out = new Float32Array(timesteps.length * dim);
  timesteps.forEach((t, row) => {
    const tf = f32(t);
    const base = row * dim;
    for (let i = 0; i < half; i++) {
      const angle = f32(tf * freqs[i]);
      out[base + i] = Math.cos(angle);
      out[base + half + i] = Math.sin(angle);
    }
  });
  return tensor("float32", [timesteps.length, dim], out);
}
