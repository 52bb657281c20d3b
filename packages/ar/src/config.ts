/**
 * The transformer's `config.json` (`model_type: hart_transformer_t2i`), read
 * and checked once. Every size the graphs use comes from here or from the
 * weights; nothing release-shaped is assumed.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { HartError } from "@hart/core";

/** Which FFN a block uses: `llama` = SwiGLU without bias, `gpt2` = fc1 → GELU(tanh) → fc2 with bias. */
export type MlpType = "llama" | "gpt2";
/** Which attention a block uses: `llama` = RoPE (1-D on context, 2-D on image tokens) + RMSNorm; `gpt2` = absolute position embeddings + LayerNorm. */
export type AttnType = "llama" | "gpt2";
/** How the per-block adaLN pools the context: masked mean or max over all context tokens. */
export type PoolingMode = "avg" | "max";

/** The fields of `HARTForT2IConfig` that inference uses, with the reference's defaults. */
export interface HartTransformerConfig {
  /** Number of text-context tokens per prompt (the first "scale"). */
  contextToken: number;
  /** Width of the text features. */
  contextDim: number;
  /** Number of transformer blocks. */
  depth: number;
  /** Model width C. */
  embedDim: number;
  /** Attention heads. */
  numHeads: number;
  /** FFN width ratio. */
  mlpRatio: number;
  /** Epsilon of every norm. */
  normEps: number;
  /** `disable_aln: true` = plain pre-norm blocks (adaLN only in `head_nm`). */
  disableAln: boolean;
  /** With `disableAln`: a per-block `scale_shift_table` plus the masked-mean context. */
  sharedAln: boolean;
  /** Cosine attention (`attn_l2_norm`): q and k L2-normalised, per-head learned scale. */
  attnL2Norm: boolean;
  /** The scale schedule (side length of each scale's token map). */
  patchNums: number[];
  /** FFN kind (`mlp_type`). */
  mlpType: MlpType;
  /** Attention kind (`attn_type`). */
  attnType: AttnType;
  /** Level embedding: sinusoidal `TimestepEmbedder` (true) or a learned table (false). */
  useTimestepEmbed: boolean;
  /** Context pooling of the per-block adaLN (`sep_aln_pooling_mode`). */
  sepAlnPoolingMode: PoolingMode;
  /** RMSNorm on the text features before `context_embed`. */
  useContextNorm: boolean;
}

function field<T>(
  raw: Record<string, unknown>,
  key: string,
  fallback: T,
  file: string,
  ok: (v: unknown) => boolean,
): T {
  const v = raw[key];
  if (v === undefined) return fallback;
  if (!ok(v)) throw new HartError("config", `${file}: field "${key}" has an invalid value ${JSON.stringify(v)}`);
  return v as T;
}

const isPosInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
const isBool = (v: unknown) => typeof v === "boolean";
const isPosNum = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v > 0;

function unsupported(file: string, what: string, why: string): never {
  throw new HartError("unsupported", `unsupported: ${what} (${file}): ${why}`);
}

/**
 * Parses a config object (the content of `llm/config.json`). Values the
 * reference accepts but inference cannot honour fail here with
 * `unsupported: <field>=<value>`.
 */
