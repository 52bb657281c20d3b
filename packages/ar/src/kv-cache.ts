/**
 * The per-block key/value caches: {@link KVCache}, kept in TypeScript in the layout the block
 * graphs take — `[N, P, C]` float32 for the plain graphs, `[N, H, P, hd]`
 * (float32 or float16) for the fused ones — inside one buffer per block sized
 * for the whole generation. Appending a scale moves each row (a batch row, or
 * a batch row's head) to its new offset in place (back to front) and copies
 * the new tokens in, so the cache never exists twice and the graphs get a
 * zero-copy view. Inputs are not copied by onnxruntime-node; only the new
 * tokens come back as outputs. {@link DeviceKVCache} keeps each block's whole
 * cache in device memory instead (WebGPU): the blocks return it updated
 * (`presentK`/`presentV`) and take it back next scale without a host copy.
 */
import { type AnyTensor, type DeviceTensor, HartError, isDeviceTensor, type Tensor, tensor } from "@hart/core";

/** What the scale loop needs from a cache, wherever it lives. */
export interface KVStore {
  /** The block outputs to request for a scale whose keys/values are cached. */
  readonly outputs: readonly string[];
  /** The cached keys/values of `block`, fed as `pastK`/`pastV`. */
  past(block: number): { k: AnyTensor; v: AnyTensor };
  /** Takes a cached scale's outputs of `block` ({@link KVStore.outputs}, on the host or the device). */
  store(block: number, host: Record<string, Tensor>, device: Record<string, DeviceTensor>): void;
  /** Appends keys/values computed on the host (`[N, l, C]` or `[N, H, l, hd]`) to `block`. */
  append(block: number, k: Tensor, v: Tensor): void;
  /** Frees device memory (idempotent); host caches have none. */
  release(): void;
}

/** Element types the cache holds. */
export type KVCacheDType = "float32" | "float16";

type Buffer = Float32Array | Uint16Array;

/** Keys and values of every block for one generation, in host memory. */
export class KVCache implements KVStore {
  readonly outputs = ["k", "v"] as const;
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

  /** Appends the block's new keys/values (`k`/`v` outputs). */
  store(block: number, host: Record<string, Tensor>): void {
    this.append(block, host.k, host.v);
  }

  /** Nothing to free: the buffers are ordinary typed arrays. */
  release(): void {}

  /** Bytes the cache holds when full. */
  get bytes(): number {
    return this.keys.length * 2 * this.rowCount * this.capacity * this.width * (this.dtype === "float16" ? 2 : 4);
  }
}

/**
 * Keys and values of every block kept in device memory (WebGPU `gpu-buffer` outputs): each cached scale's block
 * returns its whole updated cache (`presentK`/`presentV`, `[N, T, C]` or `[N, H, T, hd]`), which replaces (and
 * frees) the previous one and is fed back as `pastK`/`pastV` without leaving the device. Host keys/values (the
 * first scale's, computed row-collapsed) start it.
 */
export class DeviceKVCache implements KVStore {
  readonly outputs = ["presentK", "presentV"] as const;
  private readonly entries: { k: AnyTensor; v: AnyTensor }[];

  /**
   * @param blocks number of transformer blocks
   * @param outer the leading dimensions before the token axis: `[N]` or `[N, H]`
   * @param width C (or hd with heads)
   * @param dtype element type
   */
  constructor(
    blocks: number,
    private readonly outer: readonly number[],
    private readonly width: number,
    private readonly dtype: KVCacheDType = "float32",
  ) {
    const empty = () =>
      dtype === "float16"
        ? tensor("float16", [...outer, 0, width], new Uint16Array(0))
        : tensor("float32", [...outer, 0, width], new Float32Array(0));
    this.entries = Array.from({ length: blocks }, () => ({ k: empty(), v: empty() }));
  }

  past(block: number): { k: AnyTensor; v: AnyTensor } {
    return this.entries[block];
  }

  store(block: number, host: Record<string, Tensor>, device: Record<string, DeviceTensor>): void {
    const k = device.presentK ?? host.presentK;
    const v = device.presentV ?? host.presentV;
    if (!k || !v) throw new HartError("internal", `KV cache: block ${block} returned no presentK/presentV`);
    this.replace(block, k, v);
  }

  append(block: number, k: Tensor, v: Tensor): void {
    const old = this.entries[block];
    if (isDeviceTensor(old.k) || isDeviceTensor(old.v) || old.k.shape[this.outer.length] !== 0) {
      throw new HartError("internal", `KV cache: host keys/values can only start block ${block}'s device cache`);
    }
    const fits = (t: Tensor) =>
      t.dtype === this.dtype &&
      t.shape.length === this.outer.length + 2 &&
      this.outer.every((s, i) => t.shape[i] === s) &&
      t.shape[this.outer.length + 1] === this.width;
    if (!fits(k) || !fits(v)) {
      throw new HartError(
        "shape",
        `KV cache: keys ${k.dtype} [${k.shape}] / values ${v.dtype} [${v.shape}] do not fit ${this.dtype} [${this.outer.join(", ")}, *, ${this.width}]`,
      );
    }
    this.replace(block, k, v);
  }

  private replace(block: number, k: AnyTensor, v: AnyTensor): void {
    const old = this.entries[block];
    this.entries[block] = { k, v };
    for (const t of [old.k, old.v]) if (isDeviceTensor(t) && t !== k && t !== v) t.dispose();
  }

  release(): void {
    for (const e of this.entries) for (const t of [e.k, e.v]) if (isDeviceTensor(t)) t.dispose();
  }
}
