/**
 * A pipeline with the released model's shapes and random weights, built in memory: what latency benchmarks need
 * (`hart bench --random-weights`, `npm run bench -w @hart/pipeline`) on machines that cannot download 10 GB of
 * weights. Its pictures are noise; its cost per stage is the release's.
 */
import { HartTransformer, parseConfig, RELEASE_TRANSFORMER_CONFIG, randomTransformerStateDict } from "@hart/ar";
import { benchTensor, type Device, HartError, tensor } from "@hart/core";
import { diffusionHeadConfig, ResidualDiffusion, randomDiffusionStateDict } from "@hart/residual-diffusion";
import type { EncodedPrompts, TextEncoder } from "@hart/text-encoder";
import {
  HartTokenizer,
  parseTokenizerConfig,
  RELEASE_TOKENIZER_CONFIG,
  randomTokenizerStateDict,
} from "@hart/tokenizer";
import { HartPipeline } from "./pipeline";

/** Options of {@link randomReleasePipeline}. */
export interface RandomPipelineOptions {
  /**
   * Output side in pixels (default 1024): the release's schedule cut to end at `resolution / 16` tokens a side
   * (256 → …, 12, 16; 512 → …, 27, 32 — the side is appended when the release's schedule lacks it).
   */
  resolution?: number;
  /** Where the graphs run (default `"cpu"`). */
  device?: Device;
  /** Precision of the transformer blocks (default `"float32"`; `"float16"` needs their fused forms; `"int8"`: CPU). */
  dtype?: "float32" | "float16" | "int8";
  /** Seed of the random weights (default 0). */
  seed?: number;
  /** Threads per onnxruntime op (default: onnxruntime's choice). */
  intraOpThreads?: number;
}

/** Valid context tokens of the stand-in text encoder's fixed context (of the release's 300). */
const STAND_IN_VALID_TOKENS = 48;

/**
 * The text encoder stand-in: each batch size gets one fixed random context of the release's shape
 * (`[B, 300, 1536]`, 48 valid tokens a row). Qwen2-1.5B is left out, as in the 732M-parameter reference figures the
 * project compares with; its stage time is then near zero.
 */
export function fixedContextEncoder(tokens: number, dim: number, seed = 7): TextEncoder {
  const valid = Math.min(STAND_IN_VALID_TOKENS, tokens);
  const byBatch = new Map<number, EncodedPrompts>();
  const contextFor = (B: number): EncodedPrompts => {
    let c = byBatch.get(B);
    if (!c) {
      const row = (i: number) => i % tokens;
      c = {
        contextBLD: benchTensor([B, tokens, dim], seed),
        mask: tensor(
          "bool",
          [B, tokens],
          Uint8Array.from({ length: B * tokens }, (_, i) => (row(i) < valid ? 1 : 0)),
        ),
        positionIds: tensor(
          "int64",
          [B, tokens],
          BigInt64Array.from({ length: B * tokens }, (_, i) => BigInt(Math.min(row(i), valid - 1))),
        ),
        tokens: tensor("int64", [B, tokens], new BigInt64Array(B * tokens)),
      };
      byBatch.set(B, c);
    }
    return c;
  };
  return {
    hiddenSize: dim,
    encode: async (prompts) => {
      if (prompts.length < 1) throw new HartError("argument", "encode: at least one prompt is needed");
      return contextFor(prompts.length);
    },
    release: async () => {},
  };
}

/** The release's scale schedule ending at `side` tokens. */
function scheduleTo(side: number): number[] {
  return [...RELEASE_TRANSFORMER_CONFIG.patch_nums.filter((p) => p < side), side];
}

/**
 * Builds a pipeline with the release's shapes (transformer depth 24 × 1536, residual diffusion 1024 × 6 with
 * 8 steps, the full-size tokenizer decoder) and random weights, for `options.resolution`, with
 * {@link fixedContextEncoder} in place of Qwen2. Memory: about 3 GB of float32 transformer weights.
 */
export async function randomReleasePipeline(options: RandomPipelineOptions = {}): Promise<HartPipeline> {
  const resolution = options.resolution ?? 1024;
  if (!Number.isInteger(resolution) || resolution < 16 || resolution % 16 !== 0 || resolution > 1024) {
    throw new HartError(
      "argument",
      `randomReleasePipeline: resolution must be a multiple of 16 between 16 and 1024, got ${resolution}`,
    );
  }
  const patchNums = scheduleTo(resolution / 16);
  const seed = options.seed ?? 0;
  const common = { device: options.device, intraOpThreads: options.intraOpThreads };
  const cfg = parseConfig({ ...RELEASE_TRANSFORMER_CONFIG, patch_nums: patchNums }, "RELEASE_TRANSFORMER_CONFIG");
  const tokConfig = parseTokenizerConfig({ ...RELEASE_TOKENIZER_CONFIG, v_patch_nums: patchNums });
  const tokenizer = HartTokenizer.fromStateDict(
    tokConfig,
    randomTokenizerStateDict(tokConfig, { parts: ["decoder"], seed }),
    common,
  );
  const sd = randomTransformerStateDict(cfg, {
    vocabSize: tokConfig.vocabSize,
    latentChannels: tokConfig.zChannels,
    seed,
  });
  const transformer = await HartTransformer.fromStateDict(cfg, sd, tokenizer.quantizer, {
    ...common,
    dtype: options.dtype,
    consumeWeights: true,
  });
  const head = diffusionHeadConfig({ ...RELEASE_TRANSFORMER_CONFIG, patch_nums: patchNums });
  const diffusion = ResidualDiffusion.fromStateDict(randomDiffusionStateDict(head, tokConfig.zChannels), head, common);
  return new HartPipeline({
    textEncoder: fixedContextEncoder(cfg.contextToken, cfg.contextDim),
    transformer,
    diffusion,
    tokenizer,
  });
}
