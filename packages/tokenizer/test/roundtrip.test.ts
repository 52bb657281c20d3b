import { join } from "node:path";
import { type Tensor, tensor } from "@hart/core";
import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { HartTokenizer } from "../src/index";
import { GOLDEN_DIR, goldenSets } from "./helpers";
import { relErr } from "./reference";

/** A real PNG file's bytes: a colour gradient with a disc, `size`×`size`. */
function makePng(size: number): Buffer {
  const png = new PNG({ width: size, height: size });
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const i = (y * size + x) * 4;
      const inDisc = (x - size / 2) ** 2 + (y - size / 3) ** 2 < (size / 4) ** 2;
      png.data[i] = Math.round((255 * x) / (size - 1));
      png.data[i + 1] = Math.round((255 * y) / (size - 1));
      png.data[i + 2] = inDisc ? 230 : 40;
      png.data[i + 3] = 255;
    }
  return PNG.sync.write(png);
}

/** PNG bytes → `[1, 3, H, W]` in [−1, 1] (torchvision ToTensor + Normalize(0.5, 0.5)). */
function pngToImage(bytes: Buffer): Tensor<"float32"> {
  const png = PNG.sync.read(bytes);
  const { width: W, height: H } = png;
  const out = new Float32Array(3 * H * W);
  for (let c = 0; c < 3; c++)
    for (let p = 0; p < H * W; p++)
      out[c * H * W + p] = Math.fround(Math.fround(png.data[p * 4 + c] / 255) - 0.5) / 0.5;
  return tensor("float32", [1, 3, H, W], out);
}

const set = goldenSets()[0];

describe.runIf(set)("round trip of a PNG through the golden tiny tokenizer", () => {
  it(`encode → decode (${set} set)`, async () => {
    const tok = await HartTokenizer.fromPretrained(join(GOLDEN_DIR, set, "tokenizer"));
    const image = pngToImage(makePng(tok.imageSize));
    const enc = await tok.encode(image);
    expect(enc.indices.map((t) => t.shape)).toEqual(tok.quantizer.patchNums.map((pn) => [1, pn * pn]));
    expect(enc.residualBCHW.shape).toEqual(enc.fBCHW.shape);

    const exact = await tok.decode(enc.fBCHW);
    const hybrid = await tok.reconstruct(image);
    const discrete = await tok.reconstruct(image, { discreteOnly: true });
    const fromIndices = await tok.indicesToImage(enc.indices);

    // discrete part + residual rebuilds f, so the hybrid reconstruction is decode(f) up to float32 rounding.
    const hybridErr = relErr(hybrid.data, exact.data);
    const discreteDiff = relErr(discrete.data, exact.data);
    console.log(
      `  hybrid vs decode(f): rel err ${hybridErr.toExponential(2)}; discrete-only vs decode(f): ${discreteDiff.toExponential(2)}`,
    );
    expect(hybridErr).toBeLessThan(1e-5);
    expect(discreteDiff).toBeGreaterThan(1e-2);
    expect(Array.from(fromIndices.data)).toEqual(Array.from(discrete.data));
    expect(hybrid.shape).toEqual(image.shape);
    expect(hybrid.data.every((v) => v >= -1 && v <= 1)).toBe(true);

    // The reconstruction is a valid image again.
    const out = new PNG({ width: tok.imageSize, height: tok.imageSize });
    const plane = tok.imageSize ** 2;
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++)
        out.data[p * 4 + c] = Math.trunc(Math.fround(((hybrid.data[c * plane + p] + 1) / 2) * 255));
      out.data[p * 4 + 3] = 255;
    }
    expect(PNG.sync.read(PNG.sync.write(out)).width).toBe(tok.imageSize);
    await tok.release();
  });
});
