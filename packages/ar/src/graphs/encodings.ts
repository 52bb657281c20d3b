/**
 * Position and level encodings. TypeScript only prepares positions with
 * float32-exact arithmetic (+, −, ×, ÷); every transcendental function runs
 * here in onnxruntime, so the tables are identical on every JavaScript runtime.
 */
import { type BuiltModel, GraphBuilder, linearOI, silu, type Tensor, tensor } from "@hart/core";
import type { HartTransformerConfig } from "../config";

/** −ln(10000) rounded to float32, the `max_period` factor of the sinusoidal embeddings. */
const NEG_LN_10000 = Math.fround(-9.210340371976184);

/**
 * RoPE tables from per-element positions.
 *
 * Inputs: `pos` `[N, l, hd]` (the position that multiplies each head-dim
 * element's frequency) and `expo` `[hd]` (the exponent `i/hd` of that
 * element's frequency `1/10000^(i/hd)`). Outputs: `cos` and `sin`
 * `[N, l, hd]`, `sin` negated on the first half (rotate_half folded in).
 */
export function buildRopeGraph(hd: number, theta = 10000): BuiltModel {
  const g = new GraphBuilder("hart-rope");
  const pos = g.input("pos", "float32", ["N", "l", hd]);
  const expo = g.input("expo", "float32", [hd]);
  const inv = g.op("Reciprocal", [g.op("Pow", [g.scalar(theta), expo])]);
  const angle = g.op("Mul", [pos, inv]);
  const sign = new Float32Array(hd).fill(1).fill(-1, 0, hd / 2);
  g.output(g.op("Cos", [angle]), "cos", "float32", ["N", "l", hd]);
  g.output(g.op("Mul", [g.op("Sin", [angle]), g.weight(tensor("float32", [hd], sign))]), "sin", "float32", [
    "N",
    "l",
    hd,
  ]);
  return g.build();
}

/**
 * The sinusoidal level embedding (`TimestepEmbedder`): `cat(cos(s·f), sin(s·f))`
 * with `f[i] = exp(f32(−ln 10000 · i) / half)`, then Linear → SiLU → Linear.
 * Input `level` `[S, 1]` (float), output `lvl` `[S, C]`.
 */
export function buildLevelGraph(
  cfg: HartTransformerConfig,
  w: { fc1OI: Tensor<"float32">; fc1B: Tensor<"float32">; fc2OI: Tensor<"float32">; fc2B: Tensor<"float32"> },
): BuiltModel {
  const half = w.fc1OI.shape[1] / 2;
  const arg = new Float32Array(half);
  for (let i = 0; i < half; i++) arg[i] = Math.fround(Math.fround(NEG_LN_10000 * i) / half);
  const g = new GraphBuilder("hart-level-embed");
  const level = g.input("level", "float32", ["S", 1]);
  const freqs = g.op("Exp", [g.weight(tensor("float32", [1, half], arg))]);
  const a = g.op("Mul", [level, freqs]);
  const emb = g.op("Concat", [g.op("Cos", [a]), g.op("Sin", [a])], { axis: 1 });
  const y = linearOI(g, silu(g, linearOI(g, emb, w.fc1OI, w.fc1B)), w.fc2OI, w.fc2B);
  g.output(y, "lvl", "float32", ["S", cfg.embedDim]);
  return g.build();
}
