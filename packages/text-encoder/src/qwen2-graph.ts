/**
 * The Qwen2 decoder (Hugging Face `Qwen2Model`, eager attention) as ONNX
 * graphs, one graph per part of the model: a part is an optional embedding
 * lookup, a run of decoder layers and an optional final norm, so that a
 * 1.5B-parameter model can be compiled part by part (see `Qwen2TextEncoder`).
 *
 * Activations are float32 throughout. Projections use the checkpoint's
 * PyTorch layout `[out, in]` as is (`linearOI`: a matmul with transB), so no
 * weight is ever transposed; 16-bit weights are cast to float32 right before
 * use. A form with `linear: "int8"` quantizes the projections instead
 * (`DynamicQuantizeMatMul`, CPU).
 */
import {
  addRmsNorm,
  type BuiltModel,
  GraphBuilder,
  type GraphForm,
  HartError,
  linearInt8,
  linearOI,
  PLAIN_FORM,
  quantizeLinearInt8,
  type RotaryCaches,
  rmsNorm,
  rmsNormOf,
  rotaryEmbedding,
  silu,
  type Tensor,
  tensor,
  type Value,
} from "@hart/core";
import type { Qwen2Config } from "./config";

/**
 * The weights of one decoder layer (PyTorch layouts, `[out, in]` for projections), with their `layers.N.` checkpoint
 * keys. Shapes: D = `hidden_size`, H = `num_attention_heads`, Hkv = `num_key_value_heads`, d = `head_dim`,
 * I = `intermediate_size`.
 */
export interface Qwen2LayerWeights {
  /** RMSNorm scale before attention `[D]` (`input_layernorm.weight`). */
  inputNorm: Tensor;
  /** Query projection `[H·d, D]` (`self_attn.q_proj.weight`). */
  qW: Tensor;
  /** Query bias `[H·d]` (`self_attn.q_proj.bias`). */
  qB: Tensor;
  /** Key projection `[Hkv·d, D]` (`self_attn.k_proj.weight`). */
  kW: Tensor;
  /** Key bias `[Hkv·d]` (`self_attn.k_proj.bias`). */
  kB: Tensor;
  /** Value projection `[Hkv·d, D]` (`self_attn.v_proj.weight`). */
  vW: Tensor;
  /** Value bias `[Hkv·d]` (`self_attn.v_proj.bias`). */
  vB: Tensor;
  /** Attention output projection `[D, H·d]`, no bias (`self_attn.o_proj.weight`). */
  oW: Tensor;
  /** RMSNorm scale before the MLP `[D]` (`post_attention_layernorm.weight`). */
  postNorm: Tensor;
  /** MLP gate projection `[I, D]`, SiLU-activated (`mlp.gate_proj.weight`). */
  gateW: Tensor;
  /** MLP up projection `[I, D]` (`mlp.up_proj.weight`). */
  upW: Tensor;
  /** MLP down projection `[D, I]` (`mlp.down_proj.weight`). */
  downW: Tensor;
}

/** One part of the model: what it starts and ends with and the layers in between. */
export interface Qwen2PartWeights {
  /** The embedding table `[V, D]`: the part takes token ids (`input_ids`) instead of hidden states. */
  embed?: Tensor;
  /** Consecutive decoder layers (may be empty). */
  layers: Qwen2LayerWeights[];
  /** Index of the first layer in the whole model (names only). */
  firstLayer: number;
  /** The final RMSNorm weight: the part ends the model and returns `last_hidden_state`. */
  finalNorm?: Tensor;
}

/** Graph input and output names of a part. */
export const PART_IO = {
  /** `[B, S]` int64 token ids (parts with the embedding). */
  ids: "input_ids",
  /** `[B, S]` bool, true for keys that may be attended to (parts with layers). */
  mask: "attention_mask",
  /** `[B, S, D]` float32 residual stream between parts. */
  hiddenIn: "hidden_in",
  /** `[B, S, D]` float32 residual stream passed to the next part (parts without the final norm). */
  hiddenOut: "hidden_out",
  /** `[1]` int64: the final part returns positions `from..S-1` only. */
  from: "from",
  /** `[B, S - from, D]` float32, after the final norm. */
  last: "last_hidden_state",
} as const;

const FLOAT = 1; // ONNX TensorProto.FLOAT

/** A projection weight as a float32 value: as stored, or cast from its 16-bit storage right before use. */
function asFloat(g: GraphBuilder, t: Tensor): Tensor | Value {
  return t.dtype === "float32" ? t : g.op("Cast", [g.weight(t)], { to: FLOAT });
}

