import { HartError } from "./errors";

/** Element types hart tensors can hold (the names follow onnxruntime's). */
export type DType = "float32" | "float64" | "float16" | "bfloat16" | "int64" | "int32" | "int8" | "uint8" | "bool";

/** The typed array behind each {@link DType}. float16/bfloat16 are raw 16-bit patterns; bool is 0/1 bytes. */
export interface DataTypeMap {
  /** IEEE 754 single precision. */
  float32: Float32Array;
  /** IEEE 754 double precision. */
  float64: Float64Array;
  /** IEEE 754 half precision, stored as raw 16-bit patterns. */
  float16: Uint16Array;
  /** bfloat16 (the upper 16 bits of a float32), stored as raw 16-bit patterns. */
  bfloat16: Uint16Array;
  /** Signed 64-bit integers, as bigints. */
  int64: BigInt64Array;
  /** Signed 32-bit integers. */
  int32: Int32Array;
  /** Signed 8-bit integers. */
  int8: Int8Array;
  /** Unsigned 8-bit integers. */
  uint8: Uint8Array;
  /** Booleans, one byte each (0 = false, 1 = true). */
  bool: Uint8Array;
}

/** Any typed array a {@link Tensor} can hold. */
export type TypedArray = DataTypeMap[DType];

/**
 * A minimal tensor: an element type, a row-major shape and a typed array of
 * exactly `product(shape)` elements. It does no arithmetic (numerics belong in
 * graphs); it is the currency between checkpoints, graphs and callers.
 */
export interface Tensor<D extends DType = DType> {
  /** Element type of {@link data}. */
  readonly dtype: D;
  /** Dimensions, outermost first; {@link data} holds `product(shape)` elements in row-major order. */
  readonly shape: readonly number[];
  /** The elements, row-major, in the typed array of {@link dtype} (see {@link DataTypeMap}). */
  readonly data: DataTypeMap[D];
}

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int8: 1,
  uint8: 1,
  bool: 1,
};

const CTORS = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
} as const;

/** Number of elements of a shape (1 for a scalar `[]`). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Creates a tensor, checking that `data` has the element count the shape implies. */
export function tensor<D extends DType>(dtype: D, shape: readonly number[], data: DataTypeMap[D]): Tensor<D> {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new HartError("shape", `tensor: bad dimension ${d} in shape [${shape}]`);
  }
  const n = numel(shape);
  if (data.length !== n) {
    throw new HartError("shape", `tensor: shape [${shape}] needs ${n} elements, got ${data.length}`);
  }
  if (!(data instanceof CTORS[dtype])) {
    throw new HartError("dtype", `tensor: dtype ${dtype} needs a ${CTORS[dtype].name}, got ${data.constructor.name}`);
  }
  return { dtype, shape: [...shape], data };
}

/** A new zero-filled tensor. */
export function zeros<D extends DType>(dtype: D, shape: readonly number[]): Tensor<D> {
  return tensor(dtype, shape, new CTORS[dtype](numel(shape)) as DataTypeMap[D]);
}

/** A view of `bytes` (copied only if misaligned) as a tensor of `dtype`. */
export function fromBytes<D extends DType>(dtype: D, shape: readonly number[], bytes: Uint8Array): Tensor<D> {
  const size = DTYPE_BYTES[dtype];
  const n = numel(shape);
  if (bytes.byteLength !== n * size) {
    throw new HartError(
      "shape",
      `fromBytes: shape [${shape}] of ${dtype} needs ${n * size} bytes, got ${bytes.byteLength}`,
    );
  }
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const Ctor = CTORS[dtype] as unknown as new (b: ArrayBufferLike, o: number, l: number) => DataTypeMap[D];
  return tensor(dtype, shape, new Ctor(aligned.buffer, aligned.byteOffset, n));
}

/** The raw little-endian bytes of a tensor (a view, no copy). */
export function tensorBytes(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** Same data, new shape (element counts must agree; `-1` infers one dimension). */
export function reshape<D extends DType>(t: Tensor<D>, shape: readonly number[]): Tensor<D> {
  const known = shape.filter((d) => d !== -1);
  const resolved = shape.includes(-1) ? shape.map((d) => (d === -1 ? numel(t.shape) / numel(known) : d)) : shape;
  return tensor(t.dtype, resolved, t.data);
}

// One shared float32 slot and its bits, so a conversion allocates nothing (it runs once per weight element).
const F32_SCRATCH = new Float32Array(1);
const U32_SCRATCH = new Uint32Array(F32_SCRATCH.buffer);

/** float32 → IEEE half bits (round to nearest even). */
export function float32ToFloat16Bits(x: number): number {
  F32_SCRATCH[0] = x;
  return halfFromFloat32Bits(U32_SCRATCH[0]);
}

/** The IEEE half bits of the float32 whose bits are `u` (round to nearest even). */
function halfFromFloat32Bits(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  e = half >>> 10;
  return sign | half;
}

/** IEEE half bits → number. */
export function float16BitsToFloat32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Converts a floating-point tensor (float16, bfloat16, float64 or float32) to float32. */
export function toFloat32(t: Tensor): Tensor<"float32"> {
  switch (t.dtype) {
    case "float32":
      return t as Tensor<"float32">;
    case "float64":
      return tensor("float32", t.shape, Float32Array.from(t.data as Float64Array));
    case "float16": {
      const src = t.data as Uint16Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = float16BitsToFloat32(src[i]);
      return tensor("float32", t.shape, out);
    }
    case "bfloat16": {
      const src = t.data as Uint16Array;
      const out = new Float32Array(src.length);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
      return tensor("float32", t.shape, out);
    }
    default:
      throw new HartError("dtype", `toFloat32: cannot convert a ${t.dtype} tensor to float32`);
  }
}

/** Converts a float tensor to float16 (round to nearest even). */
export function toFloat16(t: Tensor): Tensor<"float16"> {
  if (t.dtype === "float16") return t as Tensor<"float16">;
  const src = toFloat32(t).data;
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = halfFromFloat32Bits(bits[i]);
  return tensor("float16", t.shape, out);
}

/** Converts a float tensor to bfloat16 (round to nearest even, NaN kept). */
export function toBFloat16(t: Tensor): Tensor<"bfloat16"> {
  if (t.dtype === "bfloat16") return t as Tensor<"bfloat16">;
  const src = toFloat32(t).data;
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const u = bits[i];
    out[i] = Number.isNaN(src[i]) ? 0x7fc0 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
  return tensor("bfloat16", t.shape, out);
}
