/**
 * The conv-autoencoder layers of HART's tokenizer (VQGAN style, `basic_vae.py`)
 * as ONNX ops on NCHW values. Weights are the checkpoint's own tensors (PyTorch
 * Conv2d layout `[out, in, kh, kw]`), fetched by key from a {@link Weights}.
 */
import {
  attentionOf,
  type GraphBuilder,
  type GraphForm,
  groupNormOf,
  HartError,
  PLAIN_FORM,
  type Tensor,
  tensor,
  type Value,
} from "@hart/core";

/** Typed access to the autoencoder's weights by their state-dict key (without the `vae.` prefix). */
export interface Weights {
  /** The float32 tensor stored under `key`, checked against `shape` when given (throws a clear error when missing). */
  get(key: string, shape?: readonly number[]): Tensor<"float32">;
  /** Whether `key` exists. */
  has(key: string): boolean;
}

/** GroupNorm groups and epsilon of the official `Normalize` (GroupNorm(32, eps 1e-6, affine)). */
const NORM_GROUPS = 32;
const NORM_EPS = 1e-6;

/** How self-attention is executed: onnxruntime's fused `MultiHeadAttention` (no score matrix kept) or MatMul–Softmax–MatMul. */
export type AttentionKind = "mha" | "plain";

/** `Conv2d(x)` with the weight/bias stored under `prefix`; `pads` = [top, left, bottom, right]. */
export function conv2d(
  g: GraphBuilder,
  x: Value,
  w: Weights,
  prefix: string,
  opts: { cin: number; cout: number; k: number; stride?: number; pads?: readonly number[] },
): Value {
  const weightOIKK = w.get(`${prefix}.weight`, [opts.cout, opts.cin, opts.k, opts.k]);
  const bias = w.get(`${prefix}.bias`, [opts.cout]);
  const p = opts.k >> 1;
  return g.op("Conv", [x, g.weight(weightOIKK), g.weight(bias)], {
    kernel_shape: [opts.k, opts.k],
    strides: [opts.stride ?? 1, opts.stride ?? 1],
    pads: opts.pads ?? [p, p, p, p],
  });
}

/**
 * `GroupNorm(32, C, eps 1e-6)` with affine weight/bias, optionally followed by SiLU. Plain form: the groups are
 * normalised by InstanceNormalization on a `[B, 32, C/32·H·W]` view, then scaled per channel; fused form (CUDA):
 * `com.microsoft` `GroupNorm` in NHWC with the SiLU inside (see `groupNormOf` in `@hart/core`).
 */
export function groupNorm(
  g: GraphBuilder,
  x: Value,
  w: Weights,
  prefix: string,
  C: number,
  opts: { form?: GraphForm; silu?: boolean } = {},
): Value {
  if (C % NORM_GROUPS !== 0) {
    throw new HartError(
      "config",
      `${prefix}: GroupNorm(${NORM_GROUPS}) needs a channel count divisible by 32, got ${C}`,
    );
  }
  const gammaC = w.get(`${prefix}.weight`, [C]);
  const betaC = w.get(`${prefix}.bias`, [C]);
  return groupNormOf(g, opts.form ?? PLAIN_FORM, x, gammaC, betaC, {
    groups: NORM_GROUPS,
    eps: NORM_EPS,
    silu: opts.silu,
  });
}

/** `ResnetBlock(cin → cout)`: `nin_shortcut(x) + conv2(swish(norm2(conv1(swish(norm1(x))))))`. */
export function resnetBlock(
  g: GraphBuilder,
  x: Value,
  w: Weights,
  prefix: string,
  cin: number,
  cout: number,
  form: GraphForm = PLAIN_FORM,
): Value {
  let h = groupNorm(g, x, w, `${prefix}.norm1`, cin, { form, silu: true });
  h = conv2d(g, h, w, `${prefix}.conv1`, { cin, cout, k: 3 });
  h = groupNorm(g, h, w, `${prefix}.norm2`, cout, { form, silu: true });
  h = conv2d(g, h, w, `${prefix}.conv2`, { cin: cout, cout, k: 3 });
  const shortcut = cin === cout ? x : conv2d(g, x, w, `${prefix}.nin_shortcut`, { cin, cout, k: 1 });
  return g.op("Add", [shortcut, h]);
}

/**
 * `AttnBlock(C)`: single-head self-attention over the H·W positions with C-wide
 * heads and scale C^−0.5, `x + proj_out(attn(qkv(norm(x))))`.
 */
export function attnBlock(
  g: GraphBuilder,
  x: Value,
  w: Weights,
  prefix: string,
  C: number,
  kind: AttentionKind,
  form: GraphForm = PLAIN_FORM,
): Value {
  const h = groupNorm(g, x, w, `${prefix}.norm`, C, { form });
  const qkvB3CHW = conv2d(g, h, w, `${prefix}.qkv`, { cin: C, cout: 3 * C, k: 1 });
  const qkvBN3C = g.op("Transpose", [g.op("Reshape", [qkvB3CHW, g.ints([0, 3 * C, -1])])], { perm: [0, 2, 1] });
  const [qBNC, kBNC, vBNC] = g.opMulti("Split", [qkvBN3C, g.ints([C, C, C])], { axis: 2 }, { outputs: 3 });
  const scale = C ** -0.5;
  const attention = kind === "mha" ? PLAIN_FORM : { ...PLAIN_FORM, attention: "matmul" as const };
  const oBNC = attentionOf(g, attention, qBNC, kBNC, vBNC, { heads: 1, scale });
  const oBCHW = g.op("Reshape", [g.op("Transpose", [oBNC], { perm: [0, 2, 1] }), g.op("Shape", [x])]);
  return g.op("Add", [x, conv2d(g, oBCHW, w, `${prefix}.proj_out`, { cin: C, cout: C, k: 1 })]);
}

/** `Upsample2x`: nearest-neighbour ×2 (PyTorch `mode="nearest"`), then a 3×3 conv. */
export function upsample2x(g: GraphBuilder, x: Value, w: Weights, prefix: string, C: number): Value {
  const up = g.op("Resize", [x, "", g.weight(tensor("float32", [4], Float32Array.of(1, 1, 2, 2)))], {
    mode: "nearest",
    coordinate_transformation_mode: "asymmetric",
    nearest_mode: "floor",
  });
  return conv2d(g, up, w, `${prefix}.conv`, { cin: C, cout: C, k: 3 });
}

/** `Downsample2x`: zero-pad one row/column at the bottom/right, then a 3×3 conv with stride 2 and no padding. */
export function downsample2x(g: GraphBuilder, x: Value, w: Weights, prefix: string, C: number): Value {
  return conv2d(g, x, w, `${prefix}.conv`, { cin: C, cout: C, k: 3, stride: 2, pads: [0, 0, 1, 1] });
}