/** PyTorch `Linear`: `x @ w.T (+ b)` for `w` as stored (`[out, in]`). */
type Linear = (xND: Value, w: Tensor, b?: Tensor) => Value;

/**
 * The form's linear layers: `w` used as stored (never transposed; 16-bit weights cast right before use), or, with
 * `linear: "int8"`, quantized to per-channel int8 for `DynamicQuantizeMatMul`.
 */
function linearFor(g: GraphBuilder, form: GraphForm): Linear {
  if (form.linear === "int8") return (xND, w, b) => linearInt8(g, xND, quantizeLinearInt8(w), b);
  return (xND, w, b) => linearOI(g, xND, asFloat(g, w), b);
}

/**
 * `inv_freq = 1 / theta^(arange(0, hd, 2) / hd)` computed in float32 the way
 * PyTorch does (the exponent and the power rounded to float32).
 */
export function ropeInvFreq(headDim: number, theta: number): Float32Array {
  const inv = new Float32Array(headDim / 2);
  for (let i = 0; i < inv.length; i++) inv[i] = 1 / Math.fround(theta ** Math.fround((2 * i) / headDim));
  return inv;
}

/** Per-graph values every layer shares: RoPE tables, the additive mask and the shapes of the batch. */
interface Shared {
  /** `[1, S, 1, 1, hd]` cos / sin of the positions 0..S-1. */
  cos: Value;
  sin: Value;
  /** `[B, 1, 1, S, S]`: 0 where key j ≤ query i and key j is unmasked, float32 min elsewhere. */
  maskAdd: Value;
  /** `[B, S, KV, G, hd]` and friends as int64 shape tensors. */
  shapeQ: Value;
  shapeKV: Value;
  shapeND: Value;
  /** The form's linear layer. */
  linear: Linear;
  /** Fused form only: `RotaryEmbedding`'s caches `[S, hd/2]` (positions 0..S-1, offset 0). */
  rotary?: RotaryCaches;
  /** Fused form only: the mask as `MultiHeadAttention`'s `attention_bias` `[B, 1, S, S]`, and `[B, S, H·hd]`. */
  biasB1SS?: Value;
  shapeBSC?: Value;
}

function sharedValues(g: GraphBuilder, c: Qwen2Config, maskBS: Value, form: GraphForm): Shared {
  const groups = c.numHeads / c.numKvHeads;
  const shapeBS = g.op("Shape", [maskBS]);
  const seqLen = g.op("Squeeze", [g.op("Slice", [shapeBS, g.ints([1]), g.ints([2])]), g.ints([0])]);
  const posS = g.op("Range", [g.scalar(0, "int64"), seqLen, g.scalar(1, "int64")]);

  // HF's default position ids 0..S-1 (padding does not shift them): angles = pos * inv_freq in float32.
  const invFreq = g.weight(tensor("float32", [1, c.headDim / 2], ropeInvFreq(c.headDim, c.ropeTheta)));
  const anglesSH = g.op("Mul", [g.op("Unsqueeze", [g.op("Cast", [posS], { to: FLOAT }), g.ints([1])]), invFreq]);
  const embSd = g.op("Concat", [anglesSH, anglesSH], { axis: 1 });
  const tableShape = g.ints([1, -1, 1, 1, c.headDim]);
  const cos = g.op("Reshape", [g.op("Cos", [embSd]), tableShape]);
  const sin = g.op("Reshape", [g.op("Sin", [embSd]), tableShape]);

  // Causal + padding mask exactly as HF's eager path builds it (a row with no allowed key gets a uniform softmax).
  const causalSS = g.op("LessOrEqual", [
    g.op("Unsqueeze", [posS, g.ints([0])]), // key j along the last axis
    g.op("Unsqueeze", [posS, g.ints([1])]), // query i along the rows
  ]);
  const keysB111S = g.op("Unsqueeze", [maskBS, g.ints([1, 2, 3])]);
  const allowed = g.op("And", [causalSS, keysB111S]);
  const maskAdd = g.op("Where", [allowed, g.scalar(0), g.scalar(-3.4028234663852886e38)]);

  const kvd = g.ints([c.numKvHeads, groups, c.headDim]);
  const shared: Shared = {
    cos,
    sin,
    maskAdd,
    shapeQ: g.op("Concat", [shapeBS, kvd], { axis: 0 }),
    shapeKV: g.op("Concat", [shapeBS, g.ints([c.numKvHeads, 1, c.headDim])], { axis: 0 }),
    shapeND: g.ints([-1, c.numHeads * c.headDim]),
    linear: linearFor(g, form),
  };
  if (form.flavour === "fused") {
    // the same angles as the plain tables (cat(angles, angles)), one cache row per position
    shared.rotary = {
      cos: g.op("Cos", [anglesSH]),
      sin: g.op("Sin", [anglesSH]),
      positionIds: g.ints([0]),
    };
    shared.biasB1SS = g.op("Squeeze", [maskAdd, g.ints([1])]);
    shared.shapeBSC = g.op("Concat", [shapeBS, g.ints([-1])], { axis: 0 });
  }
  return shared;
}

