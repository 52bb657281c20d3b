import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { HartError } from "../errors";
import { type DType, fromBytes, type Tensor } from "../tensor";
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
    const n = readSync(fd, out, done, Math.min(length - done, 1 << 30), position + done);
    if (n === 0) throw new HartError("checkpoint", `${file}: file is truncated (wanted ${length} bytes at ${position})`);
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
      throw new HartError("checkpoint", `${file}: corrupt safetensors header length ${headerLen} (file has ${size} bytes)`);
    }
    let header: Record<string, HeaderEntry | Record<string, string>>;
    try {
      header = JSON.parse(new TextDecoder().decode(readExact(fd, 8, headerLen, file)));
    } catch (err) {
      throw new HartError("checkpoint", `${file}: corrupt safetensors header (${(err as Error).message})`);
    }
    const dataStart = 8 + headerLen;
    const out: StateDict = new Map();
    for (const [key, raw] of Object.entries(header)) {
      if (key === "__metadata__" || (filter && !filter(key))) continue;
      const entry = raw as HeaderEntry;
      const dtype = SAFETENSORS_DTYPES[entry.dtype];
      if (!dtype) throw new HartError("checkpoint", `${file}: tensor "${key}" has unsupported dtype ${entry.dtype}`);
      const [begin, end] = entry.data_offsets;
      if (dataStart + end > size) {
        throw new HartError("checkpoint", `${file}: tensor "${key}" lies past the end of the file (truncated?)`);
      }
      out.set(key, fromBytes(dtype, entry.shape, readExact(fd, dataStart + begin, end - begin, file)));
    }
    return out;
  } finally {
    closeSync(fd);
  }
}
