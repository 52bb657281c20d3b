/**
 * Graph forms: the same layer emitted either as plain ONNX ops (every provider; the CPU path and the numerical
 * reference) or as the fused operators onnxruntime's CUDA provider has single kernels for
 * (`SimplifiedLayerNormalization`, `com.microsoft` `SkipSimplifiedLayerNormalization`, `RotaryEmbedding`,
 * `MultiHeadAttention` with past/present key-values, `GroupNorm`), optionally in float16.
 *
 * Model packages build their graphs through these helpers with a {@link GraphForm}; {@link graphForm} picks the
 * fused flavour for `device: "cuda"` and the plain one everywhere else, so the CPU path keeps its exact ops.
 * Every fused form except GroupNorm also has a CPU kernel, which is how the tests prove both forms compute the
 * same function.
 */
import { HartError } from "../errors";
import { type DeviceChoice, resolveDevice } from "../session";
import { type Tensor, tensor, toFloat16, toFloat32 } from "../tensor";
import { f, type GraphBuilder, type Value } from "./builder";
import { linearInt8, quantizeLinearInt8 } from "./int8";
import { linearOI, rmsNorm, silu } from "./nn";

/** `plain`: standard ONNX ops only. `fused`: onnxruntime's fused CUDA operators (see the module comment). */
export type GraphFlavour = "plain" | "fused";

/** Element type of a graph's activations and weights. float16 needs the fused flavour. */
export type GraphPrecision = "float32" | "float16";

/**
 * How attention without a mask is computed: `mha`, onnxruntime's `com.microsoft` `MultiHeadAttention` (one kernel,
 * no score matrix kept); `matmul`, standard `MatMul`/`Softmax`/`MatMul` per head. WebGPU gets `matmul`: measured
 * with onnxruntime-node 1.30's WebGPU provider (Mesa llvmpipe adapter), `MultiHeadAttention` is wrong by 3–7 %
 * whenever 32 or more queries attend at once, while MatMul and Softmax match the CPU to 1e-7.
 */
export type AttentionImpl = "mha" | "matmul";

/**
 * How linear layers multiply by their weight matrices: `float`, in the form's precision; `int8`, with int8 weights
 * and activations quantized on the fly (`DynamicQuantizeMatMul`, see `linearInt8`): faster on CPU, not exact.
 */
export type LinearImpl = "float" | "int8";

/** How a graph is emitted: which operator forms, at which precision. */
export interface GraphForm {
  /** Operator forms: standard ONNX ops (`plain`) or onnxruntime's fused CUDA operators (`fused`). */
  readonly flavour: GraphFlavour;
  /** Element type of activations and weights (`float16` needs the fused flavour or MatMul attention). */
  readonly precision: GraphPrecision;
  /** The plain flavour's unmasked attention (default `"mha"`); the fused flavour always uses `MultiHeadAttention`. */
  readonly attention?: AttentionImpl;
  /** How {@link linearOf} multiplies by weight matrices (default `"float"`); `"int8"` only in the plain float32 form on CPU. */
  readonly linear?: LinearImpl;
}

/** Plain ops in float32: the CPU path. */
export const PLAIN_FORM: GraphForm = Object.freeze({ flavour: "plain", precision: "float32" });

/** Options model packages pass through to {@link graphForm}. */
export interface GraphFormOptions {
  /** The device the graph will run on (`"auto"` is resolved with the registered device probe). */
  device?: DeviceChoice;
  /** Forces a flavour (e.g. `"fused"` on CPU to test the CUDA graphs); default: fused on `cuda`, plain elsewhere. */
  graphFlavour?: GraphFlavour;
  /** Activation and weight precision (default `"float32"`; `"float16"` requires the fused flavour). */
  precision?: GraphPrecision;
  /** The plain flavour's attention (default: `"matmul"` on `webgpu`, `"mha"` elsewhere; see {@link AttentionImpl}). */
  attention?: AttentionImpl;
  /** Linear layers' weights (default `"float"`; `"int8"`: CPU, plain float32 form; see {@link LinearImpl}). */
  linear?: LinearImpl;
}

/** The flavour for a device: `fused` on `cuda`, `plain` elsewhere; `forced` wins when given. */
export function graphFlavourFor(device?: DeviceChoice, forced?: GraphFlavour): GraphFlavour {
  if (forced !== undefined) {
    if (forced !== "plain" && forced !== "fused") {
      throw new HartError("argument", `graphFlavour must be "plain" or "fused", got ${JSON.stringify(forced)}`);
    }
    return forced;
  }
  const resolved = device === "auto" ? resolveDevice("auto") : device;
  return resolved === "cuda" ? "fused" : "plain";
}

