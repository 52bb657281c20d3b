/**
 * The per-block key/value cache, kept in TypeScript in the layout the block
 * graphs take — `[N, P, C]` float32 for the plain graphs, `[N, H, P, hd]`
 * (float32 or float16) for the fused ones — inside one buffer per block sized
 * for the whole generation. Appending a scale moves each row (a batch row, or
 * a batch row's head) to its new offset in place (back to front) and copies
 * the new tokens in, so the cache never exists twice and the graphs get a
 * zero-copy view. Inputs are not copied by onnxruntime-node; only the new
 * tokens come back as outputs.
 */
import { HartError, type Tensor, tensor } from "@hart/core";

/** Element types the cache holds. */
export type KVCacheDType = "float32" | "float16";

type Buffer = Float32Array | Uint16Array;

/** Keys and values of every block for one generation. */
export class KVCache {
  private readonly keys: Buffer[];
  private readonly values: Buffer[];
  private readonly lengths: number[];
  /** Leading dimensions before the token axis: `[N]` or `[N, H]`. */
  private readonly outer: readonly number[];
  private readonly rowCount: number;

  /**
   * The plain graphs' cache, `[N, P, C]` float32.
   * @param blocks number of transformer blocks
   * @param rows N (the guidance batch, 2B)
   * @param width C
   * @param capacity the most tokens per row the generation will cache
   * @param heads with a head count H, the fused graphs' layout `[N, H, P, width]` (width = hd)
   * @param dtype element type (default float32)
   */
  constructor(
    blocks: number,
    readonly rows: number,
    readonly width: number,
    readonly capacity: number,
    readonly heads?: number,
    readonly dtype: KVCacheDType = "float32",
  ) {
    this.outer = heads === undefined ? [rows] : [rows, heads];
    this.rowCount = rows * (heads ?? 1);
    const size = this.rowCount * capacity * width;
    // zero-filled typed arrays are lazily backed by the OS: memory grows as the cache fills
    const make = () => (dtype === "float16" ? new Uint16Array(size) : new Float32Array(size));
    this.keys = Array.from({ length: blocks }, make);
    this.values = Array.from({ length: blocks }, make);
    this.lengths = new Array(blocks).fill(0);
  }

  /** Cached tokens per row of `block`. */
  length(block: number): number {
    return this.lengths[block];
  }

  /** The cached keys and values of `block` as `[N, P, C]` (or `[N, H, P, hd]`) views (no copy). */
  past(block: number): { k: Tensor; v: Tensor } {
    const P = this.lengths[block];
    const n = this.rowCount * P * this.width;
    const shape = [...this.outer, P, this.width];
    const view = (b: Buffer) =>
      b instanceof Float32Array
        ? tensor("float32", shape, b.subarray(0, n))
        : tensor("float16", shape, b.subarray(0, n));
    return { k: view(this.keys[block]), v: view(this.values[block]) };
  }

  /** Appends new keys and values `[N, l, C]` (or `[N, H, l, hd]`) to `block`. */
  append(block: number, k: Tensor, v: Tensor): void {
    const d = this.outer.length;
    const l = k.shape[d];
    const fits = (t: Tensor) =>
      t.dtype === this.dtype &&
      t.shape.length === d + 2 &&
      this.outer.every((s, i) => t.shape[i] === s) &&
      t.shape[d] === l &&
      t.shape[d + 1] === this.width;
    if (!fits(k) || !fits(v)) {
      throw new HartError(
        "shape",
        `KV cache: new keys ${k.dtype} [${k.shape}] / values ${v.dtype} [${v.shape}] do not fit ${this.dtype} [${this.outer.join(", ")}, *, ${this.width}]`,
      );
    }
    const P = this.lengths[block];
    if (P + l > this.capacity)
      throw new HartError("internal", `KV cache: ${P + l} tokens exceed the planned ${this.capacity}`);
    const W = this.width;
    for (const [buf, add] of [
      [this.keys[block], k.data as Buffer],
      [this.values[block], v.data as Buffer],
    ] as const) {
      for (let r = this.rowCount - 1; r >= 0; r--) {
        const from = r * P * W;
        const to = r * (P + l) * W;
        if (r > 0 && P > 0) buf.copyWithin(to, from, from + P * W);
        buf.set(add.subarray(r * l * W, (r + 1) * l * W), to + P * W);
      }
    }
    this.lengths[block] = P + l;
  }

  /** Bytes the cache holds when full. */
  get bytes(): number {
    return this.keys.length * 2 * this.rowCount * this.capacity * this.width * (this.dtype === "float16" ? 2 : 4);
  }
}
