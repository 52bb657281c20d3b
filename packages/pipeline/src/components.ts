/**
 * The component contracts the pipeline is written against (INTERFACES.md). They are structural: any
 * object with these members can be passed to {@link HartPipeline}'s constructor.
 */
import type { Tensor } from "@hart/core";

export type { ImageTokenizer, ScaleQuantizer } from "@hart/tokenizer";

/** Random draws a sampler takes (replayable). */
export interface NoiseSource {
  /** A fresh standard-normal tensor of `shape`. */
  normal(shape: readonly number[]): Tensor<"float32">;
}

/** Samples the per-token residual given the transformer's conditioning. */
export interface ResidualSampler {
  /** `condND` `[N, C]` (cfg ≠ 1: conditional rows then unconditional); returns the scaled residual `[N, Cvae]`. */
  sample(
    condND: Tensor<"float32">,
    options: { cfg: number; temperature?: number; noise?: NoiseSource; signal?: AbortSignal },
  ): Promise<Tensor<"float32">>;
}

/** What a text encoder hands the transformer. */
export interface EncodedPrompts {
  /** `[B, L, D]` hidden states of the prompt positions. */
  contextBLD: Tensor<"float32">;
  /** `[B, L]` ids != pad. */
  mask: Tensor<"bool">;
  /** `[B, L]` cumsum(mask) - 1. */
  positionIds: Tensor<"int64">;
  /** `[B, L]` padded prompt ids. */
  tokens: Tensor<"int64">;
}

/** Encodes prompts for the transformer. */
export interface TextEncoder {
  /** Width D of the hidden states. */
  readonly hiddenSize: number;
  /** Encodes a batch of prompts, padded/truncated to `maxTokenLength`. */
  encode(
    prompts: readonly string[],
    options?: { useSystemPrompt?: boolean; maxTokenLength?: number },
  ): Promise<EncodedPrompts>;
  /** Frees the model's memory; the encoder cannot be used afterwards. */
  release(): Promise<void>;
}

/** Options of one autoregressive generation. */
export interface GenerateOptions {
  cfg: number;
  seed?: number;
  topK?: number | ((si: number) => number);
  topP?: number;
  moreSmooth?: boolean;
  signal?: AbortSignal;
  onProgress?: (event: { stage: string; [key: string]: unknown }) => void;
  [key: string]: unknown;
}

/** What the transformer hands the residual diffusion and the decoder. */
export interface ARResult {
  /** Per-scale codes `[B, pn*pn]`. */
  indices: Tensor<"int64">[];
  /** f_hat after all scales but the last `[B, Cvae, HW, HW]`. */
  fHatBCHW: Tensor<"float32">;
  /** The last scale's code embeddings `[B, HW*HW, Cvae]`. */
  lastHBLC: Tensor<"float32">;
  /** The diffusion condition `[2B*HW*HW, C]` (cfg batch). */
  diffusionCond: Tensor<"float32">;
  /** The guidance used at the last scale. */
  lastCfg: number;
}

/** The autoregressive transformer. */
export interface Transformer {
  /** Runs the scale loop on encoded prompts. */
  generate(context: EncodedPrompts, options: GenerateOptions): Promise<ARResult>;
}
