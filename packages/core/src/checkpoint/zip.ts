import { fstatSync } from "node:fs";
import { inflateRawSync } from "node:zlib";
import { HartError } from "../errors";
import { readExact } from "./safetensors";

/** One member of a zip archive, located by its central-directory record. */
export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflated. */
  readonly method: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localHeaderOffset: number;
}

/** The central directory of a zip archive opened as a file descriptor. */
export interface ZipArchive {
  readonly fd: number;
  readonly file: string;
  readonly fileSize: number;
  readonly entries: ReadonlyMap<string, ZipEntry>;
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;

function u64(view: DataView, at: number): number {
  return Number(view.getBigUint64(at, true));
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Reads the central directory of a zip archive. Sizes and offsets come from
 * the central directory (torch.save streams its records, so local headers hold
 * size 0 and CRC 0); zip64 archives (> 4 GiB, > 65535 members) are handled.
 */
export function openZip(fd: number, file: string): ZipArchive {
  const fileSize = fstatSync(fd).size;
  const notZip = (why: string) =>
    new HartError("checkpoint", `${file}: not a valid zip archive (${why}); truncated or corrupt?`);
  if (fileSize < 22) throw notZip(`only ${fileSize} bytes`);
  // The end-of-central-directory record is the last 22 bytes plus a comment of up to 65535 bytes.
  const tailLen = Math.min(fileSize, 22 + 65535);
  const tail = readExact(fd, fileSize - tailLen, tailLen, file);
  const tv = view(tail);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === EOCD_SIG && i + 22 + tv.getUint16(i + 20, true) <= tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw notZip("no end-of-central-directory record");
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  const eocdPos = fileSize - tailLen + eocd;
  if (eocdPos >= 20) {
    const loc = view(readExact(fd, eocdPos - 20, 20, file));
    if (loc.getUint32(0, true) === ZIP64_LOCATOR_SIG) {
      const z64At = u64(loc, 8);
      if (z64At + 56 > fileSize) throw notZip("zip64 record out of range");
      const z64 = view(readExact(fd, z64At, 56, file));
      if (z64.getUint32(0, true) !== ZIP64_EOCD_SIG) throw notZip("bad zip64 end-of-central-directory record");
      count = u64(z64, 32);
      cdSize = u64(z64, 40);
      cdOffset = u64(z64, 48);
    }
  }
  if (cdOffset + cdSize > fileSize) throw notZip(`central directory at ${cdOffset}+${cdSize} lies past the end`);
  const cd = readExact(fd, cdOffset, cdSize, file);
  const cv = view(cd);
  const entries = new Map<string, ZipEntry>();
  const decoder = new TextDecoder();
  let p = 0;
  for (let n = 0; n < count; n++) {
    if (p + 46 > cdSize || cv.getUint32(p, true) !== CENTRAL_SIG) throw notZip(`bad central directory record ${n}`);
    const method = cv.getUint16(p + 10, true);
    const crc32 = cv.getUint32(p + 16, true);
    let compressedSize = cv.getUint32(p + 20, true);
    let size = cv.getUint32(p + 24, true);
    const nameLen = cv.getUint16(p + 28, true);
    const extraLen = cv.getUint16(p + 30, true);
    const commentLen = cv.getUint16(p + 32, true);
    let localHeaderOffset = cv.getUint32(p + 42, true);
    if (p + 46 + nameLen + extraLen > cdSize) throw notZip(`central directory record ${n} overruns`);
    const name = decoder.decode(cd.subarray(p + 46, p + 46 + nameLen));
    // zip64: fields saturated at 0xFFFFFFFF are stored, in this order, in extra field 0x0001.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = cv.getUint16(e, true);
      const len = cv.getUint16(e + 2, true);
      if (id === 0x0001) {
        let q = e + 4;
        const next = () => {
          const v = u64(cv, q);
          q += 8;
          return v;
        };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = next();
      }
      e += 4 + len;
    }
    entries.set(name, { name, method, crc32, compressedSize, size, localHeaderOffset });
    p = extraEnd + commentLen;
  }
  return { fd, file, fileSize, entries };
}

/** The absolute file offset where an entry's (possibly compressed) bytes start. */
export function zipDataOffset(zip: ZipArchive, entry: ZipEntry): number {
  if (entry.localHeaderOffset + 30 > zip.fileSize) {
    throw new HartError(
      "checkpoint",
      `${zip.file}: zip member "${entry.name}" lies past the end of the file (truncated?)`,
    );
  }
  const local = view(readExact(zip.fd, entry.localHeaderOffset, 30, zip.file));
  if (local.getUint32(0, true) !== LOCAL_SIG) {
    throw new HartError("checkpoint", `${zip.file}: zip member "${entry.name}" has a corrupt local header`);
  }
  const start = entry.localHeaderOffset + 30 + local.getUint16(26, true) + local.getUint16(28, true);
  if (start + entry.compressedSize > zip.fileSize) {
    throw new HartError(
      "checkpoint",
      `${zip.file}: zip member "${entry.name}" lies past the end of the file (truncated?)`,
    );
  }
  return start;
}

/**
 * Reads the first `length` bytes (default: all) of a member into a fresh
 * buffer. Stored members are read straight from the file (one copy, no zip
 * library in between); deflated ones are inflated.
 */
export function readZipEntry(zip: ZipArchive, entry: ZipEntry, length = entry.size): Uint8Array {
  if (length > entry.size) {
    throw new HartError(
      "checkpoint",
      `${zip.file}: zip member "${entry.name}" has ${entry.size} bytes, ${length} needed (truncated or corrupt?)`,
    );
  }
  const start = zipDataOffset(zip, entry);
  if (entry.method === 0) return readExact(zip.fd, start, length, zip.file);
  if (entry.method === 8) {
    const raw = inflateRawSync(readExact(zip.fd, start, entry.compressedSize, zip.file));
    if (raw.byteLength < length) {
      throw new HartError("checkpoint", `${zip.file}: zip member "${entry.name}" inflates to too few bytes (corrupt?)`);
    }
    // Copy into a fresh, aligned buffer (zlib's output may be a view into a shared pool).
    return new Uint8Array(raw.subarray(0, length));
  }
  throw new HartError(
    "checkpoint",
    `${zip.file}: zip member "${entry.name}" uses unsupported compression ${entry.method}`,
  );
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (zip polynomial) of `bytes`; pass the previous result as `crc` to continue over several chunks. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[i] = c >>> 0;
    }
  }
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
