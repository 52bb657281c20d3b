/**
 * Int8 linear layers for the CPU: weights stored as symmetric per-output-channel int8, activations quantized
 * per tensor to uint8 on the fly, one `com.microsoft` `DynamicQuantizeMatMul` (onnxruntime's `quantize_dynamic`
 * scheme). A quarter of the weight bytes and, measured on this project's 2-core AVX-512 VNNI machine, 2.5–5× the
 * float32 MatMul throughput. Not exact: each product carries the rounding of both quantizations.
 *
 * On x86 CPUs without VNNI, onnxruntime multiplies uint8 × int8 with `VPMADDUBSW`, whose 16-bit pair sums can
 * saturate (onnxruntime's quantization guide); signed weights are kept anyway, as there (uint8 weights ran at half
 * the speed here).
 */
import { HartError } from "../errors";
import { type Tensor, tensor, toFloat32 } from "../tensor";
import type { GraphBuilder, Value } from "./builder";

/** A linear layer's weight quantized for {@link linearInt8}. */
export interface Int8Linear {
  /** int8 weight, `[in, out]` (DynamicQuantizeMatMul's `B` layout). */
  readonly wIO: Tensor<"int8">;
  /** Per output channel scale `max|w| / 127`, `[out]`: the weight is `wIO · scaleO`. */
  readonly scaleO: Tensor<"float32">;
  /** Per output channel zero point, all 0 (symmetric), `[out]`. */
  readonly zeroO: Tensor<"int8">;
}

/**
 * Quantizes a PyTorch-layout `[out, in]` float weight to symmetric int8 per output channel: `q = round(w / s)` with
 * `s = max|w[o, :]| / 127` (1 for an all-zero row), so every dequantized weight is within `s / 2` of the original.
 */
export function quantizeLinearInt8(wOI: Tensor): Int8Linear {
  if (wOI.shape.length !== 2 || !["float32", "float16", "bfloat16"].includes(wOI.dtype)) {
    throw new HartError(
      "shape",
      `quantizeLinearInt8: expected a 2-D float weight [out, in], got ${wOI.dtype} [${wOI.shape}]`,
    );
  }
  const [O, I] = wOI.shape;
  const w = (wOI.dtype === "float32" ? wOI : toFloat32(wOI)).data as Float32Array;
  const q = new Int8Array(I * O);
  const scale = new Float32Array(O);
  for (let o = 0; o < O; o++) {
    const row = w.subarray(o * I, (o + 1) * I);
    let max = 0;
    for (let i = 0; i < I; i++) max = Math.max(max, Math.abs(row[i]));
    const s = max > 0 ? Math.fround(max / 127) : 1;
    scale[o] = s;
    for (let i = 0; i < I; i++) q[i * O + o] = Math.max(-127, Math.min(127, Math.round(row[i] / s)));
  }
  return {
    wIO: tensor("int8", [I, O], q),
    scaleO: tensor("float32", [O], scale),
    zeroO: tensor("int8", [O], new Int8Array(O)),
  };
}

/** `x @ dequantize(q) (+ b)` for float32 `x` `[..., in]`: one `com.microsoft` `DynamicQuantizeMatMul`. */
export function linearInt8(g: GraphBuilder, x: Value, q: Int8Linear, b?: Tensor): Value {
  const inputs = [x, g.weight(q.wIO), g.weight(q.scaleO), g.weight(q.zeroO)];
  if (b) inputs.push(g.weight(b.dtype === "float32" ? b : toFloat32(b)));
  return g.op("DynamicQuantizeMatMul", inputs, {}, { domain: "com.microsoft" });
}
