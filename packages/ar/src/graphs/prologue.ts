/**
 * What is computed once per generation from the text context: the guidance
 * batch `cond_BD = context_embed(context_norm(cat(context, 0)))`, the first
 * scale's input (the context tokens), and every adaLN modulation (the blocks'
 * when they have one, and `head_nm`'s from the max-pooled context).
 */
import {
  type BuiltModel,
  GraphBuilder,
  type GraphForm,
  linearOI,
  PLAIN_FORM,
  rmsNormOf,
  silu,
  type Tensor,
  type Value,
} from "@hart/core";
import type { HartTransformerConfig } from "../config";

/** Weights of the prologue graph (PyTorch `[out, in]` layout for linear layers). */
export interface PrologueWeights {
  /** `context_norm.weight` `[Dc]` when `use_context_norm`. */
  contextNormW?: Tensor<"float32">;
  contextEmbedOI: Tensor<"float32">;
  contextEmbedB: Tensor<"float32">;
  /** `pos_start` `[1, T, C]` (gpt2 attention only). */
  posStart?: Tensor<"float32">;
  /** `head_nm.ada_lin.1` `[C, 2C]`, `[2C]`. */
  headAdaOI: Tensor<"float32">;
  headAdaB: Tensor<"float32">;
  /** Per-block modulation source: `ada_lin.1` weights (adaLN) or `scale_shift_table` `[6, C]` (shared_aln). */
  blocks?: { adaOI: Tensor<"float32">; adaB: Tensor<"float32"> }[] | { table: Tensor<"float32"> }[];
}

/** `context_pooling`: masked mean (`(x·m / max(Σm, 1)).sum(1)`) or max over all tokens. */
function pool(g: GraphBuilder, cond: Value, mode: "avg" | "max", maskN1T?: Value): Value {
  if (mode === "max") return g.op("ReduceMax", [cond, g.ints([1])], { keepdims: 0 });
  const m = g.op("Unsqueeze", [maskN1T!, g.ints([-1])]); // [N, T, 1]
  const count = g.op("Max", [g.op("ReduceSum", [m, g.ints([1])], { keepdims: 1 }), g.scalar(1)]); // [N, 1, 1]
  return g.op("ReduceSum", [g.op("Div", [g.op("Mul", [cond, m]), count]), g.ints([1])], { keepdims: 0 });
}

/**
 * Builds the prologue graph.
 *
 * Inputs: `context` `[B, T, Dc]`, `lvl0` `[1, T|1, C]` (the level embedding of
 * scale 0, plus `pos_1LC[:T]` for gpt2 attention), `mask` `[N, T]` float
 * (guidance batch mask, only when some pooling is a masked mean).
 * Outputs: `x0` `[N, T, C]`, `headMod` `[N, 2, C]` (scale, shift), `blockMods`
 * `[depth, N, 6, C]` when the blocks are modulated, and for inspection
 * `contextNormOut` `[N, T, Dc]`, `cond` `[N, T, C]`.
 */
export function buildPrologueGraph(
  cfg: HartTransformerConfig,
  w: PrologueWeights,
  form: GraphForm = PLAIN_FORM,
): BuiltModel {
  const C = cfg.embedDim;
  const g = new GraphBuilder("hart-prologue");
  const context = g.input("context", "float32", ["B", cfg.contextToken, cfg.contextDim]);
  const lvl0 = g.input("lvl0", "float32", [1, "T0", C]);
  const usesMask = !!w.blocks && (!cfg.disableAln ? cfg.sepAlnPoolingMode === "avg" : true);
  const mask = usesMask ? g.input("mask", "float32", ["N", cfg.contextToken]) : undefined;

  // classifier-free guidance: the unconditional half sees an all-zero context
  const zeros = g.op("ConstantOfShape", [g.op("Shape", [context])]);
  const both = g.op("Concat", [context, zeros], { axis: 0 });
  const normed = w.contextNormW ? rmsNormOf(g, form, both, cfg.normEps, cfg.contextDim, w.contextNormW) : both;
  const cond = linearOI(g, normed, w.contextEmbedOI, w.contextEmbedB);
  const sos = w.posStart ? g.op("Add", [cond, g.weight(w.posStart)]) : cond;
  g.output(g.op("Add", [sos, lvl0]), "x0", "float32", ["N", cfg.contextToken, C]);

  // head_nm pools with max over every context token, whatever the mode
  const headMod = linearOI(g, silu(g, pool(g, cond, "max")), w.headAdaOI, w.headAdaB);
  g.output(g.op("Reshape", [headMod, g.ints([0, 2, C])]), "headMod", "float32", ["N", 2, C]);

  if (w.blocks) {
    const mods: Value[] = [];
    if (!cfg.disableAln) {
      const pooled = silu(g, pool(g, cond, cfg.sepAlnPoolingMode, mask));
      for (const b of w.blocks as { adaOI: Tensor<"float32">; adaB: Tensor<"float32"> }[]) {
        mods.push(g.op("Reshape", [linearOI(g, pooled, b.adaOI, b.adaB), g.ints([1, -1, 6, C])]));
      }
    } else {
      const pooled = g.op("Unsqueeze", [pool(g, cond, "avg", mask), g.ints([1])]); // [N, 1, C]
      for (const b of w.blocks as { table: Tensor<"float32"> }[]) {
        mods.push(g.op("Unsqueeze", [g.op("Add", [g.weight(b.table), pooled]), g.ints([0])]));
      }
    }
    g.output(g.op("Concat", mods, { axis: 0 }), "blockMods", "float32", [w.blocks.length, "N", 6, C]);
  }
  g.output(normed, "contextNormOut", "float32", ["N", cfg.contextToken, cfg.contextDim]);
  g.output(cond, "cond", "float32", ["N", cfg.contextToken, C]);
  return g.build();
}
