/**
 * PNG files ⇄ RGB8 images, via `pngjs`. Writes are atomic: the PNG goes to a
 * temporary file in the target folder that is renamed over the target only
 * once complete, so a crash or a failed encode never leaves a partial file.
 */
import { randomBytes } from "node:crypto";
import { open, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { PNG } from "pngjs";
import { HartError } from "../errors";

/** An 8-bit RGB image, row-major HWC: `data[(y * width + x) * 3 + c]`. */
export interface RgbImage {
  /** Width in pixels (columns). */
  readonly width: number;
  /** Height in pixels (rows). */
  readonly height: number;
  /** `width * height * 3` bytes. */
  readonly data: Uint8Array;
}

/** Throws a {@link HartError} naming `what` unless `img` is a well-formed {@link RgbImage}. */
export function checkRgbImage(img: RgbImage, what = "image"): void {
  const ok =
    img !== null &&
    typeof img === "object" &&
    Number.isInteger(img.width) &&
    Number.isInteger(img.height) &&
    img.width > 0 &&
    img.height > 0 &&
    img.data instanceof Uint8Array &&
    img.data.length === img.width * img.height * 3;
  if (!ok) {
    const got = img?.data ? `${img.width}×${img.height} with ${img.data.length} bytes` : String(img);
    throw new HartError(
      "image",
      `${what}: expected an RGB8 image {width, height, data: width·height·3 bytes}, got ${got}`,
    );
  }
}

/**
 * Decodes PNG bytes to RGB8. Any PNG colour type is accepted: grey is
 * replicated to RGB, palettes are expanded, alpha is dropped (like PIL's
 * `convert("RGB")`), 16-bit samples are scaled to 8 bits by pngjs.
 */
export function decodePng(bytes: Uint8Array, what = "PNG data"): RgbImage {
  let png: PNG;
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    throw new HartError("image", `${what}: not a readable PNG (${(err as Error).message})`, { cause: err });
  }
  const { width, height } = png;
  const rgba = png.data; // pngjs always hands back RGBA8
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < data.length; i += 4, j += 3) {
    data[j] = rgba[i];
    data[j + 1] = rgba[i + 1];
    data[j + 2] = rgba[i + 2];
  }
  return { width, height, data };
}

/** Reads a PNG file (or decodes PNG bytes) to RGB8; see {@link decodePng}. */
export async function readPng(fileOrBytes: string | Uint8Array): Promise<RgbImage> {
  if (typeof fileOrBytes !== "string") return decodePng(fileOrBytes);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(fileOrBytes);
  } catch (err) {
    throw new HartError("image", `${fileOrBytes}: cannot read the file (${(err as Error).message})`, { cause: err });
  }
  return decodePng(bytes, fileOrBytes);
}

/** Encodes an RGB8 image as PNG bytes (8-bit RGB, no alpha). */
export function encodePng(img: RgbImage): Uint8Array {
  checkRgbImage(img);
  const png = new PNG({ width: img.width, height: img.height, colorType: 2, inputColorType: 2, inputHasAlpha: false });
  png.data = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  const out = PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/**
 * Writes `img` to `file` as PNG, atomically: encoded first, written and
 * flushed to a temporary sibling file, then renamed over `file`. On any failure the
 * temporary file is removed and `file` is left as it was.
 */
export async function writePng(file: string, img: RgbImage): Promise<void> {
  checkRgbImage(img, file);
  const bytes = encodePng(img);
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    const fh = await open(tmp, "wx");
    try {
      await fh.writeFile(bytes);
      await fh.sync(); // the bytes are on disk before the rename makes them visible
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    throw new HartError("image", `${file}: cannot write the PNG (${(err as Error).message})`, { cause: err });
  }
}
