/**
 * One transformer block (`AdaLNSelfAttn`) as a graph that runs every scale:
 * the new tokens of the scale attend to the cached keys/values of all earlier
 * tokens (fed in as `pastK`/`pastV`) and to themselves. The block returns its
 * output and the new tokens' keys/values, which the caller appends to a cache
 * in TypeScript (outputs are copied by onnxruntime, inputs are not), or the
 * whole updated cache, which stays on the device with WebGPU.
 */
import {
  addRmsNorm,
  attentionWithCache,
  type BuiltModel,
  GraphBuilder,
  type GraphForm,
  geluTanh,
  HartError,
  kvLayoutOf,
  layerNorm,
  linearOf,
  PLAIN_FORM,
  rmsNormOf,
  ropeOf,
  silu,
  type Tensor,
  toFloat32Value,
  toFormPrecision,
  type Value,
} from "@hart/core";
import type { HartTransformerConfig } from "../config";
import { headDim } from "../config";

/** The FFN weights, PyTorch `[out, in]` layout. */
export type FfnWeights =
  | { kind: "llama"; gateUpOI: Tensor<"float32">; downOI: Tensor<"float32"> }
  | {
      kind: "gpt2";
      fc1OI: Tensor<"float32">;
      fc1B: Tensor<"float32">;
      fc2OI: Tensor<"float32">;
      fc2B: Tensor<"float32">;
    };

/** One block's weights, PyTorch `[out, in]` layout for every linear layer. */
export interface BlockWeights {
  /** `qkv_proj` / `mat_qkv` `[C, 3C]`. */
  qkvOI: Tensor<"float32">;
  /** `cat(q_bias, zero_k_bias, v_bias)` `[3C]`. */
  qkvBias: Tensor<"float32">;
  projOI: Tensor<"float32">;
  projB: Tensor<"float32">;
  /** `ln_wo_grad.weight` (RMSNorm keeps one even without affine); absent for LayerNorm. */
  normW?: Tensor<"float32">;
  ffn: FfnWeights;
  /** `attn_l2_norm`: per-head query scale `exp(min(scale_mul, ln 100))` as `[H, 1]`. */
  l2Scale?: Tensor<"float32">;
}

/**
 * The norm every HART block uses: RMSNorm (llama attention) or LayerNorm
 * without affine (gpt2 attention).
 */
export function blockNorm(
  g: GraphBuilder,
  cfg: HartTransformerConfig,
  x: Value,
  w?: Tensor,
  form: GraphForm = PLAIN_FORM,
): Value {
  return cfg.attnType === "llama"
    ? rmsNormOf(g, form, x, cfg.normEps, cfg.embedDim, w)
    : layerNorm(g, x, cfg.normEps, cfg.embedDim);
}

/** `q·cos + swapHalves(q)·sinSigned` per head: HART's rotate_half RoPE with `sinSigned = cat(-sin[:d/2], sin[d/2:])`. */
function rope(g: GraphBuilder, q: Value, cos4: Value, sin4: Value, heads: number, hd: number): Value {
  const q4 = g.op("Reshape", [q, g.ints([0, 0, heads, hd])]);
  const [lo, hi] = g.opMulti("Split", [q4, g.ints([hd / 2, hd / 2])], { axis: -1 }, { outputs: 2 });
  const swapped = g.op("Concat", [hi, lo], { axis: -1 });
  const y = g.op("Add", [g.op("Mul", [q4, cos4]), g.op("Mul", [swapped, sin4])]);
  return g.op("Reshape", [y, g.ints([0, 0, heads * hd])]);
}

/**
 * `F.normalize(x, dim=-1)` per head (`x / max(‖x‖, 1e-12)`), times an optional per-head scale. In float32 also in
 * float16 graphs (1e-12 is below float16's range).
 */
