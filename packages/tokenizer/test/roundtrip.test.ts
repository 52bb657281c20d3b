import { join } from "node:path";
import { decodePng, encodePng, imagesToTensor, tensorToImages } from "@hart/core";
import { describe, expect, it } from "vitest";
import { HartTokenizer, imageToUnit } from "../src/index";
import { GOLDEN_DIR, goldenSets } from "./helpers";
import { relErr } from "./reference";

/** A real PNG file's bytes: a colour gradient with a disc, `size`×`size`. */
function makePng(size: number): Uint8Array {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const i = (y * size + x) * 3;
      const inDisc = (x - size / 2) ** 2 + (y - size / 3) ** 2 < (size / 4) ** 2;
      data[i] = Math.round((255 * x) / (size - 1));
      data[i + 1] = Math.round((255 * y) / (size - 1));
      data[i + 2] = inDisc ? 230 : 40;
    }
  return encodePng({ width: size, height: size, data });
}

const set = goldenSets()[0];

describe.runIf(set)("round trip of a PNG through the golden tiny tokenizer", () => {
  it(`encode → decode (${set} set)`, async () => {
    const tok = await HartTokenizer.fromPretrained(join(GOLDEN_DIR, set, "tokenizer"));
    const image = imagesToTensor([decodePng(makePng(tok.imageSize))]);
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

    // [0, 1] as the official sampler returns it, and a valid image again.
    const unit = imageToUnit(hybrid);
    expect(unit.data[5]).toBe(Math.fround(hybrid.data[5] + 1) * 0.5);
    expect(unit.data.every((v) => v >= 0 && v <= 1)).toBe(true);
    const png = encodePng(tensorToImages(hybrid)[0]);
    expect(decodePng(png).width).toBe(tok.imageSize);
    await tok.release();
  });
});

describe.runIf(set)("an overridden scale schedule (research)", () => {
  it("quantises with its own scales and still reconstructs f with the residual", async () => {
    const dir = join(GOLDEN_DIR, set, "tokenizer");
    const side = (await HartTokenizer.fromPretrained(dir)).quantizer.latentSide;
    const patchNums = [1, 3, side];
    const tok = await HartTokenizer.fromPretrained(dir, { patchNums });
    const image = imagesToTensor([decodePng(makePng(tok.imageSize))]);
    const enc = await tok.encode(image);
    expect(enc.indices.map((t) => t.shape[1])).toEqual(patchNums.map((p) => p * p));
    const hybridErr = relErr((await tok.reconstruct(image)).data, (await tok.decode(enc.fBCHW)).data);
    expect(hybridErr).toBeLessThan(1e-5);
    // A schedule ending elsewhere changes the image size the tokenizer accepts.
    const smaller = await HartTokenizer.fromPretrained(dir, { patchNums: [1, 2, side / 2] });
    expect(smaller.imageSize).toBe(tok.imageSize / 2);
    await expect(smaller.encode(image)).rejects.toThrow(/expected shape/);
    await Promise.all([tok.release(), smaller.release()]);
  });
});
