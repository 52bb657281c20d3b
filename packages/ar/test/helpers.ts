/** Small fixtures shared by the package tests: tiny configs, a quantizer with random weights, contexts, a seeded source. */
import { type Tensor, tensor } from "@hart/core";
import { HartQuantizer, parseTokenizerConfig, randomTokenizerStateDict } from "@hart/tokenizer";
import {
  HartTransformer,
  type HartTransformerOptions,
  parseConfig,
  type RandomSource,
  randomTransformerStateDict,
  type replaySampler,
} from "../src/index";

/** A tiny transformer config (overrides are raw config.json fields). */
export function tinyConfig(overrides: Record<string, unknown> = {}) {
  return parseConfig({
    model_type: "hart_transformer_t2i",
    context_token: 5,
    context_dim: 12,
    depth: 2,
    embed_dim: 32,
    num_heads: 4,
    mlp_ratio: 4,
    norm_eps: 1e-6,
    patch_nums: [1, 2, 4],
    mlp_type: "llama",
    attn_type: "llama",
    disable_aln: false,
    use_timestep_embed: true,
    sep_aln_pooling_mode: "avg",
    use_context_norm: true,
    ...overrides,
  });
}

/** A tiny config (see {@link tinyConfig}), its quantizer and a random transformer state dict for them. */
export function tinyModel(overrides: Record<string, unknown> = {}, seed = 9) {
  const cfg = tinyConfig(overrides);
  const quantizer = tinyQuantizer(cfg.patchNums);
  const sd = randomTransformerStateDict(cfg, {
    vocabSize: quantizer.vocabSize,
    latentChannels: quantizer.latentChannels,
    seed,
  });
  return { cfg, quantizer, sd };
}

/** A quantizer (codebook + Phi convs) with random weights for `patchNums`. */
export function tinyQuantizer(patchNums: number[], vocab = 48, channels = 4, seed = 1): HartQuantizer {
  const config = parseTokenizerConfig({
    model_type: "hart_autoencoder_with_disc",
    quantizer_type: "var_hybrid",
    vocab_size: vocab,
    z_channels: channels,
    ch: 8,
    ch_mult: [1],
    v_patch_nums: patchNums,
    quant_resi: 0.5,
    share_quant_resi: 4,
  });
  const sd = randomTokenizerStateDict(config, { parts: [], seed });
  return HartQuantizer.fromWeights(config, { has: (k) => sd.has(k), get: (k) => sd.get(k) as Tensor<"float32"> });
}

/** A right-padded text context with the given valid lengths. */
export function tinyContext(T: number, D: number, valid: number[], seed = 3) {
  const B = valid.length;
  const data = new Float32Array(B * T * D);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    data[i] = (s / 2 ** 32 - 0.5) * 4;
  }
  const mask = new Uint8Array(B * T);
  const pos = new BigInt64Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      mask[b * T + t] = t < valid[b] ? 1 : 0;
      pos[b * T + t] = BigInt(Math.min(t, valid[b] - 1));
    }
  }
  return {
    contextBLD: tensor("float32", [B, T, D], data),
    mask: tensor("bool", [B, T], mask),
    positionIds: tensor("int64", [B, T], pos),
  };
}

/** A deterministic random source for tests that must not depend on the default generator. */
export function lcgRandom(seed: number): RandomSource {
  let s = seed >>> 0 || 1;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  return {
    uniform: (n) => Float64Array.from({ length: n }, next),
    gumbel: (shape) =>
      tensor(
        "float32",
        shape,
        Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => -Math.log(-Math.log(next() || 1e-12))),
      ),
  };
}

/**
 * Builds the tiny model with `options`, generates once for a fixed two-prompt context (cfg 3, top-k 20, seeded;
 * `sampler` e.g. replays another run's codes) and returns the result with every traced tensor by name.
 */
export async function tracedTinyRun(
  model: ReturnType<typeof tinyModel>,
  options: HartTransformerOptions,
  sampler?: ReturnType<typeof replaySampler>,
) {
  const { cfg, quantizer, sd } = model;
  const transformer = await HartTransformer.fromStateDict(cfg, sd, quantizer, options);
  const seen = new Map<string, Tensor>();
  const result = await transformer.generate(tinyContext(cfg.contextToken, cfg.contextDim, [5, 3]), {
    cfg: 3,
    topK: 20,
    random: lcgRandom(21),
    sampler,
    trace: (n, t) => seen.set(n, t),
  });
  await transformer.release();
  return { result, seen };
}
