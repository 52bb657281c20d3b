/**
 * The output side of the transformer: `head(head_nm(x))` with classifier-free
 * guidance, the next scale's input embedding, and the last scale's
 * conditioning for the residual diffusion.
 */
import {
  type BuiltModel,
  GraphBuilder,
  type GraphForm,
  layerNorm,
  linearOI,
  PLAIN_FORM,
  rmsNormOf,
  type Tensor,
} from "@hart/core";
import type { HartTransformerConfig } from "../config";
import { blockNorm } from "./block";

/** Weights of the head graph. */
export interface HeadWeights {
  /** `head_nm.ln_wo_grad.weight` (RMSNorm only). */
  normW?: Tensor<"float32">;
  headOI: Tensor<"float32">;
  headB: Tensor<"float32">;
}

/**
 * Logits and guided logits.
 *
 * Inputs: `x` `[N, l, C]` (N = 2B: conditional rows, then unconditional),
 * `headMod` `[N, 2, C]`, `cfgA` = f32(1+t), `cfgB` = f32(t) (shape `[1]`).
 * Outputs: `logits` `[N, l, V]`, `guided` `[B, l, V]` = `cfgA·logits[:B] − cfgB·logits[B:]`.
 */
export function buildHeadGraph(cfg: HartTransformerConfig, w: HeadWeights, form: GraphForm = PLAIN_FORM): BuiltModel {
  const C = cfg.embedDim;
  const V = w.headOI.shape[0];
  const g = new GraphBuilder("hart-head");
  const x = g.input("x", "float32", ["N", "l", C]);
  const mod = g.input("headMod", "float32", ["N", 2, C]);
  const cfgA = g.input("cfgA", "float32", [1]);
  const cfgB = g.input("cfgB", "float32", [1]);
  const [scale, shift] = g.opMulti("Split", [mod, g.ints([1, 1])], { axis: 1 }, { outputs: 2 });
  const h = g.op("Add", [g.op("Mul", [blockNorm(g, cfg, x, w.normW, form), g.op("Add", [scale, g.scalar(1)])]), shift]);
  const logits = linearOI(g, h, w.headOI, w.headB);
  const [cond, uncond] = g.opMulti("Split", [logits], { axis: 0, num_outputs: 2 }, { outputs: 2 });
  const guided = g.op("Sub", [g.op("Mul", [cond, cfgA]), g.op("Mul", [uncond, cfgB])]);
  g.output(logits, "logits", "float32", ["N", "l", V]);
  g.output(guided, "guided", "float32", ["B", "l", V]);
  return g.build();
}

/**
 * The next scale's input: `word_embed(next.flatten(2).T) + lvl`, repeated for
 * the guidance batch.
 *
 * Inputs: `next` `[B, Cvae, pn, pn]`, `lvl` `[1, 1|l, C]`. Output: `x` `[2B, pn², C]`.
 */
export function buildEmbedGraph(
  cfg: HartTransformerConfig,
  wordOI: Tensor<"float32">,
  wordB: Tensor<"float32">,
): BuiltModel {
  const C = cfg.embedDim;
  const Cvae = wordOI.shape[1];
  const g = new GraphBuilder("hart-embed");
  const next = g.input("next", "float32", ["B", Cvae, "pn", "pn"]);
  const lvl = g.input("lvl", "float32", [1, "l1", C]);
  const tokens = g.op("Transpose", [g.op("Reshape", [next, g.ints([0, 0, -1])])], { perm: [0, 2, 1] });
  const x = g.op("Add", [linearOI(g, tokens, wordOI, wordB), lvl]);
  g.output(g.op("Concat", [x, x], { axis: 0 }), "x", "float32", ["N", "l", C]);
  return g.build();
}

/** Weights of the diffusion-conditioning graph. */
export interface CondWeights {
  wordOI: Tensor<"float32">;
  wordB: Tensor<"float32">;
  /** `decoder_norm` weight (and bias for LayerNorm). */
  normW: Tensor<"float32">;
  normB?: Tensor<"float32">;
}

/**
 * The residual diffusion's conditioning at the last scale:
 * `decoder_norm(hidden + cat(word_embed(codes), word_embed(codes)))`.
 *
 * Inputs: `hidden` `[N, l, C]`, `codes` `[B, l, Cvae]` (codebook rows of the
 * sampled indices). Outputs: `cond` `[N, l, C]`, `discrete` `[B, l, C]`.
 */
export function buildCondGraph(cfg: HartTransformerConfig, w: CondWeights, form: GraphForm = PLAIN_FORM): BuiltModel {
  const C = cfg.embedDim;
  const Cvae = w.wordOI.shape[1];
  const g = new GraphBuilder("hart-diffusion-cond");
  const hidden = g.input("hidden", "float32", ["N", "l", C]);
  const codes = g.input("codes", "float32", ["B", "l", Cvae]);
  const d = linearOI(g, codes, w.wordOI, w.wordB);
  const z = g.op("Add", [hidden, g.op("Concat", [d, d], { axis: 0 })]);
  const cond =
    cfg.attnType === "llama"
      ? rmsNormOf(g, form, z, cfg.normEps, C, w.normW)
      : layerNorm(g, z, cfg.normEps, C, w.normW, w.normB);
  g.output(cond, "cond", "float32", ["N", "l", C]);
  g.output(d, "discrete", "float32", ["B", "l", C]);
  return g.build();
}