function l2PerHead(g: GraphBuilder, form: GraphForm, x: Value, heads: number, hd: number, scaleH1?: Tensor): Value {
  const x4 = toFloat32Value(g, form, g.op("Reshape", [x, g.ints([0, 0, heads, hd])]));
  const norm = g.op("Max", [g.op("ReduceL2", [x4, g.ints([-1])], { keepdims: 1 }), g.scalar(1e-12)]);
  let y = g.op("Div", [x4, norm]);
  if (scaleH1) y = g.op("Mul", [y, g.weight(scaleH1)]);
  return toFormPrecision(g, form, g.op("Reshape", [y, g.ints([0, 0, heads * hd])]));
}

/** `norm(x)·(1+scale)+shift` when modulated, else `norm(x)`. */
function modulatedNorm(
  g: GraphBuilder,
  cfg: HartTransformerConfig,
  x: Value,
  w: BlockWeights,
  mod?: { scale: Value; shift: Value },
  form: GraphForm = PLAIN_FORM,
): Value {
  return modulate(g, form, blockNorm(g, cfg, x, w.normW, form), mod);
}

/** `h·(1+scale)+shift` when modulated, else `h`. */
function modulate(g: GraphBuilder, form: GraphForm, h: Value, mod?: { scale: Value; shift: Value }): Value {
  if (!mod) return h;
  return g.op("Add", [g.op("Mul", [h, g.op("Add", [mod.scale, g.scalar(1, form.precision)])]), mod.shift]);
}

/**
 * Builds the block graph.
 *
 * Inputs: `x` `[N, l, C]`; with llama attention `cos`/`sin` `[N, l, hd]`
 * (`sin` already sign-flipped on its first half); when the blocks are
 * modulated `mod` `[N, 6, C]` (gamma1, gamma2, scale1, scale2, shift1,
 * shift2); `pastK`/`pastV` (P may be 0).
 * Outputs: `y` `[N, l, C]` and the KV cache update `k`/`v` (after RoPE) or, with `presentOutputs`, the updated
 * cache `presentK`/`presentV` instead (`pastK` with `k` appended: what a cache kept on the device feeds back).
 *
 * The plain form (CPU) takes `pastK`/`pastV` as `[N, P, C]` and returns this scale's keys/values `[N, l, C]`, which
 * the caller appends. The fused form (CUDA) uses `SimplifiedLayerNormalization`, `SkipSimplifiedLayerNormalization`
 * (residual + second norm), `RotaryEmbedding` and `MultiHeadAttention` with `past_key`/`past_value` `[N, H, P, hd]`;
 * it returns this scale's keys/values as `[N, H, l, hd]` rather than the op's `present` `[N, H, P+l, hd]`, because
 * onnxruntime-node copies every output to the host (see `kvLayoutOf` in `@hart/core`).
 * In a float16 form the weights, activations and the cache (`pastK`/`pastV`, `k`/`v`) are float16, while `x`, `y`,
 * `cos`/`sin` and `mod` stay float32 at the graph's boundary.
 */
