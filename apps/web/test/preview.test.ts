import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { createRng, type Tensor, tensor } from "@hart/core";
import type { ImageTokenizer } from "@hart/pipeline";
import { HartTokenizer } from "@hart/tokenizer";
import { describe, expect, it } from "vitest";
import { imageLatent, LatentPreviewer } from "../src/server/preview";
import { REPO_ROOT } from "./helpers/server-process";

const GOLDEN = resolve(process.env.HART_GOLDEN_DIR ?? join(REPO_ROOT, "../shared/golden"));
const TOKENIZER = join(GOLDEN, "release/tokenizer");

/**
 * An image tokenizer whose decoder is an exactly affine map per latent pixel (each latent pixel becomes a
 * `patch × patch` block of one colour), around the real golden quantizer. The previewer's fit must recover it.
 */
function affineTokenizer(quantizer: ImageTokenizer["quantizer"], W: number[][], bias: number[], patch: number) {
  const decode = async (f: Tensor<"float32">): Promise<Tensor<"float32">> => {
    const [B, C, HW] = f.shape;
    const H = HW * patch;
    const out = new Float32Array(B * 3 * H * H);
    for (let b = 0; b < B; b++)
      for (let y = 0; y < H; y++)
        for (let x = 0; x < H; x++)
          for (let k = 0; k < 3; k++) {
            let v = bias[k];
            const p = Math.floor(y / patch) * HW + Math.floor(x / patch);
            for (let c = 0; c < C; c++) v += W[c][k] * f.data[(b * C + c) * HW * HW + p];
            out[((b * 3 + k) * H + y) * H + x] = v;
          }
    return tensor("float32", [B, 3, H, H], out);
  };
  const unused = () => {
    throw new Error("not used by the previewer");
  };
  return { quantizer, decode, encode: unused, indicesToImage: unused, reconstruct: unused } as ImageTokenizer;
}

describe.skipIf(!existsSync(TOKENIZER))("LatentPreviewer", () => {
  it("recovers an affine decoder and renders new latents like it", async () => {
    const { quantizer } = await HartTokenizer.fromPretrained(TOKENIZER);
    const C = quantizer.latentChannels;
    const rng = createRng(5);
    // Small weights keep the colours inside [-1, 1], so no clamping hides an error.
    const W = Array.from({ length: C }, () => Array.from({ length: 3 }, () => (rng.nextFloat64() - 0.5) * 0.1));
    const bias = [0.1, -0.2, 0.05];
    const tok = affineTokenizer(quantizer, W, bias, 4);
    const previewer = await LatentPreviewer.fit(tok, 3);
    expect(previewer.imageSize).toBe(quantizer.patchNums.at(-1)! * 4);

    const HW = quantizer.patchNums.at(-1)!;
    const latent = tensor("float32", [1, C, HW, HW], rng.normal(C * HW * HW) as Float32Array);
    const img = previewer.render(latent);
    expect([img.width, img.height]).toEqual([HW, HW]);
    let maxErr = 0;
    for (let p = 0; p < HW * HW; p++) {
      for (let k = 0; k < 3; k++) {
        let v = bias[k];
        for (let c = 0; c < C; c++) v += W[c][k] * latent.data[c * HW * HW + p];
        const expected = Math.max(0, Math.min(255, (v + 1) * 127.5));
        maxErr = Math.max(maxErr, Math.abs(img.data[p * 3 + k] - expected));
      }
    }
    // Rounding to bytes (0.5) plus the small ridge term.
    expect(maxErr).toBeLessThan(1.5);
  });

  it("takes image b's latent and adds the last scale's codes", () => {
    const B = 2;
    const C = 3;
    const HW = 4;
    const P = HW * HW;
    const f = tensor(
      "float32",
      [B, C, HW, HW],
      Float32Array.from({ length: B * C * P }, (_, i) => i * 0.5),
    );
    const h = tensor(
      "float32",
      [B, P, C],
      Float32Array.from({ length: B * P * C }, (_, i) => -i * 0.25),
    );
    const one = imageLatent(f, h, 1);
    expect(one.shape).toEqual([1, C, HW, HW]);
    for (let c = 0; c < C; c++)
      for (let p = 0; p < P; p++) {
        const expected = Math.fround(f.data[(1 * C + c) * P + p] + h.data[(1 * P + p) * C + c]);
        expect(one.data[c * P + p]).toBe(expected);
      }
    expect(Array.from(imageLatent(f).data)).toEqual(Array.from(f.data.subarray(0, C * P)));
  });
});