/** `x * cos + rotate_half(x) * sin` on the last axis, `rotate_half(x) = cat(-x2, x1)`. */
function rope(g: GraphBuilder, x: Value, s: Shared, headDim: number): Value {
  const [x1, x2] = g.opMulti("Split", [x, g.ints([headDim / 2, headDim / 2])], { axis: -1 }, { outputs: 2 });
  const rotated = g.op("Concat", [g.op("Neg", [x2]), x1], { axis: -1 });
  return g.op("Add", [g.op("Mul", [x, s.cos]), g.op("Mul", [rotated, s.sin])]);
}

/** Grouped-query self-attention of one layer on `hND` (already normed); returns `[N, H·hd]` before o_proj. */
function attention(g: GraphBuilder, c: Qwen2Config, hND: Value, w: Qwen2LayerWeights, s: Shared): Value {
  // Query head h = kv·G + g uses KV head kv (HF repeat_kv), so q splits as [B, S, KV, G, hd].
  const q = rope(g, g.op("Reshape", [s.linear(hND, w.qW, w.qB), s.shapeQ]), s, c.headDim);
  const k = rope(g, g.op("Reshape", [s.linear(hND, w.kW, w.kB), s.shapeKV]), s, c.headDim);
  const v = g.op("Reshape", [s.linear(hND, w.vW, w.vB), s.shapeKV]);
  const qBKGSd = g.op("Transpose", [q], { perm: [0, 2, 3, 1, 4] });
  const kBK1dS = g.op("Transpose", [k], { perm: [0, 2, 3, 4, 1] });
  const vBK1Sd = g.op("Transpose", [v], { perm: [0, 2, 3, 1, 4] });
  const scores = g.op("Div", [g.op("MatMul", [qBKGSd, kBK1dS]), g.scalar(Math.sqrt(c.headDim))]);
  const probs = g.op("Softmax", [g.op("Add", [scores, s.maskAdd])], { axis: -1 });
  const oBKGSd = g.op("MatMul", [probs, vBK1Sd]);
  return g.op("Reshape", [g.op("Transpose", [oBKGSd], { perm: [0, 3, 1, 2, 4] }), s.shapeND]);
}

/**
 * The fused form of {@link attention}: `RotaryEmbedding` on `[B, S, H·hd]` queries/keys and `com.microsoft`
 * `MultiHeadAttention` with the mask as `attention_bias` (KV heads repeated to the query heads, as HF's repeat_kv).
 */
function attentionFused(g: GraphBuilder, c: Qwen2Config, hND: Value, w: Qwen2LayerWeights, s: Shared): Value {
  const rotate = (xND: Value, heads: number) =>
    rotaryEmbedding(g, g.op("Reshape", [xND, s.shapeBSC!]), s.rotary!, heads, c.headDim);
  const q = rotate(s.linear(hND, w.qW, w.qB), c.numHeads);
  const repeatKv = (kvBSC: Value) =>
    g.op("Reshape", [g.op("Expand", [g.op("Reshape", [kvBSC, s.shapeKV]), s.shapeQ]), s.shapeBSC!]);
  const k = repeatKv(rotate(s.linear(hND, w.kW, w.kB), c.numKvHeads));
  const v = repeatKv(g.op("Reshape", [s.linear(hND, w.vW, w.vB), s.shapeBSC!]));
  const o = g.op(
    "MultiHeadAttention",
    [q, k, v, "", "", s.biasB1SS!],
    { num_heads: c.numHeads },
    { domain: "com.microsoft" },
  );
  return g.op("Reshape", [o, s.shapeND]);
}

function decoderLayer(g: GraphBuilder, c: Qwen2Config, xND: Value, w: Qwen2LayerWeights, s: Shared): Value {
  const attnND = attention(g, c, rmsNorm(g, xND, c.rmsNormEps, w.inputNorm), w, s);
  xND = g.op("Add", [xND, s.linear(attnND, w.oW)]);
  const hND = rmsNorm(g, xND, c.rmsNormEps, w.postNorm);
  const actNI = g.op("Mul", [silu(g, s.linear(hND, w.gateW)), s.linear(hND, w.upW)]);
  return g.op("Add", [xND, s.linear(actNI, w.downW)]);
}

