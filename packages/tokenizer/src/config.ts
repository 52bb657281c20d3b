import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { HartError, readConfig } from "@hart/core";

/**
 * The fields of a HART tokenizer `config.json` (`HARTAutoEncoderConfig`) that
 * inference uses, in camelCase. Training-only fields (`beta`, `dropout`,
 * `levels`, ...) are not kept.
 */
export interface TokenizerConfig {
  /** Codebook size V (`vocab_size`). */
  vocabSize: number;
  /** Latent channels Cvae (`z_channels`). */
  zChannels: number;
  /** Base width of the conv autoencoder (`ch`). */
  ch: number;
  /** Width multiplier per resolution level (`ch_mult`); the image is `2^(len-1)` times the latent side. */
  chMult: number[];
  /** Scale schedule (`v_patch_nums`); the last entry is the latent side. */
  patchNums: number[];
  /** Kernel size of `quant_conv` / `post_quant_conv` (`quant_conv_ks`). */
  quantConvKs: number;
  /** Phi mixing ratio r in `h·(1−r) + conv(h)·r` (`quant_resi`; |r| ≤ 1e-6 means Phi is the identity). */
  quantResi: number;
  /** Phi sharing: 0 = one conv per scale, 1 = one shared conv, K ≥ 2 = K convs picked by the nearest tick (`share_quant_resi`). */
  shareQuantResi: number;
  /** Number of non-shared Phi convs when `share_quant_resi` is 0 (`default_qresi_counts`, 0 = one per scale). */
  defaultQresiCounts: number;
  /** `model_type`: `hart_autoencoder_with_disc` (weights under `vae.`) or `hart_autoencoder` (no prefix). */
  modelType: string;
}

const SUPPORTED_MODEL_TYPES = ["hart_autoencoder_with_disc", "hart_autoencoder"];

function positiveInt(json: Record<string, unknown>, key: string, source: string, fallback?: number): number {
  const v = json[key] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new HartError("config", `${source}: "${key}" must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

function intList(json: Record<string, unknown>, key: string, source: string): number[] {
  const v = json[key];
  if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== "number" || !Number.isInteger(x) || x <= 0)) {
    throw new HartError(
      "config",
      `${source}: "${key}" must be a non-empty list of positive integers, got ${JSON.stringify(v)}`,
    );
  }
  return [...v];
}

/** Checks a scale schedule: at least two strictly increasing positive sides (the official Phi pick divides by SN−1). */
export function checkPatchNums(patchNums: readonly number[], source: string): number[] {
  const ok =
    patchNums.length >= 2 &&
    patchNums.every((p, i) => Number.isInteger(p) && p > 0 && (i === 0 || p > patchNums[i - 1]));
  if (!ok) {
    throw new HartError(
      "config",
      `${source}: the scale schedule must have at least 2 strictly increasing positive integers, got [${patchNums}]`,
    );
  }
  return [...patchNums];
}

/** Validates a parsed `config.json` object; `source` names the file in errors. */
export function parseTokenizerConfig(json: Record<string, unknown>, source = "tokenizer config"): TokenizerConfig {
  const modelType = String(json.model_type ?? "hart_autoencoder_with_disc");
  if (!SUPPORTED_MODEL_TYPES.includes(modelType)) {
    throw new HartError(
      "config",
      `${source}: model_type "${modelType}" is not a HART tokenizer (expected one of ${SUPPORTED_MODEL_TYPES.join(", ")})`,
    );
  }
  if (json.quantizer_type !== "var_hybrid") {
    throw new HartError(
      "unsupported",
      `${source}: quantizer_type ${JSON.stringify(json.quantizer_type)} is not supported (HART's hybrid tokenizer has "var_hybrid")`,
    );
  }
  if (json.double_decoder === true) {
    throw new HartError("unsupported", `${source}: double_decoder is a training option and is not supported`);
  }
  if (json.using_znorm === true) {
    throw new HartError("unsupported", `${source}: using_znorm (cosine codebook search) is not supported`);
  }
  const quantResi = json.quant_resi ?? 0.5;
  if (typeof quantResi !== "number" || !Number.isFinite(quantResi)) {
    throw new HartError("config", `${source}: "quant_resi" must be a number, got ${JSON.stringify(quantResi)}`);
  }
  const shareQuantResi = json.share_quant_resi ?? 4;
  const defaultQresiCounts = json.default_qresi_counts ?? 0;
  for (const [key, v] of [
    ["share_quant_resi", shareQuantResi],
    ["default_qresi_counts", defaultQresiCounts],
  ] as const) {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw new HartError("config", `${source}: "${key}" must be a non-negative integer, got ${JSON.stringify(v)}`);
    }
  }
  return {
    vocabSize: positiveInt(json, "vocab_size", source),
    zChannels: positiveInt(json, "z_channels", source),
    ch: positiveInt(json, "ch", source),
    chMult: intList(json, "ch_mult", source),
    patchNums: checkPatchNums(intList(json, "v_patch_nums", source), `${source}: "v_patch_nums"`),
    quantConvKs: positiveInt(json, "quant_conv_ks", source, 3),
    quantResi,
    shareQuantResi: shareQuantResi as number,
    defaultQresiCounts: defaultQresiCounts as number,
    modelType,
  };
}

/** Reads and validates a tokenizer folder's `config.json` (or a `.json` file path). */
export function readTokenizerConfig(dir: string): TokenizerConfig {
  const json = readConfig(dir, { modelType: SUPPORTED_MODEL_TYPES });
  return parseTokenizerConfig(json, existsSync(dir) && statSync(dir).isFile() ? dir : join(dir, "config.json"));
}
