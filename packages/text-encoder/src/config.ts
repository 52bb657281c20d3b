import { HartError, type ModelConfig, readConfig } from "@hart/core";

/** The fields of a Hugging Face `qwen2` config.json the encoder uses. */
export interface Qwen2Config {
  /** Token embedding rows (`vocab_size`). */
  vocabSize: number;
  /** Width of the hidden states (`hidden_size`). */
  hiddenSize: number;
  /** Width of each MLP's SiLU-gated inner layer (`intermediate_size`). */
  intermediateSize: number;
  /** Number of decoder layers (`num_hidden_layers`). */
  numLayers: number;
  /** Query heads per attention layer (`num_attention_heads`). */
  numHeads: number;
  /** Key/value heads for grouped-query attention (`num_key_value_heads`, default {@link numHeads}); divides {@link numHeads}. */
  numKvHeads: number;
  /** Per-head dimension, even (`head_dim`, default `hidden_size / num_attention_heads`). */
  headDim: number;
  /** Epsilon of every RMSNorm (`rms_norm_eps`, default 1e-6). */
  rmsNormEps: number;
  /** RoPE base frequency θ (`rope_theta`, default 10000). */
  ropeTheta: number;
  /** Only applies when `use_sliding_window` is true; `null` otherwise. */
  slidingWindow: number | null;
}

function positiveInt(raw: ModelConfig, key: string, source: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new HartError("config", `${source}: "${key}" must be a positive integer, found ${JSON.stringify(raw[key])}`);
  }
  return v;
}

function positiveNumber(raw: ModelConfig, key: string, source: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== "number" || !(v > 0)) {
    throw new HartError("config", `${source}: "${key}" must be a positive number, found ${JSON.stringify(raw[key])}`);
  }
  return v;
}

/**
 * Validates a parsed `qwen2` config (`source` names it in errors). Defaults
 * follow `transformers`' `Qwen2Config` where a field may be omitted.
 */
export function parseQwen2Config(raw: ModelConfig, source = "config.json"): Qwen2Config {
  if (raw.model_type !== undefined && raw.model_type !== "qwen2") {
    throw new HartError("config", `${source}: model_type is ${JSON.stringify(raw.model_type)}, expected "qwen2"`);
  }
  const act = raw.hidden_act ?? "silu";
  if (act !== "silu")
    throw new HartError("config", `${source}: hidden_act ${JSON.stringify(act)} is not supported (silu)`);
  const scaling = raw.rope_scaling as { type?: string; rope_type?: string } | null | undefined;
  const ropeType = scaling ? (scaling.rope_type ?? scaling.type) : undefined;
  if (ropeType !== undefined && ropeType !== "default") {
    throw new HartError(
      "config",
      `${source}: rope_scaling ${JSON.stringify(scaling)} is not supported (plain RoPE only)`,
    );
  }
  const hiddenSize = positiveInt(raw, "hidden_size", source);
  const numHeads = positiveInt(raw, "num_attention_heads", source);
  const numKvHeads = positiveInt(raw, "num_key_value_heads", source, numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new HartError(
      "config",
      `${source}: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`,
    );
  }
  const headDim = positiveInt(raw, "head_dim", source, hiddenSize / numHeads);
  if (headDim % 2 !== 0) throw new HartError("config", `${source}: head_dim ${headDim} must be even for RoPE`);
  return {
    vocabSize: positiveInt(raw, "vocab_size", source),
    hiddenSize,
    intermediateSize: positiveInt(raw, "intermediate_size", source),
    numLayers: positiveInt(raw, "num_hidden_layers", source),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: positiveNumber(raw, "rms_norm_eps", source, 1e-6),
    ropeTheta: positiveNumber(raw, "rope_theta", source, 10000),
    slidingWindow: raw.use_sliding_window === true ? positiveInt(raw, "sliding_window", source) : null,
  };
}

/** Reads and validates `<dir>/config.json` of a Qwen2 text model. */
export function readQwen2Config(dir: string): Qwen2Config {
  return parseQwen2Config(readConfig(dir, { modelType: "qwen2" }), `${dir}/config.json`);
}
