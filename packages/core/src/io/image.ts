/**
 * Conversions between float image tensors `[B, 3, H, W]` and RGB8 images,
 * with the exact float32 arithmetic of the official HART scripts, and image
 * grids like torchvision's `make_grid`.
 */
import { HartError } from "../errors";
import { type Tensor, tensor } from "../tensor";
import { checkRgbImage, type RgbImage } from "./png";

/** How a float in [0, 1] becomes a byte. */
export type ByteRounding = "truncate" | "round";

/** Options of {@link tensorToImages}. */
export interface TensorToImagesOptions {
  /**
   * The range of the tensor's values (default `[-1, 1]`, what the decoder returns). Values are
   * clamped to it and mapped to [0, 1] as `(x − low) / (high − low)` in float32 — for [-1, 1]
   * bit-identical to HART's `img.add_(1).mul_(0.5)` and to torchvision's `normalize=True,
   * value_range=(-1, 1)`.
   */
  valueRange?: readonly [number, number];
  /**
   * `"truncate"` (default): `uint8(x·255)`, what the official `sample.py` and `app.py` save
   * (`mul_(255)` then numpy `astype(np.uint8)`, which truncates; they compute in float16 under
   * autocast on GPU, hart in float32, so a byte can differ where x·255 is within float16
   * rounding of an integer). `"round"`: `uint8(clamp(x·255 + 0.5, 0, 255))`, what torchvision's
   * `save_image` does.
   */
  rounding?: ByteRounding;
}

const f32 = Math.fround;

/**
 * `[B, 3, H, W]` float32 tensor → B RGB8 images (HWC). Every step is rounded
 * to float32 as in PyTorch; NaN becomes 0.
 */
export function tensorToImages(imagesB3HW: Tensor<"float32">, options: TensorToImagesOptions = {}): RgbImage[] {
  const { shape } = imagesB3HW;
  if (imagesB3HW.dtype !== "float32" || shape.length !== 4 || shape[1] !== 3) {
    throw new HartError(
      "image",
      `tensorToImages: expected a float32 [B, 3, H, W] tensor, got ${imagesB3HW.dtype} [${shape.join(", ")}]`,
    );
  }
  const [low, high] = options.valueRange ?? [-1, 1];
  if (!(high > low)) throw new HartError("image", `tensorToImages: valueRange [${low}, ${high}] must have low < high`);
  const rounding = options.rounding ?? "truncate";
  if (rounding !== "truncate" && rounding !== "round") {
    throw new HartError("image", `tensorToImages: rounding must be "truncate" or "round", got ${String(rounding)}`);
  }
  const [B, , H, W] = shape;
  const span = f32(high - low);
  const lo = f32(low);
  const hi = f32(high);
  const unit = lo === 0 && hi === 1; // already in [0, 1]: (x − 0) / 1 is the identity
  const src = imagesB3HW.data;
  const plane = H * W;
  const out: RgbImage[] = [];
  for (let b = 0; b < B; b++) {
    const data = new Uint8Array(plane * 3);
    for (let c = 0; c < 3; c++) {
      const base = (b * 3 + c) * plane;
      for (let p = 0; p < plane; p++) {
        let x = src[base + p];
        if (Number.isNaN(x)) x = lo;
        x = x < lo ? lo : x > hi ? hi : x;
        if (!unit) x = f32(f32(x - lo) / span);
        let v = f32(x * 255);
        if (rounding === "round") v = f32(v + 0.5);
        data[p * 3 + c] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
      }
    }
    out.push({ width: W, height: H, data });
  }
  return out;
}

/** Options of {@link imagesToTensor}. */
export interface ImagesToTensorOptions {
  /**
   * The range of the result (default `[-1, 1]`, what the encoder takes). Bytes become
   * `x = b / 255` (torchvision `ToTensor`), then `(x − m) / s` with `m = −low/(high−low)`,
   * `s = 1/(high−low)` (torchvision `Normalize(m, s)`; for [-1, 1]: `Normalize(0.5, 0.5)`), in float32.
   */
  valueRange?: readonly [number, number];
}