/** The {@link GraphForm} for a model package's options (see {@link GraphFormOptions}). */
export function graphForm(options: GraphFormOptions = {}): GraphForm {
  const device = options.device === "auto" ? resolveDevice("auto") : options.device;
  const flavour = graphFlavourFor(device, options.graphFlavour);
  const precision = options.precision ?? "float32";
  if (precision !== "float32" && precision !== "float16") {
    throw new HartError("argument", `precision must be "float32" or "float16", got ${JSON.stringify(precision)}`);
  }
  const linear = options.linear ?? "float";
  if (linear !== "float" && linear !== "int8") {
    throw new HartError("argument", `linear must be "float" or "int8", got ${JSON.stringify(linear)}`);
  }
  if (linear === "int8" && (flavour !== "plain" || precision !== "float32" || (device ?? "cpu") !== "cpu")) {
    throw new HartError(
      "unsupported",
      `unsupported: int8 linear layers on device "${device ?? "cpu"}" with ${flavour} ${precision} graphs: onnxruntime's DynamicQuantizeMatMul runs on the CPU, in float32 graphs of the plain flavour`,
    );
  }
  if (flavour === "plain") {
    const attention = options.attention ?? (device === "webgpu" ? "matmul" : "mha");
    if (attention !== "mha" && attention !== "matmul") {
      throw new HartError("argument", `attention must be "mha" or "matmul", got ${JSON.stringify(attention)}`);
    }
    if (precision === "float16" && attention !== "matmul") {
      throw new HartError(
        "unsupported",
        'unsupported: float16 graphs on this device: they need the fused forms (the default on device "cuda"; graphFlavour: "fused" forces them) or MatMul/Softmax attention (the default on "webgpu"; attention: "matmul")',
      );
    }
    if (linear === "int8") return Object.freeze({ flavour, precision, attention, linear });
    return attention === "mha" ? PLAIN_FORM : Object.freeze({ flavour, precision, attention });
  }
  return Object.freeze({ flavour, precision });
}

const ONNX_FLOAT = 1;
const ONNX_FLOAT16 = 10;

/** A float32 graph value in the form's precision (a Cast for float16, else unchanged). */
export function toFormPrecision(g: GraphBuilder, form: GraphForm, x: Value): Value {
  return form.precision === "float16" ? g.op("Cast", [x], { to: ONNX_FLOAT16 }) : x;
}

/** A value in the form's precision back to float32 (a Cast for float16, else unchanged). */
export function toFloat32Value(g: GraphBuilder, form: GraphForm, x: Value): Value {
  return form.precision === "float16" ? g.op("Cast", [x], { to: ONNX_FLOAT }) : x;
}

const converted = new WeakMap<Tensor, Tensor>();

/**
 * A float weight as an initializer in the form's precision. A float16 copy is made once per tensor object and
 * shared by every graph that uses it (so float16 graphs hold half the bytes, not an extra float32 copy).
 */
export function formWeight(g: GraphBuilder, form: GraphForm, t: Tensor): Value {
  if (t.dtype === form.precision) return g.weight(t);
  let c = converted.get(t);
  if (!c || c.dtype !== form.precision) {
    c = form.precision === "float16" ? toFloat16(t) : toFloat32(t);
    converted.set(t, c);
  }
  return g.weight(c);
}

/**
 * `x @ wOIᵀ (+ b)` for a PyTorch-layout `[out, in]` weight, as the form says: `FusedMatMul` with the weight in the
 * form's precision ({@link linearOI}), or `DynamicQuantizeMatMul` with the weight quantized to int8 here (`int8`
 * forms; `x` float32).
 */
export function linearOf(g: GraphBuilder, form: GraphForm, x: Value, wOI: Tensor, b?: Tensor): Value {
  if (form.linear === "int8") return linearInt8(g, x, quantizeLinearInt8(wOI), b);
  const y = linearOI(g, x, formWeight(g, form, wOI));
  return b ? g.op("Add", [y, formWeight(g, form, b)]) : y;
}

function ones(n: number): Tensor<"float32"> {
  return tensor("float32", [n], new Float32Array(n).fill(1));
}

/** The norm scale as a weight; fused norms always take one (all ones when the layer has none). */
function normScale(g: GraphBuilder, form: GraphForm, width: number, w?: Tensor): Value {
  return formWeight(g, form, w ?? ones(width));
}