/**
 * The fused form of {@link decoderLayer}: every residual add is fused with the norm after it
 * (`SkipSimplifiedLayerNormalization`), so the layer's last add is left `pending` for the next norm.
 */
function decoderLayerFused(
  g: GraphBuilder,
  c: Qwen2Config,
  form: GraphForm,
  xND: Value,
  pending: Value | undefined,
  w: Qwen2LayerWeights,
  s: Shared,
): { x: Value; pending: Value } {
  const D = c.hiddenSize;
  let hND: Value;
  if (pending) ({ sum: xND, y: hND } = addRmsNorm(g, form, xND, pending, c.rmsNormEps, D, w.inputNorm));
  else hND = rmsNormOf(g, form, xND, c.rmsNormEps, D, w.inputNorm);
  const attnND = attentionFused(g, c, hND, w, s);
  const post = addRmsNorm(g, form, xND, s.linear(attnND, w.oW), c.rmsNormEps, D, w.postNorm);
  const actNI = g.op("Mul", [silu(g, s.linear(post.y, w.gateW)), s.linear(post.y, w.upW)]);
  return { x: post.sum, pending: s.linear(actNI, w.downW) };
}

/**
 * Builds one part. Inputs: `input_ids` (with `embed`) or `hidden_in`;
 * `attention_mask` (when it has layers); `from` (with `finalNorm`). Output:
 * `last_hidden_state` (with `finalNorm`) or `hidden_out`. Batch and sequence
 * length are symbolic.
 *
 * `form` selects plain ops (default) or the fused CUDA forms: `SimplifiedLayerNormalization`,
 * `SkipSimplifiedLayerNormalization` for each residual add + norm, `RotaryEmbedding` and `MultiHeadAttention`
 * (float32 activations either way; 16-bit weights are cast as in the plain form).
 */
export function buildQwen2Part(c: Qwen2Config, part: Qwen2PartWeights, form: GraphForm = PLAIN_FORM): BuiltModel {
  if (form.precision !== "float32") {
    throw new HartError(
      "unsupported",
      `unsupported: ${form.precision} text encoder activations (use dtype for 16-bit weights; activations are float32)`,
    );
  }
  const last = part.firstLayer + part.layers.length - 1;
  const g = new GraphBuilder(`qwen2-part-${part.embed ? "embed-" : ""}layers-${part.firstLayer}-${last}`);
  const D = c.hiddenSize;
  let xBSD: Value;
  if (part.embed) {
    const idsBS = g.input(PART_IO.ids, "int64", ["B", "S"]);
    xBSD = g.op("Gather", [g.weight(part.embed), idsBS], { axis: 0 });
    if (part.embed.dtype !== "float32") xBSD = g.op("Cast", [xBSD], { to: FLOAT });
  } else {
    xBSD = g.input(PART_IO.hiddenIn, "float32", ["B", "S", D]);
  }
  const shapeBSD = g.op("Shape", [xBSD]);
  let xND = g.op("Reshape", [xBSD, g.ints([-1, D])]);
  let pending: Value | undefined;
  if (part.layers.length > 0) {
    const maskBS = g.input(PART_IO.mask, "bool", ["B", "S"]);
    const shared = sharedValues(g, c, maskBS, form);
    for (const w of part.layers) {
      if (form.flavour === "plain") xND = decoderLayer(g, c, xND, w, shared);
      else ({ x: xND, pending } = decoderLayerFused(g, c, form, xND, pending, w, shared));
    }
  }
  if (part.finalNorm) {
    const normed = pending
      ? addRmsNorm(g, form, xND, pending, c.rmsNormEps, D, part.finalNorm).y
      : rmsNormOf(g, form, xND, c.rmsNormEps, D, part.finalNorm);
    const yBSD = g.op("Reshape", [normed, shapeBSD]);
    const from = g.input(PART_IO.from, "int64", [1]);
    const kept = g.op("Slice", [yBSD, from, g.ints([Number.MAX_SAFE_INTEGER]), g.ints([1])]);
    g.output(kept, PART_IO.last, "float32", ["B", "L", D]);
  } else {
    if (pending) xND = g.op("Add", [xND, pending]);
    g.output(g.op("Reshape", [xND, shapeBSD]), PART_IO.hiddenOut, "float32", ["B", "S", D]);
  }
  return g.build();
}
