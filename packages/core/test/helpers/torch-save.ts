/**
 * A tiny writer of `torch.save`-style zip checkpoints for tests (there is no
 * Python torch here). It emits the same pickle opcodes PyTorch does (protocol
 * 2, or a protocol-4 flavour with FRAME/STACK_GLOBAL/MEMOIZE) and a zip laid
 * out like PyTorch's: streamed records (flag 0x0808, local sizes 0) padded to
 * 64-byte alignment, optionally deflated or in zip64 form.
 */
import { deflateRawSync } from "node:zlib";
import { crc32 } from "../../src/checkpoint/zip";

/** Builds pickle bytes opcode by opcode. */
export class PickleWriter {
  private readonly out: number[] = [];
  private memo = 0;
  constructor(readonly proto: 2 | 4 = 2) {
    this.raw(0x80, proto);
  }
  raw(...bytes: number[]): this {
    this.out.push(...bytes);
    return this;
  }
  private u32(n: number): number[] {
    return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
  }
  str(s: string): this {
    const b = [...new TextEncoder().encode(s)];
    if (this.proto === 4 && b.length < 256) return this.raw(0x8c, b.length, ...b).put();
    return this.raw(0x58, ...this.u32(b.length), ...b).put();
  }
  int(n: number): this {
    if (this.proto === 4 && n > 0xffff) {
      // LONG1, little-endian two's complement
      const b: number[] = [];
      let v = BigInt(n);
      while (v > 0n || b.length === 0 || (b[b.length - 1] & 0x80) !== 0) {
        b.push(Number(v & 0xffn));
        v >>= 8n;
      }
      return this.raw(0x8a, b.length, ...b);
    }
    if (n >= 0 && n < 256) return this.raw(0x4b, n);
    if (n >= 0 && n < 65536) return this.raw(0x4d, n & 0xff, n >>> 8);
    return this.raw(0x4a, ...this.u32(n));
  }
  global(module: string, name: string): this {
    if (this.proto === 4) return this.str(module).str(name).raw(0x93).put();
    return this.raw(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`)).put();
  }
  /** Memoizes the top of the stack (BINPUT in protocol 2, MEMOIZE in 4) like pickle does. */
  put(): this {
    if (this.proto === 4) return this.raw(0x94);
    return this.memo < 256 ? this.raw(0x71, this.memo++) : this.raw(0x72, ...this.u32(this.memo++));
  }
  mark(): this {
    return this.raw(0x28);
  }
  tuple(): this {
    return this.raw(0x74).put();
  }
  ints(values: readonly number[]): this {
    this.mark();
    for (const v of values) this.int(v);
    return this.tuple();
  }
  emptyTuple(): this {
    return this.raw(0x29);
  }
  reduce(): this {
    return this.raw(0x52).put();
  }
  bytes(): Uint8Array {
    const body = [...this.out, 0x2e];
    if (this.proto !== 4) return new Uint8Array(body);
    // protocol 4: wrap everything after PROTO in one FRAME
    const frame = body.slice(2);
    const len = [...new Uint8Array(new BigUint64Array([BigInt(frame.length)]).buffer)];
    return new Uint8Array([...body.slice(0, 2), 0x95, ...len, ...frame]);
  }
}

/** One tensor of a hand-made checkpoint: a strided view of a named storage. */
export interface TensorSpec {
  key: string;
  storage: string;
  offset: number;
  shape: number[];
  stride: number[];
  /** Wrap in torch._utils._rebuild_parameter like an nn.Parameter. */
  parameter?: boolean;
}

/** One storage: its torch class (e.g. "FloatStorage"), element count and raw bytes. */
export interface StorageSpec {
  type: string;
  numel: number;
  bytes: Uint8Array;
}

/** The pickle of a state dict the way torch.save writes it (OrderedDict + _rebuild_tensor_v2 + BUILD of _metadata). */
export function stateDictPickle(
  tensors: readonly TensorSpec[],
  storages: ReadonlyMap<string, StorageSpec>,
  proto: 2 | 4 = 2,
): Uint8Array {
  const w = new PickleWriter(proto);
  w.global("collections", "OrderedDict").emptyTuple().reduce();
  w.mark();
  for (const t of tensors) {
    const s = storages.get(t.storage)!;
    w.str(t.key);
    if (t.parameter) w.global("torch._utils", "_rebuild_parameter").mark();
    w.global("torch._utils", "_rebuild_tensor_v2").mark();
    w.mark().str("storage").global("torch", s.type).str(t.storage).str("cpu").int(s.numel).tuple().raw(0x51);
    w.int(t.offset).ints(t.shape).ints(t.stride).raw(0x89);
    w.global("collections", "OrderedDict").emptyTuple().reduce();
    w.tuple().reduce();
    if (t.parameter) w.raw(0x89).global("collections", "OrderedDict").emptyTuple().reduce().tuple().reduce();
  }
  w.raw(0x75); // SETITEMS
  // state: {"_metadata": OrderedDict([("", {"version": 1})])}, applied by BUILD
  w.raw(0x7d).put().str("_metadata");
  w.global("collections", "OrderedDict").emptyTuple().reduce();
  w.str("").raw(0x7d).put().str("version").int(1).raw(0x73).raw(0x73);
  w.raw(0x73).raw(0x62);
  return w.bytes();
}

/** Options of {@link ZipWriter}. */
export interface ZipOptions {
  deflate?: boolean;
  zip64?: boolean;
}

/**
 * Writes a zip archive the way PyTorch's writer does (streamed records with
 * flag 0x0808 and a data descriptor, data 64-byte aligned by an "FB" extra
 * field) to a sink, so multi-GB archives can be written chunk by chunk.
 */
export class ZipWriter {
  private pos = 0;
  private readonly central: Uint8Array[] = [];
  private count = 0;
  constructor(
    private readonly sink: (bytes: Uint8Array) => void,
    private readonly options: ZipOptions = {},
  ) {}

  private push(b: Uint8Array): void {
    this.sink(b);
    this.pos += b.length;
  }

  /** Adds one record whose data arrives as `chunks`. */
  add(recordName: string, chunks: Iterable<Uint8Array>): void {
    const { deflate, zip64 } = this.options;
    const name = new TextEncoder().encode(recordName);
    const offset = this.pos;
    const method = deflate ? 8 : 0;
    const pad = (64 - ((offset + 30 + name.length + 4) % 64)) % 64;
    const local = new Uint8Array(30 + name.length + 4 + pad);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(6, 0x0808, true);
    lv.setUint16(8, method, true);
    lv.setUint16(26, name.length, true);
    lv.setUint16(28, 4 + pad, true);
    local.set(name, 30);
    lv.setUint16(30 + name.length, 0x4246, true); // "FB"
    lv.setUint16(32 + name.length, pad, true);
    this.push(local);
    let crc = 0;
    let size = 0;
    let stored = 0;
    const all: Uint8Array[] = [];
    for (const chunk of chunks) {
      crc = crc32(chunk, crc);
      size += chunk.length;
      if (deflate) all.push(chunk);
      else this.push(chunk);
    }
    if (deflate) {
      const body = new Uint8Array(deflateRawSync(Buffer.concat(all)));
      this.push(body);
      stored = body.length;
    } else stored = size;
    const desc = new Uint8Array(16);
    const dv = new DataView(desc.buffer);
    dv.setUint32(0, 0x08074b50, true);
    dv.setUint32(4, crc, true);
    dv.setUint32(8, stored, true);
    dv.setUint32(12, size, true);
    this.push(desc);
    const extra = zip64 ? 28 : 0;
    const c = new Uint8Array(46 + name.length + extra);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 45, true);
    cv.setUint16(6, 45, true);
    cv.setUint16(8, 0x0808, true);
    cv.setUint16(10, method, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, zip64 ? 0xffffffff : stored, true);
    cv.setUint32(24, zip64 ? 0xffffffff : size, true);
    cv.setUint16(28, name.length, true);
    cv.setUint16(30, extra, true);
    cv.setUint32(42, zip64 ? 0xffffffff : offset, true);
    c.set(name, 46);
    if (zip64) {
      const e = 46 + name.length;
      cv.setUint16(e, 0x0001, true);
      cv.setUint16(e + 2, 24, true);
      cv.setBigUint64(e + 4, BigInt(size), true);
      cv.setBigUint64(e + 12, BigInt(stored), true);
      cv.setBigUint64(e + 20, BigInt(offset), true);
    }
    this.central.push(c);
    this.count++;
  }

  /** Writes the central directory and end records. */
  finish(): void {
    const { zip64 } = this.options;
    const cdOffset = this.pos;
    for (const c of this.central) this.push(c);
    const cdSize = this.pos - cdOffset;
    if (zip64) {
      const z = new Uint8Array(56);
      const zv = new DataView(z.buffer);
      zv.setUint32(0, 0x06064b50, true);
      zv.setBigUint64(4, 44n, true);
      zv.setUint16(12, 45, true);
      zv.setUint16(14, 45, true);
      zv.setBigUint64(24, BigInt(this.count), true);
      zv.setBigUint64(32, BigInt(this.count), true);
      zv.setBigUint64(40, BigInt(cdSize), true);
      zv.setBigUint64(48, BigInt(cdOffset), true);
      const z64At = this.pos;
      this.push(z);
      const loc = new Uint8Array(20);
      const locv = new DataView(loc.buffer);
      locv.setUint32(0, 0x07064b50, true);
      locv.setBigUint64(8, BigInt(z64At), true);
      locv.setUint32(16, 1, true);
      this.push(loc);
    }
    const end = new Uint8Array(22);
    const ev = new DataView(end.buffer);
    ev.setUint32(0, 0x06054b50, true);
    ev.setUint16(8, zip64 ? 0xffff : this.count, true);
    ev.setUint16(10, zip64 ? 0xffff : this.count, true);
    ev.setUint32(12, zip64 ? 0xffffffff : cdSize, true);
    ev.setUint32(16, zip64 ? 0xffffffff : cdOffset, true);
    this.push(end);
  }
}

/** A complete torch.save-style checkpoint (`<stem>/data.pkl`, `<stem>/data/<key>`, `<stem>/version`). */
export function torchSaveBytes(
  stem: string,
  pickle: Uint8Array,
  storages: ReadonlyMap<string, StorageSpec>,
  options: ZipOptions = {},
): Uint8Array {
  const parts: Uint8Array[] = [];
  const zip = new ZipWriter((b) => parts.push(b.slice()), options);
  zip.add(`${stem}/data.pkl`, [pickle]);
  for (const [key, s] of storages) zip.add(`${stem}/data/${key}`, [s.bytes]);
  zip.add(`${stem}/version`, [new TextEncoder().encode("3\n")]);
  zip.finish();
  return new Uint8Array(Buffer.concat(parts));
}