/**
 * RMSNorm over the last axis, `x / sqrt(mean(x²) + eps) · w`: plain ops ({@link rmsNorm}) or
 * `SimplifiedLayerNormalization`; statistics in float32 also for float16 inputs (a float16 `x²` overflows from
 * |x| > 256), so the plain float16 form casts around the plain ops. `width` is the last axis.
 */
export function rmsNormOf(g: GraphBuilder, form: GraphForm, x: Value, eps: number, width: number, w?: Tensor): Value {
  if (form.flavour === "plain") {
    const w32 = w && (w.dtype === "float32" ? w : toFloat32(w));
    return toFormPrecision(g, form, rmsNorm(g, toFloat32Value(g, form, x), eps, w32));
  }
  return g.op("SimplifiedLayerNormalization", [x, normScale(g, form, width, w)], {
    axis: -1,
    epsilon: f(eps),
    stash_type: 1,
  });
}

/**
 * The residual add followed by RMSNorm, `sum = x + residual; y = rmsNorm(sum)`: plain Add + {@link rmsNorm}, or one
 * `com.microsoft` `SkipSimplifiedLayerNormalization` that returns both. Inputs are `[..., width]` (2-D or 3-D).
 */
export function addRmsNorm(
  g: GraphBuilder,
  form: GraphForm,
  x: Value,
  residual: Value,
  eps: number,
  width: number,
  w?: Tensor,
): {
  /** The residual sum `x + residual`, `[..., width]` (the next residual stream). */
  sum: Value;
  /** RMSNorm of `sum`, `[..., width]`. */
  y: Value;
} {
  if (form.flavour === "plain") {
    const sum = g.op("Add", [x, residual]);
    return { sum, y: rmsNormOf(g, form, sum, eps, width, w) };
  }
  // outputs: normed, (mean, inv_std_var: omitted), input + skip
  const [y, , , sum] = g.opMulti(
    "SkipSimplifiedLayerNormalization",
    [x, residual, normScale(g, form, width, w)],
    { epsilon: f(eps) },
    { domain: "com.microsoft", outputs: [undefined, "", "", undefined] },
  );
  return { sum, y };
}

/**
 * `com.microsoft` `RotaryEmbedding`'s own inputs: caches `[P, d/2]` of cos and sin per position (the angle of the
 * pair `(i, i + d/2)` of a head, rotate-half layout) and each token's row in them: `[N, l]` ids, or a `[1]` offset
 * (token t of every row then uses row `offset + t`).
 */
export interface RotaryCaches {
  /** Cosine cache `[P, d/2]`: one row of pair angles per position. */
  readonly cos: Value;
  /** Sine cache `[P, d/2]`, same rows as {@link cos}. */
  readonly sin: Value;
  /** Each token's row in the caches: int64 `[N, l]` ids, or a `[1]` offset. */
  readonly positionIds: Value;
}

/**
 * Rotate-half RoPE on `x` `[N, l, heads·headDim]` with `com.microsoft` `RotaryEmbedding`:
 * `y1 = x1·cos − x2·sin`, `y2 = x2·cos + x1·sin` per head (x1/x2 the halves of the head dimension).
 */
export function rotaryEmbedding(
  g: GraphBuilder,
  x: Value,
  caches: RotaryCaches,
  heads: number,
  headDim: number,
): Value {
  return g.op(
    "RotaryEmbedding",
    [x, caches.positionIds, caches.cos, caches.sin],
    { interleaved: 0, num_heads: heads, rotary_embedding_dim: headDim },
    { domain: "com.microsoft" },
  );
}

/**
 * Per-token rotate-half RoPE tables `[N, l, headDim]` (`y = x·cos + rotate_half(x)·sin`,
 * `rotate_half(x) = cat(−x2, x1)`).
 */
export interface RopeTables {
  /** Cosine of each token's angle per head-dimension element, `[N, l, headDim]`. */
  readonly cos: Value;
  /** Sine of each token's angle per head-dimension element, `[N, l, headDim]` (see {@link foldedSign}). */
  readonly sin: Value;
  /** `sin` has rotate_half's sign folded in: its first half is negated (`y = x·cos + cat(x2, x1)·sin`). */
  readonly foldedSign?: boolean;
  /**
   * Both halves of the head dimension hold the same angles (1-D RoPE), so the map is a rotation and the fused
   * form needs one `RotaryEmbedding`. HART's 2-D RoPE has row angles on the first half and column angles on the
   * second: rotate_half pairs a row angle with a column angle, which is no rotation (see {@link ropeOf}).
   */
  readonly sameHalves?: boolean;
}

