/** Shared test fixtures: golden set discovery and small synthetic tokenizers. */
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Tensor, tensor } from "@hart/core";
import { HartTokenizer, parseTokenizerConfig, randomTokenizerStateDict, type TokenizerConfig } from "../src/index";
import { pseudoRandom } from "./reference";

/** The golden sets (`$HART_GOLDEN_DIR`, default `../shared/golden` next to the repo). */
export const GOLDEN_DIR = resolve(
  process.env.HART_GOLDEN_DIR ?? join(import.meta.dirname, "../../../../shared/golden"),
);

/** Names of the golden sets that have a tokenizer. */
export function goldenSets(): string[] {
  if (!existsSync(GOLDEN_DIR)) return [];
  return readdirSync(GOLDEN_DIR)
    .filter((s) => existsSync(join(GOLDEN_DIR, s, "tokenizer", "config.json")))
    .sort();
}

/** A tiny config (ch 32, one level, so image = latent) with the given schedule and Phi ratio. */
export function tinyConfig(patchNums: number[], quantResi = 0.5, zChannels = 4, vocabSize = 16): TokenizerConfig {
  return parseTokenizerConfig({
    model_type: "hart_autoencoder_with_disc",
    quantizer_type: "var_hybrid",
    vocab_size: vocabSize,
    z_channels: zChannels,
    ch: 32,
    ch_mult: [1],
    v_patch_nums: patchNums,
    quant_resi: quantResi,
    share_quant_resi: 4,
  });
}

/** A decode-only tokenizer with random weights for `config`. */
export function randomTokenizer(config: TokenizerConfig, seed = 1): HartTokenizer {
  return HartTokenizer.fromStateDict(config, randomTokenizerStateDict(config, { seed, parts: ["decoder"] }));
}

/** A float32 tensor of deterministic values in [−scale, scale). */
export function randomTensor(shape: number[], seed: number, scale = 1): Tensor<"float32"> {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(
    "float32",
    shape,
    Float32Array.from(pseudoRandom(n, seed), (v) => v * scale),
  );
}
