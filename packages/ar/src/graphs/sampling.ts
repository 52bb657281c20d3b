/**
 * Graphs behind the default sampler: top-k / top-p filtering with the
 * reference's semantics and the softmax, and the Gumbel-softmax soft code
 * embedding of `more_smooth`. The transcendental functions run in
 * onnxruntime, so the TypeScript side of sampling is plain additions and
 * comparisons and gives the same indices on every JavaScript runtime.
 */
import { type BuiltModel, GraphBuilder, type Tensor, tensor } from "@hart/core";

/**
 * Filters guided logits like `sample_with_top_k_top_p_` and returns the
 * sampling distribution.
 *
 * Inputs: `logits` `[B, l, V]`, `k` int64 `[1]` (1 ≤ k ≤ V); with `topP`,
 * `keep` `[1]` = f32(1 − top_p). Outputs: `filtered` (−inf where removed) and
 * `probs` = softmax(filtered).
 *
 * Top-k removes logits below the k-th largest value (ties at the threshold
 * stay). Top-p sorts ascending, removes entries whose cumulative probability
 * is ≤ 1 − top_p, always keeping the largest.
 */
export function buildFilterGraph(vocab: number, topP: boolean): BuiltModel {
  const g = new GraphBuilder(topP ? "hart-filter-topk-topp" : "hart-filter-topk");
  const logits = g.input("logits", "float32", ["B", "l", vocab]);
  const k = g.input("k", "int64", [1]);
  const negInf = g.scalar(Number.NEGATIVE_INFINITY);
  const [topVals] = g.opMulti("TopK", [logits, k], { axis: -1, largest: 1, sorted: 1 }, { outputs: 2 });
  const kth = g.op("ReduceMin", [topVals, g.ints([-1])], { keepdims: 1 });
  let filtered = g.op("Where", [g.op("Less", [logits, kth]), negInf, logits]);
  if (topP) {
    const keep = g.input("keep", "float32", [1]);
    const [sortedVals, sortedIdx] = g.opMulti(
      "TopK",
      [filtered, g.ints([vocab])],
      { axis: -1, largest: 0, sorted: 1 },
      { outputs: 2 },
    );
    const cum = g.op("CumSum", [g.op("Softmax", [sortedVals], { axis: -1 }), g.scalar(2, "int64")]);
    // the largest logit (last in ascending order) always stays
    const notLast = new Uint8Array(vocab).fill(1);
    notLast[vocab - 1] = 0;
    const removeSorted = g.op("And", [g.op("LessOrEqual", [cum, keep]), g.weight(tensor("bool", [vocab], notLast))]);
    const removeF = g.op(
      "ScatterElements",
      [g.op("ConstantOfShape", [g.op("Shape", [logits])]), sortedIdx, g.op("Cast", [removeSorted], { to: 1 })],
      { axis: -1 },
    );
    filtered = g.op("Where", [g.op("Cast", [removeF], { to: 9 }), negInf, filtered]);
  }
  g.output(filtered, "filtered", "float32", ["B", "l", vocab]);
  g.output(g.op("Softmax", [filtered], { axis: -1 }), "probs", "float32", ["B", "l", vocab]);
  return g.build();
}

/**
 * `more_smooth`: `softmax((filtered·f32(1+ratio) + g) / f32(tau)) @ codebook`.
 *
 * Inputs: `filtered` `[B, l, V]`, `gumbel` `[B, l, V]`, `scale` `[1]`, `tau`
 * `[1]`. Output: `h` `[B, l, Cvae]`.
 */
export function buildGumbelGraph(codebook: Tensor<"float32">): BuiltModel {
  const [V, Cvae] = codebook.shape;
  const g = new GraphBuilder("hart-gumbel-smooth");
  const filtered = g.input("filtered", "float32", ["B", "l", V]);
  const gumbel = g.input("gumbel", "float32", ["B", "l", V]);
  const scale = g.input("scale", "float32", [1]);
  const tau = g.input("tau", "float32", [1]);
  const z = g.op("Div", [g.op("Add", [g.op("Mul", [filtered, scale]), gumbel]), tau]);
  const h = g.op("MatMul", [g.op("Softmax", [z], { axis: -1 }), g.weight(codebook)]);
  g.output(h, "h", "float32", ["B", "l", Cvae]);
  return g.build();
}