/** Options of {@link ropeOf}. */
export interface RopeOptions {
  /** Number of attention heads H packed in the last axis of each value (`heads·headDim`). */
  readonly heads: number;
  /** Per-head dimension d (even); the tables' last axis. */
  readonly headDim: number;
}

/**
 * Rotate-half RoPE with per-token tables, returned as a function applied to each `[N, l, heads·headDim]` value
 * (queries, keys) so the tables are prepared once per graph.
 *
 * Plain: `x·cos + rotate_half(x)·sin` with Split/Concat/Mul/Add on a `[N, l, H, d]` view.
 *
 * Fused: `RotaryEmbedding` with one cache row per token (`[N·l, d/2]`, ids `0..N·l−1`). `RotaryEmbedding` rotates
 * the pair `(i, i + d/2)` by one angle; HART's 2-D RoPE gives the two elements of that pair different angles
 * (row `a` for the first half, column `b` for the second): `y1 = x1·cos a − x2·sin a`, `y2 = x2·cos b + x1·sin b`.
 * So the fused form runs `RotaryEmbedding` twice, with the first-half angles (keeping `y1`) and the second-half
 * angles (keeping `y2`), unless the tables say {@link RopeTables.sameHalves}.
 */
export function ropeOf(
  g: GraphBuilder,
  form: GraphForm,
  tables: RopeTables,
  { heads, headDim }: RopeOptions,
): (x: Value) => Value {
  const half = headDim / 2;
  if (!Number.isInteger(half) || headDim < 2) {
    throw new HartError("graph", `graph "${g.name}": RoPE needs an even head dimension, got ${headDim}`);
  }
  if (form.flavour === "plain") {
    const axes = g.ints([2]);
    const cos4 = g.op("Unsqueeze", [tables.cos, axes]);
    const sin4 = g.op("Unsqueeze", [tables.sin, axes]);
    return (x) => {
      const x4 = g.op("Reshape", [x, g.ints([0, 0, heads, headDim])]);
      const [lo, hi] = g.opMulti("Split", [x4, g.ints([half, half])], { axis: -1 }, { outputs: 2 });
      const rotated = g.op("Concat", [tables.foldedSign ? hi : g.op("Neg", [hi]), lo], { axis: -1 });
      const y = g.op("Add", [g.op("Mul", [x4, cos4]), g.op("Mul", [rotated, sin4])]);
      return g.op("Reshape", [y, g.ints([0, 0, heads * headDim])]);
    };
  }
  // one cache row per token: ids 0..N·l−1 laid out as [N, l]
  const shapeNl = g.op("Slice", [g.op("Shape", [tables.cos]), g.ints([0]), g.ints([2])]);
  const count = g.op("ReduceProd", [shapeNl], { keepdims: 0 });
  const ids = g.op("Reshape", [g.op("Range", [g.scalar(0, "int64"), count, g.scalar(1, "int64")]), shapeNl]);
  const rows = g.ints([-1, half]);
  const halfOf = (table: Value, from: number, negate: boolean) => {
    const part = g.op("Reshape", [g.op("Slice", [table, g.ints([from]), g.ints([from + half]), g.ints([-1])]), rows]);
    return negate ? g.op("Neg", [part]) : part;
  };
  const first: RotaryCaches = {
    cos: halfOf(tables.cos, 0, false),
    sin: halfOf(tables.sin, 0, tables.foldedSign === true),
    positionIds: ids,
  };
  if (tables.sameHalves) return (x) => rotaryEmbedding(g, x, first, heads, headDim);
  const second: RotaryCaches = {
    cos: halfOf(tables.cos, half, false),
    sin: halfOf(tables.sin, half, false),
    positionIds: ids,
  };
  const view = g.ints([0, 0, heads, headDim]);
  const last = g.ints([-1]);
  return (x) => {
    const a = g.op("Reshape", [rotaryEmbedding(g, x, first, heads, headDim), view]);
    const b = g.op("Reshape", [rotaryEmbedding(g, x, second, heads, headDim), view]);
    const y1 = g.op("Slice", [a, g.ints([0]), g.ints([half]), last]);
    const y2 = g.op("Slice", [b, g.ints([half]), g.ints([headDim]), last]);
    return g.op("Reshape", [g.op("Concat", [y1, y2], { axis: -1 }), g.ints([0, 0, heads * headDim])]);
  };
}

