import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { HartError } from "../errors";
import { DTYPE_BYTES, type DType, fromBytes, numel, type Tensor, tensorBytes } from "../tensor";
import type { StateDict } from "./state-dict";

/** safetensors dtype names → hart dtypes. */
export const SAFETENSORS_DTYPES: Readonly<Record<string, DType>> = {
  F32: "float32",
  F64: "float64",
  F16: "float16",
  BF16: "bfloat16",
  I64: "int64",
  I32: "int32",
  I8: "int8",
  U8: "uint8",
  BOOL: "bool",
};

const DTYPE_NAMES = Object.fromEntries(Object.entries(SAFETENSORS_DTYPES).map(([k, v]) => [v, k])) as Record<
  DType,
  string
>;

/** Largest single read/write; Node's fs calls are limited to ~2 GiB each. */
const CHUNK = 1 << 30;

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Reads exactly `length` bytes at `position` into a fresh buffer (reads > 2 GiB are split). */
export function readExact(fd: number, position: number, length: number, file: string): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, out, done, Math.min(length - done, CHUNK), position + done);
    if (n === 0)
      throw new HartError("checkpoint", `${file}: file is truncated (wanted ${length} bytes at ${position})`);
    done += n;
  }
  return out;
}

/**
 * Reads a `.safetensors` file. Each tensor gets its own buffer, read straight
 * from disk, so memory use equals the checkpoint size and files larger than
 * 2 GiB work. `filter` skips keys that are not needed (never read).
 */
export function readSafetensors(file: string, filter?: (key: string) => boolean): StateDict {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw new HartError("checkpoint", `${file}: not a safetensors file (only ${size} bytes)`);
    const headerLen = Number(new DataView(readExact(fd, 0, 8, file).buffer).getBigUint64(0, true));
    if (headerLen > size - 8 || headerLen > 100_000_000) {
      throw new HartError(
        "checkpoint",
        `${file}: corrupt safetensors header length ${headerLen} (file has ${size} bytes); truncated or not safetensors?`,
      );
    }
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(new TextDecoder().decode(readExact(fd, 8, headerLen, file)));
    } catch (err) {
      throw new HartError("checkpoint", `${file}: corrupt safetensors header (${(err as Error).message})`);
    }
    if (typeof header !== "object" || header === null || Array.isArray(header)) {
      throw new HartError("checkpoint", `${file}: corrupt safetensors header (not a JSON object)`);
    }
    const dataStart = 8 + headerLen;
    const dataSize = size - dataStart;
    const out: StateDict = new Map();
    for (const [key, raw] of Object.entries(header)) {
      if (key === "__metadata__" || (filter && !filter(key))) continue;
      const entry = raw as HeaderEntry;
      const bad = (why: string) => new HartError("checkpoint", `${file}: tensor "${key}" ${why}`);
      const dtype = SAFETENSORS_DTYPES[entry?.dtype];
      if (!dtype) throw bad(`has unsupported dtype ${entry?.dtype}`);
      if (!Array.isArray(entry.shape) || !entry.shape.every((d) => Number.isInteger(d) && d >= 0)) {
        throw bad(`has a malformed shape ${JSON.stringify(entry.shape)}`);
      }
      const [begin, end] = Array.isArray(entry.data_offsets) ? entry.data_offsets : [Number.NaN, Number.NaN];
      if (!Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end < begin) {
        throw bad(`has malformed data_offsets ${JSON.stringify(entry.data_offsets)}`);
      }
      if (end - begin !== numel(entry.shape) * DTYPE_BYTES[dtype]) {
        throw bad(
          `has ${end - begin} bytes but shape [${entry.shape}] of ${dtype} needs ${numel(entry.shape) * DTYPE_BYTES[dtype]}`,
        );
      }
      if (end > dataSize) throw bad("lies past the end of the file (truncated?)");
      out.set(key, fromBytes(dtype, entry.shape, readExact(fd, dataStart + begin, end - begin, file)));
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.byteLength; ) {
    done += writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, CHUNK));
  }
}

/**
 * Writes a state dict as a `.safetensors` file: the JSON header is space
 * padded to a multiple of 8 bytes and tensors are laid out by element size
 * (largest first) then by name, so every tensor is aligned to its element
 * size. `metadata` goes to `__metadata__` (string values only, as the format
 * requires). Data is written in chunks (files > 2 GiB work) to a temporary
 * file that is renamed over `file` at the end, so readers never see a
 * half-written checkpoint.
 */
export function writeSafetensors(file: string, stateDict: StateDict, metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new HartError("argument", `writeSafetensors(${file}): metadata "${k}" must be a string, got ${typeof v}`);
      }
    }
    header.__metadata__ = metadata;
  }
  const keys = [...stateDict.keys()].sort((a, b) => {
    const sa = DTYPE_BYTES[stateDict.get(a)!.dtype];
    const sb = DTYPE_BYTES[stateDict.get(b)!.dtype];
    return sb - sa || (a < b ? -1 : a > b ? 1 : 0);
  });
  const tensors: Tensor[] = [];
  let offset = 0;
  for (const key of keys) {
    if (key === "__metadata__")
      throw new HartError("argument", `writeSafetensors(${file}): "__metadata__" is reserved`);
    const t = stateDict.get(key)!;
    const length = numel(t.shape) * DTYPE_BYTES[t.dtype];
    if (!DTYPE_NAMES[t.dtype] || t.data.byteLength !== length) {
      throw new HartError("argument", `writeSafetensors(${file}): tensor "${key}" is not a valid ${t.dtype} tensor`);
    }
    header[key] = { dtype: DTYPE_NAMES[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + length] };
    tensors.push(t);
    offset += length;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);

  const tmp = `${file}.tmp-${process.pid}-${Date.now().toString(36)}`;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, "w");
    writeAll(fd, prefix);
    writeAll(fd, headerBytes);
    for (const t of tensors) writeAll(fd, tensorBytes(t));
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    if (err instanceof HartError) throw err;
    throw new HartError("io", `writeSafetensors: cannot write ${file} (${(err as Error).message})`, { cause: err });
  }
}
