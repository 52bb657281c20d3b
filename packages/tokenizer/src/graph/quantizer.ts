/**
 * Graphs of the multi-scale residual quantizer. They are shape-generic: the
 * resize matrices (see `resample.ts`), the codebook and the Phi conv of the
 * scale are graph inputs, so one compiled graph serves every scale and every
 * Phi index (inputs are passed to onnxruntime without a copy).
 *
 * Value names: `B` batch, `C` latent channels, `HW` the latent side, `p` the
 * side of the current scale, `q` the side of the next scale, `V` the vocabulary.
 */
import { type BuiltModel, GraphBuilder, type Value } from "@hart/core";

/** Which variant of a quantizer graph to build. */
export interface QuantizerGraphOptions {
  /** Apply Phi (`h·(1−r) + conv3x3(h)·r`) to the upsampled code embeddings. */
  phi: boolean;
  /** The Phi mixing ratio r (|quant_resi|); ignored without `phi`. */
  ratio: number;
}

/** `MatMul(left, MatMul(X, rightT))`: a separable resize of the two trailing axes. */
function resize(g: GraphBuilder, xBCHW: Value, left: Value, rightT: Value): Value {
  return g.op("MatMul", [left, g.op("MatMul", [xBCHW, rightT])]);
}

/** Declares the Phi inputs and returns `h ↦ Phi(h)` (or the identity). */
function phiOf(g: GraphBuilder, opts: QuantizerGraphOptions): (hBCHW: Value) => Value {
  if (!opts.phi) return (h) => h;
  const weightCC33 = g.input("phiWeight", "float32", ["C", "C", 3, 3]);
  const biasC = g.input("phiBias", "float32", ["C"]);
  const keep = g.scalar(1 - opts.ratio);
  const mix = g.scalar(opts.ratio);
  return (hBCHW) => {
    const convBCHW = g.op("Conv", [hBCHW, weightCC33, biasC], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    return g.op("Add", [g.op("Mul", [hBCHW, keep]), g.op("Mul", [convBCHW, mix])]);
  };
}

/** `codebook[idx]` as an NCHW map: `idx [B, p, p] → [B, C, p, p]`. */
function lookup(g: GraphBuilder, codebookVC: Value, idxBpp: Value): Value {
  return g.op("Transpose", [g.op("Gather", [codebookVC, idxBpp], { axis: 0 })], { perm: [0, 3, 1, 2] });
}

/**
 * One scale of the encoder-side residual quantisation (`f_to_idxBl_and_frest`):
 * `z = area(fRest → p)`, `idx = argmin_v |z|² + |e_v|² − 2 z·e_v` (first minimum),
 * `h = Phi(bicubic(E[idx] → HW))`, `fHat += h`, `fRest −= h`.
 *
 * Inputs: `fRest`, `fHat` `[B, C, HW, HW]`, `codebook` `[V, C]`, `downLeft` `[p, HW]`,
 * `downRightT` `[HW, p]`, `upLeft` `[HW, p]`, `upRightT` `[p, HW]` (+ `phiWeight`, `phiBias`).
 * Outputs: `idx` `[B, p, p]` int64, `fHatNext`, `fRestNext`.
 */
export function buildQuantizeStepGraph(opts: QuantizerGraphOptions): BuiltModel {
  const g = new GraphBuilder("hart_quantize_step");
  const fRestBCHW = g.input("fRest", "float32", ["B", "C", "HW", "HW"]);
  const fHatBCHW = g.input("fHat", "float32", ["B", "C", "HW", "HW"]);
  const codebookVC = g.input("codebook", "float32", ["V", "C"]);
  const downLeft = g.input("downLeft", "float32", ["p", "HW"]);
  const downRightT = g.input("downRightT", "float32", ["HW", "p"]);
  const upLeft = g.input("upLeft", "float32", ["HW", "p"]);
  const upRightT = g.input("upRightT", "float32", ["p", "HW"]);
  const phi = phiOf(g, opts);

  const zBppC = g.op("Transpose", [resize(g, fRestBCHW, downLeft, downRightT)], { perm: [0, 2, 3, 1] });
  const zzBpp1 = g.op("ReduceSumSquare", [zBppC, g.ints([-1])], { keepdims: 1 });
  const eeV = g.op("ReduceSumSquare", [codebookVC, g.ints([1])], { keepdims: 0 });
  const zeBppV = g.op("MatMul", [zBppC, g.op("Transpose", [codebookVC], { perm: [1, 0] })]);
  // Same association as torch's `(|z|² + |e|²).addmm_(z, Eᵀ, alpha=−2)`.
  const distBppV = g.op("Sub", [g.op("Add", [zzBpp1, eeV]), g.op("Mul", [zeBppV, g.scalar(2)])]);
  const idxBpp = g.op("ArgMin", [distBppV], { axis: -1, keepdims: 0, select_last_index: 0 });

  const hBCHW = phi(resize(g, lookup(g, codebookVC, idxBpp), upLeft, upRightT));
  g.output(idxBpp, "idx", "int64", ["B", "p", "p"]);
  g.output(g.op("Add", [fHatBCHW, hBCHW]), "fHatNext", "float32", ["B", "C", "HW", "HW"]);
  g.output(g.op("Sub", [fRestBCHW, hBCHW]), "fRestNext", "float32", ["B", "C", "HW", "HW"]);
  return g.build();
}

/**
 * Adds one scale's code embeddings to `fHat` (`get_next_autoregressive_input`):
 * `fHat' = fHat + Phi(bicubic(h → HW))`, and with `next` also `area(fHat' → q)`.
 *
 * Inputs: `fHat` `[B, C, HW, HW]`, `h` `[B, C, p, p]`, `upLeft` `[HW, p]`, `upRightT` `[p, HW]`
 * (+ `downLeft` `[q, HW]`, `downRightT` `[HW, q]` with `next`; + `phiWeight`, `phiBias`).
 * Outputs: `fHatNext` (+ `next` `[B, C, q, q]`).
 */
export function buildAddScaleGraph(opts: QuantizerGraphOptions & { next: boolean }): BuiltModel {
  const g = new GraphBuilder("hart_add_scale");
  const fHatBCHW = g.input("fHat", "float32", ["B", "C", "HW", "HW"]);
  const hBCpp = g.input("h", "float32", ["B", "C", "p", "p"]);
  const upLeft = g.input("upLeft", "float32", ["HW", "p"]);
  const upRightT = g.input("upRightT", "float32", ["p", "HW"]);
  const phi = phiOf(g, opts);
  const fHatNext = g.op("Add", [fHatBCHW, phi(resize(g, hBCpp, upLeft, upRightT))]);
  g.output(fHatNext, "fHatNext", "float32", ["B", "C", "HW", "HW"]);
  if (opts.next) {
    const downLeft = g.input("downLeft", "float32", ["q", "HW"]);
    const downRightT = g.input("downRightT", "float32", ["HW", "q"]);
    g.output(resize(g, fHatNext, downLeft, downRightT), "next", "float32", ["B", "C", "q", "q"]);
  }
  return g.build();
}

/** Codebook lookup: `idx [B, p, p]` int64 → `h [B, C, p, p]`. Inputs `codebook` `[V, C]`, `idx`. */
export function buildLookupGraph(): BuiltModel {
  const g = new GraphBuilder("hart_codebook_lookup");
  const codebookVC = g.input("codebook", "float32", ["V", "C"]);
  const idxBpp = g.input("idx", "int64", ["B", "p", "p"]);
  g.output(lookup(g, codebookVC, idxBpp), "h", "float32", ["B", "C", "p", "p"]);
  return g.build();
}

/** `a + b` of two latents (inputs `a`, `b`, output `sum`). */
export function buildSumGraph(): BuiltModel {
  const g = new GraphBuilder("hart_latent_sum");
  const a = g.input("a", "float32", ["B", "C", "H", "W"]);
  const b = g.input("b", "float32", ["B", "C", "H", "W"]);
  g.output(g.op("Add", [a, b]), "sum", "float32", ["B", "C", "H", "W"]);
  return g.build();
}