/**
 * How a cached attention's keys/values are laid out: `tokens` = `[N, P, H·d]` (plain form), `heads` =
 * `[N, H, P, d]` (fused form: `MultiHeadAttention`'s `past_key`/`present_key` layout).
 */
export type KVLayout = "tokens" | "heads";

/** The KV cache layout of a form's cached attention (see {@link attentionWithCache}). */
export function kvLayoutOf(form: GraphForm): KVLayout {
  return form.flavour === "fused" ? "heads" : "tokens";
}

/** Result of {@link attentionWithCache}. */
export interface CachedAttention {
  /** Attention output `[N, l, H·d]`. */
  readonly o: Value;
  /** This call's keys/values in the cache layout (`[N, l, H·d]` or `[N, H, l, d]`), for the caller to append. */
  readonly k: Value;
  /** This call's values, laid out like {@link k}. */
  readonly v: Value;
  /**
   * The whole updated cache in the cache layout (`[N, P+l, H·d]`, or `MultiHeadAttention`'s `present_key`/
   * `present_value` `[N, H, P+l, d]`), for a cache that stays on the device (WebGPU `gpu-buffer` outputs; with other
   * providers onnxruntime-node copies every output to the host, so hart returns the new keys/values instead; see
   * the `@hart/kernels-cuda` README).
   */
  readonly presentK?: Value;
  /** The whole updated value cache, laid out like {@link presentK}. */
  readonly presentV?: Value;
}

/**
 * Unmasked attention of `q` `[N, l, H·d]` over `k`/`v` `[N, L, H·d]` with softmax scale `scale`, returning
 * `[N, l, H·d]`, in the form's {@link AttentionImpl}: `MultiHeadAttention` on the 3-D inputs, or per head
 * `softmax(q·kᵀ·scale)·v` with standard ops (one head needs no reshapes).
 */
export function attentionOf(
  g: GraphBuilder,
  form: GraphForm,
  q: Value,
  k: Value,
  v: Value,
  opts: { heads: number; scale: number },
): Value {
  if ((form.attention ?? "mha") === "mha" || form.flavour === "fused") {
    return g.op(
      "MultiHeadAttention",
      [q, k, v],
      { num_heads: opts.heads, scale: f(opts.scale) },
      { domain: "com.microsoft" },
    );
  }
  const scale = g.scalar(opts.scale, form.precision);
  if (opts.heads === 1) {
    const scoresNlL = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k], { perm: [0, 2, 1] })]), scale]);
    return g.op("MatMul", [g.op("Softmax", [scoresNlL], { axis: -1 }), v]);
  }
  const split = g.ints([0, 0, opts.heads, -1]);
  const qNHld = g.op("Transpose", [g.op("Reshape", [q, split])], { perm: [0, 2, 1, 3] });
  const kNHdL = g.op("Transpose", [g.op("Reshape", [k, split])], { perm: [0, 2, 3, 1] });
  const vNHLd = g.op("Transpose", [g.op("Reshape", [v, split])], { perm: [0, 2, 1, 3] });
  const scoresNHlL = g.op("Mul", [g.op("MatMul", [qNHld, kNHdL]), scale]);
  const oNHld = g.op("MatMul", [g.op("Softmax", [scoresNHlL], { axis: -1 }), vNHLd]);
  return g.op("Reshape", [g.op("Transpose", [oNHld], { perm: [0, 2, 1, 3] }), g.ints([0, 0, -1])]);
}

/**
 * Attention of `q`/`k`/`v` `[N, l, H·d]` over the cached keys/values and themselves, no mask, softmax scale `scale`
 * (HART: `0.25/√d`).
 *
 * Plain (`tokens` layout): `past` is `[N, P, H·d]`; the new keys/values are concatenated and `com.microsoft`
 * `MultiHeadAttention` runs on 3-D inputs (onnxruntime's flash-attention path on CPU).
 *
 * Fused (`heads` layout): `past` is `[N, H, P, d]` and `MultiHeadAttention` takes it as `past_key`/`past_value`
 * (its CUDA kernel wants the `present` outputs with them, so they are always emitted).
 */
