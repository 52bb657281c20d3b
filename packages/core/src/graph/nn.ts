/**
 * Small graph helpers for the layers every model package uses. They only
 * emit ops; weight layout conversions happen once at load time
 * (see {@link transpose2d}).
 */
import { HartError } from "../errors";
import { type Tensor, tensor } from "../tensor";
import { f, type GraphBuilder, type Value } from "./builder";

/** PyTorch `Linear.weight` is `[out, in]`; graphs want `[in, out]` for MatMul. Returns a new float32 tensor. */
export function transpose2d(w: Tensor): Tensor<"float32"> {
  if (w.shape.length !== 2 || w.dtype !== "float32") {
    throw new HartError("shape", `transpose2d: expected a 2-D float32 tensor, got ${w.dtype} [${w.shape}]`);
  }
  const [rows, cols] = w.shape;
  const src = w.data as Float32Array;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[base + c];
  }
  return tensor("float32", [cols, rows], out);
}

/** `x @ wIO (+ b)`, with `wIO` already `[in, out]`. */
export function linear(g: GraphBuilder, x: Value, wIO: Tensor, b?: Tensor): Value {
  const y = g.op("MatMul", [x, g.weight(wIO)]);
  return b ? g.op("Add", [y, g.weight(b)]) : y;
}

/**
 * `x @ wOIᵀ (+ b)` with the weight in PyTorch `Linear.weight` layout `[out, in]`, so no transposed
 * copy is made: `com.microsoft` FusedMatMul with `transB = 1` (runs on CPU, any rank of `x`).
 * `wOI` is a tensor or a value, e.g. from {@link GraphBuilder.fileWeight} — with
 * `disablePrepacking` the session then uses the checkpoint file's pages directly.
 */
export function linearOI(g: GraphBuilder, x: Value, wOI: Tensor | Value, b?: Tensor): Value {
  const w = typeof wOI === "string" ? wOI : g.weight(wOI);
  const y = g.op("FusedMatMul", [x, w], { transB: 1, alpha: f(1) }, { domain: "com.microsoft" });
  return b ? g.op("Add", [y, g.weight(b)]) : y;
}

/** `x · sigmoid(x)`. */
export function silu(g: GraphBuilder, x: Value): Value {
  return g.op("Mul", [x, g.op("Sigmoid", [x])]);
}

/** GELU with the tanh approximation (PyTorch `approximate="tanh"`). */
export function geluTanh(g: GraphBuilder, x: Value): Value {
  return g.op("Gelu", [x], { approximate: "tanh" });
}

/**
 * RMSNorm over the last axis: `x / sqrt(mean(x²) + eps) · w` (LlamaRMSNorm in
 * float32). Without `w` the scale is 1.
 */
export function rmsNorm(g: GraphBuilder, x: Value, eps: number, w?: Tensor): Value {
  const ms = g.op("ReduceMean", [g.op("Mul", [x, x]), g.ints([-1])], { keepdims: 1 });
  const inv = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [ms, g.scalar(eps)])])]);
  const y = g.op("Mul", [x, inv]);
  return w ? g.op("Mul", [y, g.weight(w)]) : y;
}

/** LayerNorm over the last axis (biased variance), with optional affine weight/bias. */
export function layerNorm(g: GraphBuilder, x: Value, eps: number, width: number, w?: Tensor, b?: Tensor): Value {
  const scale = w ?? tensor("float32", [width], new Float32Array(width).fill(1));
  const inputs = [x, g.weight(scale)];
  if (b) inputs.push(g.weight(b));
  return g.op("LayerNormalization", inputs, { axis: -1, epsilon: f(eps) });
}