/** B RGB8 images of one size → a `[B, 3, H, W]` float32 tensor (see {@link ImagesToTensorOptions}). */
export function imagesToTensor(images: readonly RgbImage[], options: ImagesToTensorOptions = {}): Tensor<"float32"> {
  if (images.length === 0) throw new HartError("image", "imagesToTensor: no images given");
  images.forEach((img, i) => {
    checkRgbImage(img, `imagesToTensor: image ${i}`);
  });
  const { width: W, height: H } = images[0];
  const odd = images.findIndex((img) => img.width !== W || img.height !== H);
  if (odd >= 0) {
    throw new HartError(
      "image",
      `imagesToTensor: image ${odd} is ${images[odd].width}×${images[odd].height}, image 0 is ${W}×${H}; all must match`,
    );
  }
  const [low, high] = options.valueRange ?? [-1, 1];
  if (!(high > low)) throw new HartError("image", `imagesToTensor: valueRange [${low}, ${high}] must have low < high`);
  const mean = f32(-low / (high - low));
  const std = f32(1 / (high - low));
  const identity = mean === 0 && std === 1;
  const plane = H * W;
  const out = new Float32Array(images.length * 3 * plane);
  images.forEach((img, b) => {
    for (let c = 0; c < 3; c++) {
      const base = (b * 3 + c) * plane;
      for (let p = 0; p < plane; p++) {
        const x = f32(img.data[p * 3 + c] / 255);
        out[base + p] = identity ? x : f32(f32(x - mean) / std);
      }
    }
  });
  return tensor("float32", [images.length, 3, H, W], out);
}

/** Options of {@link imageGrid}. */
export interface ImageGridOptions {
  /** Images per row (torchvision's `nrow`; default 8; the official `sample.py` uses 12). */
  cols?: number;
  /** Pixels between and around images (default 2, as `make_grid`/`save_image`). */
  padding?: number;
  /** Byte value of the padding (default 0, black). */
  padValue?: number;
}

/**
 * Lays images (all one size) out in a grid exactly like torchvision's
 * `make_grid`: `min(cols, n)` columns, `ceil(n / columns)` rows, every cell
 * `padding` pixels apart and from the border, unused cells left as padding.
 * Like `make_grid`, a single image is returned as is (no padding).
 */
export function imageGrid(images: readonly RgbImage[], options: ImageGridOptions = {}): RgbImage {
  const cols = options.cols ?? 8;
  const padding = options.padding ?? 2;
  const padValue = options.padValue ?? 0;
  if (images.length === 0) throw new HartError("image", "imageGrid: no images given");
  if (!Number.isInteger(cols) || cols < 1)
    throw new HartError("image", `imageGrid: cols must be a positive integer, got ${cols}`);
  if (!Number.isInteger(padding) || padding < 0) {
    throw new HartError("image", `imageGrid: padding must be a non-negative integer, got ${padding}`);
  }
  if (!Number.isInteger(padValue) || padValue < 0 || padValue > 255) {
    throw new HartError("image", `imageGrid: padValue must be a byte (0..255), got ${padValue}`);
  }
  images.forEach((img, i) => {
    checkRgbImage(img, `imageGrid: image ${i}`);
  });
  const { width: W, height: H } = images[0];
  const odd = images.findIndex((img) => img.width !== W || img.height !== H);
  if (odd >= 0) throw new HartError("image", `imageGrid: image ${odd} differs in size from image 0 (${W}×${H})`);
  if (images.length === 1) return { width: W, height: H, data: images[0].data.slice() };
  const xmaps = Math.min(cols, images.length);
  const ymaps = Math.ceil(images.length / xmaps);
  const cellW = W + padding;
  const cellH = H + padding;
  const width = xmaps * cellW + padding;
  const height = ymaps * cellH + padding;
  const data = new Uint8Array(width * height * 3).fill(padValue);
  images.forEach((img, k) => {
    const x0 = (k % xmaps) * cellW + padding;
    const y0 = Math.floor(k / xmaps) * cellH + padding;
    for (let y = 0; y < H; y++) {
      data.set(img.data.subarray(y * W * 3, (y + 1) * W * 3), ((y0 + y) * width + x0) * 3);
    }
  });
  return { width, height, data };
}
