import {
  float16BitsToFloat32,
  float32ToFloat16Bits,
  HartError,
  imageGrid,
  type RgbImage,
  type Tensor,
} from "@hart/core";

const f16 = (x: number) => float16BitsToFloat32(float32ToFloat16Bits(x));

/**
 * The release's grid image (`sample.py`: `make_grid(imgs, nrow=12)`, then `.to(torch.float16)`,
 * `× 255` in float16 and a truncating uint8 cast). The float16 step is a quirk of the grid path only
 * (separate images are converted in float32), kept so that bytes match the release; the layout is
 * core's `imageGrid` (torchvision's `make_grid`: 2 px of black padding).
 */
export function releaseGrid(imagesB3HW: Tensor<"float32">): RgbImage {
  const [B, C, H, W] = imagesB3HW.shape;
  if (imagesB3HW.shape.length !== 4 || C !== 3) {
    throw new HartError("shape", `releaseGrid: expected images [B, 3, H, W] in [0, 1], got [${imagesB3HW.shape}]`);
  }
  const src = imagesB3HW.data;
  const images: RgbImage[] = [];
  for (let b = 0; b < B; b++) {
    const data = new Uint8Array(H * W * 3);
    for (let c = 0; c < 3; c++) {
      const plane = (b * 3 + c) * H * W;
      for (let p = 0; p < H * W; p++) {
        const v = f16(f16(src[plane + p]) * 255);
        data[p * 3 + c] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
      }
    }
    images.push({ width: W, height: H, data });
  }
  return imageGrid(images, { cols: 12, padding: 2, padValue: 0 });
}
