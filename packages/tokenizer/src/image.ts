/**
 * The decoder's pixel convention is [−1, 1]; the official sampler hands out
 * images in [0, 1]. (For RGB8 / PNG, use `@hart/core`'s `tensorToImages` and
 * `writePng`, which apply the official byte rounding.)
 */
import { type Tensor, tensor } from "@hart/core";
import { checkFloatTensor } from "./check";

/** `[B, 3, H, W]` in [−1, 1] → `[B, 3, H, W]` in [0, 1], as `(img + 1) · 0.5` in float32 (bit-identical to the official sampler). */
export function imageToUnit(imagesB3HW: Tensor<"float32">): Tensor<"float32"> {
  checkFloatTensor(imagesB3HW, "imageToUnit(images)", [null, 3, null, null], "[B, 3, H, W]");
  const src = imagesB3HW.data;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = Math.fround(src[i] + 1) * 0.5;
  return tensor("float32", imagesB3HW.shape, out);
}
