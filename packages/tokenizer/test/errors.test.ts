import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HartError, loadStateDict, tensor, writeSafetensors, zeros } from "@hart/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HartTokenizer, parseTokenizerConfig, readTokenizerConfig } from "../src/index";
import { GOLDEN_DIR, goldenSets, randomTensor } from "./helpers";

const set = goldenSets()[0];

describe.runIf(set)("bad inputs give clear errors", () => {
  const dir = join(GOLDEN_DIR, set ?? "", "tokenizer");
  let tok: HartTokenizer;
  let S: number;
  beforeAll(async () => {
    tok = await HartTokenizer.fromPretrained(dir);
    S = tok.imageSize;
  });
  afterAll(() => tok.release());

  const rejects = async (p: Promise<unknown>, pattern: RegExp) => {
    const err = await p.then(
      () => undefined,
      (e) => e,
    );
    expect(err).toBeInstanceOf(HartError);
    expect((err as Error).message).toMatch(pattern);
  };

  it("wrong channel count", async () => {
    await rejects(
      tok.encode(zeros("float32", [1, 4, S, S])),
      new RegExp(`encode\\(images\\): expected shape \\[B, 3, ${S}, ${S}\\]`),
    );
  });

  it("an image size that does not match the scale schedule", async () => {
    await rejects(tok.encode(zeros("float32", [1, 3, S * 2, S * 2])), /got \[1,3,/);
    await rejects(tok.decode(zeros("float32", [1, tok.config.zChannels, 3, 3])), /decode\(fHat\): expected shape/);
  });

  it("NaN pixels", async () => {
    const image = randomTensor([1, 3, S, S], 5);
    image.data[17] = Number.NaN;
    await rejects(tok.encode(image), /element 17 is NaN/);
  });

  it("wrong dtype and malformed indices", async () => {
    await rejects(
      tok.encode(tensor("float64", [1, 3, S, S], new Float64Array(3 * S * S)) as never),
      /expected float32/,
    );
    const SN = tok.quantizer.patchNums.length;
    await rejects(tok.indicesToImage([]), new RegExp(`one tensor per scale \\(${SN}\\)`));
    const idx = tok.quantizer.patchNums.map((pn) => zeros("int64", [1, pn * pn]));
    idx[1] = zeros("int64", [1, 5]);
    await rejects(tok.indicesToImage(idx), /indices\[1\]: \[1,5\] is not \[B, pn\*pn\]/);
  });

  it("AR interface misuse", async () => {
    const q = tok.quantizer;
    const HW = q.latentSide;
    const fHat = zeros("float32", [1, q.latentChannels, HW, HW]);
    await rejects(q.nextScaleInput(q.patchNums.length, fHat, fHat), /si=\d+ must be an integer in/);
    await rejects(q.nextScaleInput(0, fHat, fHat), /nextScaleInput\(hBChw\): expected shape .* pn = patchNums\[0\]/);
  });

  it("a missing weight names the checkpoint key", () => {
    const sd = loadStateDict(dir, { prefix: "vae.", stripPrefix: true });
    sd.delete("decoder.up.0.block.1.conv2.weight");
    expect(() => HartTokenizer.fromStateDict(readTokenizerConfig(dir), sd)).toThrow(
      /missing weight "vae.decoder.up.0.block.1.conv2.weight"/,
    );
  });

  it("a missing weight in a checkpoint folder fails at load time, naming the file", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "hart-tok-"));
    try {
      copyFileSync(join(dir, "config.json"), join(tmp, "config.json"));
      const sd = loadStateDict(dir);
      sd.delete("vae.quantize.quant_resi.qresi_ls.2.bias");
      writeSafetensors(join(tmp, "model.safetensors"), sd);
      await rejects(
        HartTokenizer.fromPretrained(tmp),
        /missing weight "vae.quantize.quant_resi.qresi_ls.2.bias" in .*model.safetensors/,
      );
      writeFileSync(join(tmp, "config.json"), JSON.stringify({ model_type: "llama" }));
      await rejects(HartTokenizer.fromPretrained(tmp), /model_type is "llama"/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it("a decode-only state dict refuses to encode", async () => {
    const sd = loadStateDict(dir, { prefix: "vae.", stripPrefix: true });
    for (const k of [...sd.keys()]) if (k.startsWith("encoder.")) sd.delete(k);
    const decodeOnly = HartTokenizer.fromStateDict(readTokenizerConfig(dir), sd);
    await rejects(decodeOnly.encode(zeros("float32", [1, 3, S, S])), /no encoder weights .* can only decode/);
    await decodeOnly.release();
  });
});

describe("config validation", () => {
  const base = {
    model_type: "hart_autoencoder_with_disc",
    quantizer_type: "var_hybrid",
    vocab_size: 16,
    z_channels: 4,
    ch: 32,
    ch_mult: [1, 1],
    v_patch_nums: [1, 2, 4],
  };
  it("accepts a valid config and rejects bad fields", () => {
    expect(parseTokenizerConfig(base).patchNums).toEqual([1, 2, 4]);
    expect(() => parseTokenizerConfig({ ...base, quantizer_type: "var" })).toThrow(
      /quantizer_type "var" is not supported/,
    );
    expect(() => parseTokenizerConfig({ ...base, v_patch_nums: [1, 4, 2] })).toThrow(/strictly increasing/);
    expect(() => parseTokenizerConfig({ ...base, v_patch_nums: [4] })).toThrow(/at least 2/);
    expect(() => parseTokenizerConfig({ ...base, ch: 0 })).toThrow(/"ch" must be a positive integer/);
  });
  it("a bad schedule override and float16 are refused", () => {
    const config = parseTokenizerConfig(base);
    const sd = new Map();
    expect(() => HartTokenizer.fromStateDict(config, sd, { patchNums: [2, 1] })).toThrow(/patchNums option/);
    expect(() => HartTokenizer.fromStateDict(config, sd, { dtype: "float16" })).toThrow(/float32 only/);
  });
});
