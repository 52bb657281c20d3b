/**
 * The per-block key/value cache, kept in TypeScript as `[N, P, C]` float32
 * (the layout onnxruntime's attention takes) inside one buffer per block
 * sized for the whole generation. Appending a scale moves each batch row to
 * its new offset in place (back to front) and copies the new tokens in, so the
 * cache never exists twice and the graphs get a zero-copy view.
 */
import { HartError, type Tensor, tensor } from "@hart/core";

/** What the scale loop needs of a KV cache: each block's past as graph inputs, and the block's update. */
export interface BlockKVCache {
  /** Cached tokens per row of `block`. */
  length(block: number): number;
  /** The cached keys and values of `block`, as the block graph takes them (no copy). */
  past(block: number): { k: Tensor; v: Tensor };
  /** Stores the block graph's cache outputs `k`/`v` for `block`. */
  update(block: number, k: Tensor, v: Tensor): void;
}

/** Keys and values of every block for one generation (the plain graphs' `[N, P, C]` layout). */
export class KVCache implements BlockKVCache {
  private readonly keys: Float32Array[];
  private readonly values: Float32Array[];
  private readonly lengths: number[];

  /**
   * @param blocks number of transformer blocks
   * @param rows N (the guidance batch, 2B)
   * @param width C
   * @param capacity the most tokens per row the generation will cache
   */
  constructor(
    blocks: number,
    readonly rows: number,
    readonly width: number,
    readonly capacity: number,
  ) {
    // zero-filled typed arrays are lazily backed by the OS: memory grows as the cache fills
    this.keys = Array.from({ length: blocks }, () => new Float32Array(rows * capacity * width));
    this.values = Array.from({ length: blocks }, () => new Float32Array(rows * capacity * width));
    this.lengths = new Array(blocks).fill(0);
  }

  /** Cached tokens per row of `block`. */
  length(block: number): number {
    return this.lengths[block];
  }

  /** The cached keys and values of `block` as `[N, P, C]` views (no copy). */
  past(block: number): { k: Tensor<"float32">; v: Tensor<"float32"> } {
    const n = this.rows * this.lengths[block] * this.width;
    const shape = [this.rows, this.lengths[block], this.width];
    return {
      k: tensor("float32", shape, this.keys[block].subarray(0, n)),
      v: tensor("float32", shape, this.values[block].subarray(0, n)),
    };
  }

  /** Appends `[N, l, C]` new keys and values to `block`. */
  append(block: number, k: Tensor<"float32">, v: Tensor<"float32">): void {
    const [N, l, C] = k.shape;
    if (N !== this.rows || C !== this.width || v.shape[1] !== l) {
      throw new HartError(
        "shape",
        `KV cache: new keys [${k.shape}] / values [${v.shape}] do not fit [${this.rows}, *, ${this.width}]`,
      );
    }
    const P = this.lengths[block];
    if (P + l > this.capacity)
      throw new HartError("internal", `KV cache: ${P + l} tokens exceed the planned ${this.capacity}`);
    for (const [buf, add] of [
      [this.keys[block], k.data],
      [this.values[block], v.data],
    ] as const) {
      for (let n = N - 1; n >= 0; n--) {
        const from = n * P * C;
        const to = n * (P + l) * C;
        if (n > 0 && P > 0) buf.copyWithin(to, from, from + P * C);
        buf.set(add.subarray(n * l * C, (n + 1) * l * C), to + P * C);
      }
    }
    this.lengths[block] = P + l;
  }

  /** {@link append}: the plain block graphs return this scale's new keys/values (float32). */
  update(block: number, k: Tensor, v: Tensor): void {
    if (k.dtype !== "float32" || v.dtype !== "float32") {
      throw new HartError("dtype", `KV cache: expected float32 keys/values, got ${k.dtype} / ${v.dtype}`);
    }
    this.append(block, k as Tensor<"float32">, v as Tensor<"float32">);
  }

  /** Bytes the cache holds when full. */
  get bytes(): number {
    return this.keys.length * 2 * this.rows * this.capacity * this.width * 4;
  }
}

/**
 * The fused block graphs' cache: `[N, H, P, hd]` per block, replaced by each storing run's `present` keys/values
 * (onnxruntime's `MultiHeadAttention` appends the new tokens itself). This is the layout a device-resident cache
 * keeps; with onnxruntime-node's CPU-only outputs the present tensors come back to JS every storing scale.
 */
export class PresentKVCache implements BlockKVCache {
  private readonly keys: Tensor[];
  private readonly values: Tensor[];

  /**
   * @param blocks number of transformer blocks
   * @param rows N (the guidance batch, 2B)
   * @param heads H
   * @param headDim hd
   * @param dtype element type of the cache (the block graphs' precision)
   */
  constructor(
    blocks: number,
    readonly rows: number,
    readonly heads: number,
    readonly headDim: number,
    readonly dtype: "float32" | "float16" = "float32",
  ) {
    const shape = [rows, heads, 0, headDim];
    const empty =
      dtype === "float32" ? tensor(dtype, shape, new Float32Array(0)) : tensor(dtype, shape, new Uint16Array(0));
    this.keys = new Array(blocks).fill(empty);
    this.values = new Array(blocks).fill(empty);
  }

  length(block: number): number {
    return this.keys[block].shape[2];
  }

  past(block: number): { k: Tensor; v: Tensor } {
    return { k: this.keys[block], v: this.values[block] };
  }

  /** Replaces `block`'s cache by the graph's present keys/values `[N, H, P + l, hd]`. */
  update(block: number, k: Tensor, v: Tensor): void {
    const T = k.shape[2];
    const P = this.length(block);
    const fits = (t: Tensor) =>
      t.dtype === this.dtype &&
      t.shape.length === 4 &&
      t.shape[0] === this.rows &&
      t.shape[1] === this.heads &&
      t.shape[3] === this.headDim;
    if (!fits(k) || !fits(v) || v.shape[2] !== T || T < P) {
      throw new HartError(
        "shape",
        `KV cache: present keys ${k.dtype} [${k.shape}] / values ${v.dtype} [${v.shape}] do not extend ${this.dtype} [${this.rows}, ${this.heads}, ${P}, ${this.headDim}]`,
      );
    }
    this.keys[block] = k;
    this.values[block] = v;
  }
}
