/**
 * The public contract of `@hart/ar` (INTERFACES.md): what a transformer takes
 * and returns, independent of the implementation.
 */
import type { ProgressEvent, Tensor } from "@hart/core";
import type { RandomSource, ReplayDraws, TokenSampler } from "./sampling";

/**
 * The text conditioning, as `@hart/text-encoder`'s `EncodedPrompts` provides it
 * (any object with these members works).
 */
export interface TextContext {
  /** Text features `[B, context_token, context_dim]`. */
  contextBLD: Tensor<"float32">;
  /** `[B, context_token]` 1 for prompt tokens, 0 for padding (bool or uint8). */
  mask: Tensor<"bool"> | Tensor<"uint8">;
  /** `[B, context_token]` `cumsum(mask) − 1` (RoPE positions of the context tokens). */
  positionIds: Tensor<"int64">;
}

/** Progress of {@link Transformer.generate}: one event per finished scale (core's `ProgressEvent` shape). */
export interface ARProgressEvent extends ProgressEvent {
  readonly stage: "ar";
  /** Scales finished (1-based). */
  readonly step: number;
  /** Number of scales. */
  readonly total: number;
  /** Index of the scale just finished. */
  readonly scale: number;
  /** Number of scales (same as `total`). */
  readonly scales: number;
  /** Tokens generated at this scale per image. */
  readonly tokens: number;
  /** Wall time of this scale in seconds. */
  readonly elapsedSeconds: number;
}

/** Options of one generation. Defaults reproduce the official `autoregressive_infer_cfg`. */
export interface GenerateOptions {
  /** Classifier-free guidance scale (official default 4.5); scale `si` uses `t = cfg·si/(S−1)`. Must be finite. */
  cfg: number;
  /** Seed of the default random source (default 0). Same seed → same codes. */
  seed?: number;
  /**
   * Top-k per scale: a number for every scale, or a function of the scale
   * index. Default: 600 for scales 0–6, 300 after (the reference's hard-coded
   * values). `0` keeps every code; values above V are clamped.
   */
  topK?: number | ((si: number) => number);
  /** Top-p (nucleus) mass in (0, 1); 0 (default) disables it. */
  topP?: number;
  /** Gumbel-softmax soft code embeddings (`more_smooth`, the official demo's choice). Default false. */
  moreSmooth?: boolean;
  /** MaskGIT iterations at the last scale (default 1: every token at once). */
  numMaskgitIters?: number;
  /**
   * Guidance ratio at the last scale: `"previous"` (default) reuses the
   * previous scale's `(S−2)/(S−1)` like the released code; `"last"` uses 1.
   */
  lastScaleRatio?: "previous" | "last";
  /** Picks codes from the filtered distribution (default: multinomial; see {@link @hart/ar!argmaxSampler}). */
  sampler?: TokenSampler;
  /** The random draws (default: seeded from {@link GenerateOptions.seed}). */
  random?: RandomSource;
  /** Replays recorded codes (and Gumbel noise) instead of sampling; overrides `sampler` and `random`. */
  replay?: ReplayDraws;
  /** Cancels the generation between blocks. */
  signal?: AbortSignal;
  /** Called after every scale. */
  onProgress?: (event: ARProgressEvent) => void;
  /**
   * Debugging: receives intermediate tensors under the golden reference's
   * names (`cond_BD`, `s{si}.x_in`, `s{si}.block{j}_out`, `s{si}.logits`,
   * `s{si}.logits_cfg`, `s{si}.idx`, `s{si}.h_BChw`, `s{si}.f_hat`,
   * `s{si}.next_map`, `last.*`). Costs extra copies; leave unset normally.
   */
  trace?: (name: string, value: Tensor) => void;
}

/** What the transformer hands the residual diffusion and the decoder. */
export interface ARResult {
  /** Codes per scale, `[B, pn²]` (scale 0: `[B, 1]`). */
  indices: Tensor<"int64">[];
  /** f_hat after every scale but the last `[B, Cvae, HW, HW]` (the last scale's h is not added). */
  fHatBCHW: Tensor<"float32">;
  /** The last scale's code embeddings `[B, HW², Cvae]` (soft with `moreSmooth`). */
  lastHBLC: Tensor<"float32">;
  /**
   * The residual diffusion's conditioning `[2B·HW², C]`: rows of the
   * conditional batch first, then the unconditional ones (`last_stage_cond`).
   */
  diffusionCond: Tensor<"float32">;
  /** The guidance `t` used at the last scale (pass it as the diffusion's cfg). */
  lastCfg: number;
}

/** An autoregressive next-scale transformer. */
export interface Transformer {
  /** Runs the scale loop on encoded prompts. */
  generate(context: TextContext, options: GenerateOptions): Promise<ARResult>;
}