export function attentionWithCache(
  g: GraphBuilder,
  form: GraphForm,
  qkv: { q: Value; k: Value; v: Value },
  past: { k: Value; v: Value },
  opts: { heads: number; scale: number },
): CachedAttention {
  const attrs = { num_heads: opts.heads, scale: f(opts.scale) };
  if (form.flavour === "plain") {
    const allK = g.op("Concat", [past.k, qkv.k], { axis: 1 });
    const allV = g.op("Concat", [past.v, qkv.v], { axis: 1 });
    const o = attentionOf(g, form, qkv.q, allK, allV, opts);
    return { o, k: qkv.k, v: qkv.v, presentK: allK, presentV: allV };
  }
  const [o, presentK, presentV] = g.opMulti(
    "MultiHeadAttention",
    [qkv.q, qkv.k, qkv.v, "", "", "", past.k, past.v],
    attrs,
    { domain: "com.microsoft", outputs: 3 },
  );
  const view = g.ints([0, 0, opts.heads, -1]);
  const toHeads = (x: Value) => g.op("Transpose", [g.op("Reshape", [x, view])], { perm: [0, 2, 1, 3] });
  return { o, k: toHeads(qkv.k), v: toHeads(qkv.v), presentK, presentV };
}

/** Options of {@link groupNormOf}. */
export interface GroupNormOptions {
  /** Number of channel groups normalised together; must divide the channel count C. */
  readonly groups: number;
  /** Epsilon added to the variance before the square root. */
  readonly eps: number;
  /** Apply SiLU after the norm (fused into the CUDA kernel). */
  readonly silu?: boolean;
}

/**
 * Whether onnxruntime's CUDA `GroupNorm` kernel takes `channels` in `groups` groups: each group an even number of
 * channels (2 per thread) and at most 512 (one block).
 */
export function cudaGroupNormSupports(channels: number, groups: number): boolean {
  if (channels % groups !== 0) return false;
  const perGroup = channels / groups;
  return perGroup % 2 === 0 && perGroup <= 512;
}

/**
 * `GroupNorm(groups, C, eps)` with affine `gamma`/`beta` `[C]` on `x` `[N, C, H, W]`, optionally followed by SiLU.
 *
 * Plain: InstanceNormalization on a `[N, groups, C/groups·H·W]` view, then the per-channel affine (and `x·σ(x)`).
 *
 * Fused: `com.microsoft` `GroupNorm` (`activation = 1` for SiLU) between NCHW→NHWC→NCHW transposes (its CUDA kernel
 * is NHWC only, with float32 gamma/beta also for float16 inputs). CUDA-only: it has no CPU kernel. Falls back to the
 * plain form for channel counts the kernel refuses ({@link cudaGroupNormSupports}).
 */
export function groupNormOf(
  g: GraphBuilder,
  form: GraphForm,
  x: Value,
  gamma: Tensor,
  beta: Tensor,
  { groups, eps, silu: withSilu = false }: GroupNormOptions,
): Value {
  const C = gamma.shape[0];
  if (gamma.shape.length !== 1 || beta.shape.length !== 1 || beta.shape[0] !== C || C % groups !== 0) {
    throw new HartError(
      "shape",
      `graph "${g.name}": GroupNorm(${groups}) needs gamma/beta [C] with C divisible by ${groups}, got [${gamma.shape}] / [${beta.shape}]`,
    );
  }
  if (form.flavour === "fused" && cudaGroupNormSupports(C, groups)) {
    const nhwc = g.op("Transpose", [x], { perm: [0, 2, 3, 1] });
    const y = g.op(
      "GroupNorm",
      [nhwc, g.weight(toFloat32(gamma)), g.weight(toFloat32(beta))],
      { activation: withSilu ? 1 : 0, channels_last: 1, epsilon: f(eps), groups },
      { domain: "com.microsoft" },
    );
    return g.op("Transpose", [y], { perm: [0, 3, 1, 2] });
  }
  let y: Value;
  if (C === groups) {
    y = g.op("InstanceNormalization", [x, formWeight(g, form, gamma), formWeight(g, form, beta)], { epsilon: f(eps) });
  } else {
    const xNGS = g.op("Reshape", [x, g.ints([0, groups, -1])]);
    const zeros = tensor("float32", [groups], new Float32Array(groups));
    const normed = g.op(
      "InstanceNormalization",
      [xNGS, formWeight(g, form, ones(groups)), formWeight(g, form, zeros)],
      {
        epsilon: f(eps),
      },
    );
    const scaled = g.op("Mul", [
      g.op("Reshape", [normed, g.op("Shape", [x])]),
      formWeight(g, form, tensor(gamma.dtype, [C, 1, 1], gamma.data)),
    ]);
    y = g.op("Add", [scaled, formWeight(g, form, tensor(beta.dtype, [C, 1, 1], beta.data))]);
  }
  return withSilu ? silu(g, y) : y;
}