export function parseConfig(raw: Record<string, unknown>, file = "config.json"): HartTransformerConfig {
  const modelType = raw.model_type;
  if (modelType !== undefined && modelType !== "hart_transformer_t2i") {
    throw new HartError(
      "config",
      `${file}: model_type is ${JSON.stringify(modelType)}, expected "hart_transformer_t2i"`,
    );
  }
  const cfg: HartTransformerConfig = {
    contextToken: field(raw, "context_token", 77, file, (v) => Number.isInteger(v) && (v as number) >= 0),
    contextDim: field(raw, "context_dim", 768, file, isPosInt),
    depth: field(raw, "depth", 16, file, isPosInt),
    embedDim: field(raw, "embed_dim", 1024, file, isPosInt),
    numHeads: field(raw, "num_heads", 16, file, isPosInt),
    mlpRatio: field(raw, "mlp_ratio", 4, file, isPosNum),
    normEps: field(raw, "norm_eps", 1e-6, file, isPosNum),
    disableAln: field(raw, "disable_aln", false, file, isBool),
    sharedAln: field(raw, "shared_aln", false, file, isBool),
    attnL2Norm: field(raw, "attn_l2_norm", false, file, isBool),
    patchNums: [...field<number[]>(raw, "patch_nums", [1, 2, 3, 4, 5, 6, 8, 10, 13, 16], file, Array.isArray)],
    mlpType: field(raw, "mlp_type", "gpt2", file, (v) => typeof v === "string"),
    attnType: field(raw, "attn_type", "gpt2", file, (v) => typeof v === "string"),
    useTimestepEmbed: field(raw, "use_timestep_embed", false, file, isBool),
    sepAlnPoolingMode: field(raw, "sep_aln_pooling_mode", "max", file, (v) => typeof v === "string"),
    useContextNorm: field(raw, "use_context_norm", false, file, isBool),
  };
  if (!cfg.patchNums.every(isPosInt) || cfg.patchNums.length < 2) {
    throw new HartError(
      "config",
      `${file}: patch_nums must list at least 2 positive integers, got ${JSON.stringify(cfg.patchNums)}`,
    );
  }
  if (cfg.embedDim % cfg.numHeads !== 0) {
    throw new HartError("config", `${file}: embed_dim ${cfg.embedDim} is not divisible by num_heads ${cfg.numHeads}`);
  }
  if (cfg.mlpType !== "llama" && cfg.mlpType !== "gpt2")
    unsupported(file, `mlp_type=${cfg.mlpType}`, 'expected "llama" or "gpt2"');
  if (cfg.attnType !== "llama" && cfg.attnType !== "gpt2")
    unsupported(file, `attn_type=${cfg.attnType}`, 'expected "llama" or "gpt2"');
  if (cfg.sepAlnPoolingMode !== "avg" && cfg.sepAlnPoolingMode !== "max") {
    unsupported(file, `sep_aln_pooling_mode=${cfg.sepAlnPoolingMode}`, 'expected "avg" or "max"');
  }
  if (cfg.contextToken < 1) {
    unsupported(file, `context_token=${cfg.contextToken}`, "text-to-image generation needs at least one context token");
  }
  if (raw.use_cross_attn === true) {
    unsupported(
      file,
      "use_cross_attn=true",
      "the reference's cross-attention mixes all prompts of a batch and skips the first context_token image tokens of each scale under KV caching; no released model uses it",
    );
  }
  if (cfg.attnType === "gpt2" && cfg.useContextNorm) {
    unsupported(
      file,
      "use_context_norm=true with attn_type=gpt2",
      "the reference cannot build this model (nn.LayerNorm takes no scale)",
    );
  }
  const headDim = cfg.embedDim / cfg.numHeads;
  if (cfg.attnType === "llama" && headDim % 4 !== 0) {
    unsupported(file, `num_heads=${cfg.numHeads}`, `2-D RoPE needs a head dim divisible by 4, got ${headDim}`);
  }
  return cfg;
}

/** Reads and parses `<dir>/config.json`. */
export function readTransformerConfig(dir: string): HartTransformerConfig {
  const file = join(dir, "config.json");
  if (!existsSync(file))
    throw new HartError("missing-file", `no config.json in ${dir} (expected the HART llm/ folder)`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new HartError("config", `${file}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return parseConfig(raw, file);
}

/** Head dimension `embed_dim / num_heads`. */
export function headDim(cfg: HartTransformerConfig): number {
  return cfg.embedDim / cfg.numHeads;
}

/** FFN hidden width as the reference rounds it: SwiGLU `⌊(2·C·ratio/3 + 255)/256⌋·256`, GELU `round(C·ratio)`. */
export function mlpHidden(cfg: HartTransformerConfig): number {
  if (cfg.mlpType === "llama") return Math.floor(Math.trunc((cfg.embedDim * cfg.mlpRatio * 2) / 3 + 255) / 256) * 256;
  return pyRound(cfg.embedDim * cfg.mlpRatio);
}

/** Python's round-half-to-even. */
function pyRound(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Whether the blocks take a 6-way modulation (adaLN or the shared table). */
export function blocksAreModulated(cfg: HartTransformerConfig): boolean {
  return !cfg.disableAln || cfg.sharedAln;
}