export function buildBlockGraph(
  cfg: HartTransformerConfig,
  index: number,
  w: BlockWeights,
  modulated: boolean,
  form: GraphForm = PLAIN_FORM,
  presentOutputs = false,
): BuiltModel {
  if (form.precision !== "float32" && cfg.attnType !== "llama") {
    throw new HartError("unsupported", `unsupported: ${form.precision} blocks with attn_type=${cfg.attnType}`);
  }
  const C = cfg.embedDim;
  const H = cfg.numHeads;
  const hd = headDim(cfg);
  const fused = form.flavour === "fused";
  const g = new GraphBuilder(`hart-block-${index}${fused ? "-fused" : ""}`);
  // float32 at the boundary; the form's precision inside (no-op Casts are not emitted for float32)
  const input = (name: string, shape: (string | number)[]) => toFormPrecision(g, form, g.input(name, "float32", shape));
  const x = input("x", ["N", "l", C]);
  let cos: Value | undefined;
  let sin: Value | undefined;
  if (cfg.attnType === "llama") {
    cos = input("cos", ["N", "l", hd]);
    sin = input("sin", ["N", "l", hd]);
  }
  let mods: Value[] | undefined;
  if (modulated) {
    const mod = input("mod", ["N", 6, C]);
    mods = g.opMulti("Split", [mod, g.ints([1, 1, 1, 1, 1, 1])], { axis: 1 }, { outputs: 6 });
  }
  const heads = kvLayoutOf(form) === "heads";
  const pastShape = heads ? ["N", H, "P", hd] : ["N", "P", C];
  const pastK = g.input("pastK", form.precision, pastShape);
  const pastV = g.input("pastV", form.precision, pastShape);

  // attention
  const h1 = modulatedNorm(g, cfg, x, w, mods && { scale: mods[2], shift: mods[4] }, form);
  const qkv = linearOf(g, form, h1, w.qkvOI, w.qkvBias);
  let [q, k, v] = g.opMulti("Split", [qkv, g.ints([C, C, C])], { axis: -1 }, { outputs: 3 });
  if (cfg.attnL2Norm) {
    q = l2PerHead(g, form, q, H, hd, w.l2Scale);
    k = l2PerHead(g, form, k, H, hd);
  }
  if (cos && sin) {
    if (fused) {
      // 2-D RoPE tables (rows on the first half, columns on the second) and 1-D ones share this graph
      const rotate = ropeOf(g, form, { cos, sin, foldedSign: true }, { heads: H, headDim: hd });
      q = rotate(q);
      k = rotate(k);
    } else {
      const axes = g.ints([2]);
      const cos4 = g.op("Unsqueeze", [cos, axes]);
      const sin4 = g.op("Unsqueeze", [sin, axes]);
      q = rope(g, q, cos4, sin4, H, hd);
      k = rope(g, k, cos4, sin4, H, hd);
    }
  }
  // Plain: 3-D Q/K/V without mask or bias keeps onnxruntime on its flash-attention path (no L×P score matrix).
  const scale = cfg.attnL2Norm ? 1 : Math.fround(0.25 / Math.sqrt(hd));
  const att = attentionWithCache(g, form, { q, k, v }, { k: pastK, v: pastV }, { heads: H, scale });
  let o = linearOf(g, form, att.o, w.projOI, w.projB);
  if (mods) o = g.op("Mul", [o, mods[0]]);
  let x1: Value;
  let h2: Value;
  const mod2 = mods && { scale: mods[3], shift: mods[5] };
  if (fused && cfg.attnType === "llama") {
    const { sum, y } = addRmsNorm(g, form, x, o, cfg.normEps, C, w.normW);
    x1 = sum;
    h2 = modulate(g, form, y, mod2);
  } else {
    x1 = g.op("Add", [x, o]);
    h2 = modulatedNorm(g, cfg, x1, w, mod2, form);
  }

  // feed-forward
  let ff: Value;
  if (w.ffn.kind === "llama") {
    const hidden = w.ffn.downOI.shape[1];
    const [gate, up] = g.opMulti(
      "Split",
      [linearOf(g, form, h2, w.ffn.gateUpOI), g.ints([hidden, hidden])],
      { axis: -1 },
      { outputs: 2 },
    );
    ff = linearOf(g, form, g.op("Mul", [silu(g, gate), up]), w.ffn.downOI);
  } else {
    ff = linearOf(g, form, geluTanh(g, linearOf(g, form, h2, w.ffn.fc1OI, w.ffn.fc1B)), w.ffn.fc2OI, w.ffn.fc2B);
  }
  if (mods) ff = g.op("Mul", [ff, mods[1]]);
  const y = g.op("Add", [x1, ff]);

  g.output(toFloat32Value(g, form, y), "y", "float32", ["N", "l", C]);
  if (presentOutputs) {
    // the whole updated cache, kept on the device (the attention computes it anyway); no host copy of this
    // scale's keys/values then: a device session fetches every output on every run
    if (!att.presentK || !att.presentV)
      throw new HartError("internal", "the attention form gave no present keys/values");
    const presentShape = heads ? ["N", H, "T", hd] : ["N", "T", C];
    g.output(att.presentK, "presentK", form.precision, presentShape);
    g.output(att.presentV, "presentV", form.precision, presentShape);
  } else {
    const kvShape = heads ? ["N", H, "l", hd] : ["N", "l", C];
    g.output(att.k, "k", form.precision, kvShape);
    g.output(att.v, "v", form.precision, kvShape);
  }
  return g.build();
}
