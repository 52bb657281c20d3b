/**
 * PyTorch's 2-D resizes as separable matrices. A resize `[.., inH, inW] → [.., outH, outW]`
 * is `R_h · X · R_wᵀ` with one `[out, in]` matrix per axis, which graphs apply with two
 * MatMuls. The matrices are built in float64 (exactly PyTorch's index and weight
 * formulas) and rounded to float32 once.
 */
import { HartError, type Tensor, tensor } from "@hart/core";

/** PyTorch's bicubic convolution constant (`A = -0.75`). */
const CUBIC_A = -0.75;

function checkSizes(kind: string, inSize: number, outSize: number): void {
  if (!Number.isInteger(inSize) || !Number.isInteger(outSize) || inSize <= 0 || outSize <= 0) {
    throw new HartError("shape", `${kind} resize: sizes must be positive integers, got ${inSize} → ${outSize}`);
  }
}

/**
 * `[out, in]` matrix of `F.interpolate(mode="bicubic", align_corners=False)` along one axis:
 * source `(dst + 0.5)·in/out − 0.5`, cubic convolution with A = −0.75 over the 4 neighbours,
 * neighbour indices clamped to the border.
 */
export function bicubicMatrix(inSize: number, outSize: number): Float64Array {
  checkSizes("bicubic", inSize, outSize);
  const m = new Float64Array(outSize * inSize);
  const scale = inSize / outSize;
  const A = CUBIC_A;
  // cubic_convolution1 for |x| ≤ 1, cubic_convolution2 for 1 < |x| < 2 (PyTorch UpSample.h).
  const near = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1;
  const far = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  for (let o = 0; o < outSize; o++) {
    const src = scale * (o + 0.5) - 0.5;
    const i0 = Math.floor(src);
    const t = src - i0;
    const weights = [far(t + 1), near(t), near(1 - t), far(2 - t)];
    for (let k = 0; k < 4; k++) {
      const i = Math.min(Math.max(i0 - 1 + k, 0), inSize - 1);
      m[o * inSize + i] += weights[k];
    }
  }
  return m;
}

/**
 * `[out, in]` matrix of `F.interpolate(mode="area")` (adaptive average pooling) along one axis:
 * output `o` averages inputs `[floor(o·in/out), ceil((o+1)·in/out))` (windows may overlap and differ in size).
 */
export function areaMatrix(inSize: number, outSize: number): Float64Array {
  checkSizes("area", inSize, outSize);
  const m = new Float64Array(outSize * inSize);
  for (let o = 0; o < outSize; o++) {
    const start = Math.floor((o * inSize) / outSize);
    const end = Math.floor(((o + 1) * inSize + outSize - 1) / outSize);
    for (let i = start; i < end; i++) m[o * inSize + i] = 1 / (end - start);
  }
  return m;
}

/** Transposes a row-major `[rows, cols]` float64 matrix. */
function transposed(m: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c];
  return t;
}

/** The two float32 factors a graph multiplies by: `left` `[out, in]` (rows) and `rightT` `[in, out]` (columns). */
export interface ResizeFactors {
  /** Applied as `MatMul(left, X)` on the height axis. */
  left: Tensor<"float32">;
  /** Applied as `MatMul(X, rightT)` on the width axis. */
  rightT: Tensor<"float32">;
}

const cache = new Map<string, ResizeFactors>();

/** Float32 factors of a square resize `in×in → out×out` (`mode` bicubic or area), cached per size pair. */
export function resizeFactors(mode: "bicubic" | "area", inSize: number, outSize: number): ResizeFactors {
  const key = `${mode}:${inSize}:${outSize}`;
  let factors = cache.get(key);
  if (!factors) {
    const m = mode === "bicubic" ? bicubicMatrix(inSize, outSize) : areaMatrix(inSize, outSize);
    factors = {
      left: tensor("float32", [outSize, inSize], Float32Array.from(m)),
      rightT: tensor("float32", [inSize, outSize], Float32Array.from(transposed(m, outSize, inSize))),
    };
    cache.set(key, factors);
  }
  return factors;
}
