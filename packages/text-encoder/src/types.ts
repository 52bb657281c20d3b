import type { Device, GraphFlavour, OnProgress, Tensor } from "@hart/core";

/**
 * Prompts encoded the way HART's `encode_prompts` returns them: everything is
 * batched `[B, L]` with `L = maxTokenLength`, and only the prompt positions are
 * kept (a system prompt, if used, is not part of the result).
 */
export interface EncodedPrompts {
  /** The text model's last hidden state (after its final norm) at the prompt positions, `[B, L, D]`. */
  contextBLD: Tensor<"float32">;
  /** `tokens != pad`, `[B, L]`. */
  mask: Tensor<"bool">;
  /** `cumsum(mask) - 1` along each row, `[B, L]` (HART's context position ids). */
  positionIds: Tensor<"int64">;
  /** The prompt token ids, truncated and padded to `L` with the pad id, `[B, L]`. */
  tokens: Tensor<"int64">;
}

/** Per-call options of {@link TextEncoder.encode}. */
export interface EncodeOptions {
  /**
   * Prepend the system prompt (HART's "Enhanced prompt" instruction by default) to every prompt
   * while running the model; its positions are dropped from the result (default `true`, as the
   * release's `sample.py`).
   */
  useSystemPrompt?: boolean;
  /** Tokens per prompt after truncation and padding (default 300, the release's `max_token_length`). */
  maxTokenLength?: number;
}

/** Turns prompts into the conditioning HART's transformer consumes. */
export interface TextEncoder {
  /** Width D of {@link EncodedPrompts.contextBLD}. */
  readonly hiddenSize: number;
  /** Tokenizes, pads and encodes a batch of prompts (at least one). */
  encode(prompts: readonly string[], options?: EncodeOptions): Promise<EncodedPrompts>;
  /** Frees the native sessions; the encoder cannot be used afterwards. */
  release(): Promise<void>;
}

/** Options of {@link Qwen2TextEncoder.fromPretrained} and {@link Qwen2TextEncoder.fromWeights}. */
export interface TextEncoderLoadOptions {
  /** Where the graphs run (default `"cpu"`). */
  device?: Device;
  /**
   * Graph operator forms (default: `"fused"` on `cuda`, `"plain"` elsewhere). Fused: onnxruntime's
   * `SimplifiedLayerNormalization`/`SkipSimplifiedLayerNormalization` (residual adds fused with the next norm),
   * `RotaryEmbedding` and `MultiHeadAttention` with the causal + padding mask as `attention_bias`. All have CPU
   * kernels, so `"fused"` also runs on CPU (that is how it is tested).
   */
  graphFlavour?: GraphFlavour;
  /**
   * How the large matrices (projections and the embedding table) are stored (default `"float32"`).
   * `"float16"`/`"bfloat16"` halve their memory: they are cast to float32 inside the graph right
   * before use, so activations and outputs stay float32 (results then differ from the float32
   * reference by the weights' rounding). `"int8"` (CPU) quantizes the projections to per-channel int8 and their
   * inputs on the fly (`DynamicQuantizeMatMul`): faster, a quarter of their memory, not exact; the embedding table
   * stays float32.
   */
  dtype?: "float32" | "float16" | "bfloat16" | "int8";
  /** Threads per onnxruntime op (default: onnxruntime's choice). */
  intraOpThreads?: number;
  /**
   * Upper bound (bytes) of the weights compiled into one onnxruntime session (default 128 MiB; a part holds at
   * least the embedding or one layer). onnxruntime copies the weights it is given, and keeps part of its transient
   * copies, so the model is compiled part by part and each part's weights are dropped from JavaScript right after:
   * peak memory stays near one copy of the weights. Larger parts: fewer sessions, more memory.
   */
  partBytes?: number;
  /**
   * Called after each compiled part with `{ stage: "text-encoder:load", step, total, message, elapsedSeconds }`
   * (`step` of `total` parts done).
   */
  onProgress?: OnProgress;
  /** The system prompt text (default {@link HART_SYSTEM_PROMPT}). */
  systemPrompt?: string;
}
