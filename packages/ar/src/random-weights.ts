/**
 * Random weights with the key names and shapes of `HARTForT2I.state_dict()`
 * for any config, for benchmarks and tests that need a model without its
 * checkpoint (the diffusion head and training-only buffers are left out).
 */
import { type StateDict, type Tensor, tensor, xorshiftUniform } from "@hart/core";
import { blocksAreModulated, type HartTransformerConfig, mlpHidden } from "./config";

/** Options of {@link randomTransformerStateDict}. */
export interface RandomTransformerWeightsOptions {
  /** Codebook size V (the tokenizer's `vocab_size`). */
  vocabSize: number;
  /** Latent channels Cvae (the tokenizer's `z_channels`). */
  latentChannels: number;
  /** Seed of the generator (default 0). */
  seed?: number;
}

/**
 * A state dict of random tensors: linear weights uniform with variance
 * 1/fan_in, biases ±0.05, norm weights 1 ± 0.1, embeddings and positions ±1.
 */
export function randomTransformerStateDict(
  cfg: HartTransformerConfig,
  options: RandomTransformerWeightsOptions,
): StateDict {
  const next = xorshiftUniform(options.seed ?? 0);
  const sd: StateDict = new Map();
  const C = cfg.embedDim;
  const V = options.vocabSize;
  const Cvae = options.latentChannels;
  const fill = (key: string, shape: readonly number[], scale: number, offset = 0): void => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = offset + scale * next();
    sd.set(key, tensor("float32", shape, data) as Tensor);
  };
  const linear = (key: string, out: number, inp: number, bias = true) => {
    fill(`${key}.weight`, [out, inp], Math.sqrt(3 / inp));
    if (bias) fill(`${key}.bias`, [out], 0.05);
  };
  const norm = (key: string, n: number) => fill(key, [n], 0.1, 1);
  const llama = cfg.attnType === "llama";

  linear("word_embed", C, Cvae);
  linear("context_embed", C, cfg.contextDim);
  if (cfg.useContextNorm) norm("context_norm.weight", cfg.contextDim);
  if (cfg.useTimestepEmbed) {
    linear("lvl_embed.mlp.0", C, 256);
    linear("lvl_embed.mlp.2", C, C);
  } else {
    fill("lvl_embed.weight", [cfg.patchNums.length, C], 1);
  }
  if (!llama) {
    const L = cfg.contextToken + cfg.patchNums.slice(1).reduce((a, p) => a + p * p, 0);
    fill("pos_start", [1, cfg.contextToken, C], 1);
    fill("pos_1LC", [1, L, C], 1);
  }
  const hidden = mlpHidden(cfg);
  for (let i = 0; i < cfg.depth; i++) {
    const p = `blocks.${i}`;
    linear(llama ? `${p}.attn.qkv_proj` : `${p}.attn.mat_qkv`, 3 * C, C, false);
    fill(`${p}.attn.q_bias`, [C], 0.05);
    fill(`${p}.attn.v_bias`, [C], 0.05);
    sd.set(`${p}.attn.zero_k_bias`, tensor("float32", [C], new Float32Array(C)));
    linear(`${p}.attn.proj`, C, C);
    if (cfg.attnL2Norm) fill(`${p}.attn.scale_mul_1H11`, [1, cfg.numHeads, 1, 1], 0.5, Math.log(4));
    if (cfg.mlpType === "llama") {
      linear(`${p}.ffn.gate_proj`, hidden, C, false);
      linear(`${p}.ffn.up_proj`, hidden, C, false);
      linear(`${p}.ffn.down_proj`, C, hidden, false);
    } else {
      linear(`${p}.ffn.fc1`, hidden, C);
      linear(`${p}.ffn.fc2`, C, hidden);
    }
    if (llama) norm(`${p}.ln_wo_grad.weight`, C);
    if (!cfg.disableAln) linear(`${p}.ada_lin.1`, 6 * C, C);
    else if (blocksAreModulated(cfg)) fill(`${p}.scale_shift_table`, [6, C], 0.1);
  }
  if (llama) norm("head_nm.ln_wo_grad.weight", C);
  linear("head_nm.ada_lin.1", 2 * C, C);
  linear("head", V, C);
  norm("decoder_norm.weight", C);
  if (!llama) fill("decoder_norm.bias", [C], 0.05);
  return sd;
}
