/**
 * The tensors (names, shapes, dtypes) of the three checkpoints of a HART model in the official layout,
 * derived from their config.json files the way the official constructors build them. `hart info` counts
 * parameters with it and `hart create-tiny-model` writes random weights for it; the tests check it
 * key for key against the golden checkpoints.
 */
import { HartError } from "@hart/core";

/** How a random tensor is initialised (the golden sets' recipe, README §1.4). */
export type Init =
  | { kind: "normal"; std: number } // N(0, std²)
  | { kind: "norm-weight" } // 1 + 0.1·N(0, 1)
  | { kind: "zeros" }
  | { kind: "levels" } // lvl_1L: level of each token position
  | { kind: "causal-levels" }; // attn_bias_for_masking: 0 where level(i) ≥ level(j), else −inf

/** One tensor of a checkpoint. */
export interface TensorSpec {
  shape: number[];
  dtype: "float32" | "int64";
  init: Init;
  /** Learned (counted as a parameter) or a buffer. */
  parameter: boolean;
}

/** Tensor specs by state-dict key, in construction order. */
export type CheckpointSchema = Map<string, TensorSpec>;

type Config = Record<string, unknown>;

function num(config: Config, key: string, file: string, fallback?: number): number {
  const v = config[key] ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new HartError("config", `${file}: "${key}" must be a number, got ${JSON.stringify(config[key])}`);
  }
  return v;
}

function ints(config: Config, key: string, file: string, fallback?: number[]): number[] {
  const v = config[key] ?? fallback;
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => Number.isInteger(x) && x > 0)) {
    throw new HartError("config", `${file}: "${key}" must be a list of positive integers, got ${JSON.stringify(v)}`);
  }
  return v as number[];
}

class Builder {
  readonly schema: CheckpointSchema = new Map();
  /** A Linear(in → out) layer: weight [out, in] ~ N(0, gain²/in), bias 0.05·N. */
  linear(name: string, inF: number, outF: number, bias = true, gain = 1): void {
    this.tensor(`${name}.weight`, [outF, inF], { kind: "normal", std: gain / Math.sqrt(inF) });
    if (bias) this.tensor(`${name}.bias`, [outF], { kind: "normal", std: 0.05 });
  }
  /** A Conv2d(in → out, k×k). */
  conv(name: string, inC: number, outC: number, k: number, gain = 1): void {
    this.tensor(`${name}.weight`, [outC, inC, k, k], { kind: "normal", std: gain / Math.sqrt(inC * k * k) });
    this.tensor(`${name}.bias`, [outC], { kind: "normal", std: 0.05 });
  }
  /** A norm with weight (and bias for GroupNorm/LayerNorm). */
  norm(name: string, c: number, bias: boolean): void {
    this.tensor(`${name}.weight`, [c], { kind: "norm-weight" });
    if (bias) this.tensor(`${name}.bias`, [c], { kind: "normal", std: 0.05 });
  }
  tensor(key: string, shape: number[], init: Init, dtype: TensorSpec["dtype"] = "float32", parameter = true): void {
    this.schema.set(key, { shape, dtype, init, parameter });
  }
}

/** `tokenizer/` (HARTAutoEncoderWithDisc, its `vae.` part) from `tokenizer/config.json`. */
export function tokenizerSchema(config: Config, file = "tokenizer/config.json"): CheckpointSchema {
  const ch = num(config, "ch", file, 160);
  const chMult = ints(config, "ch_mult", file, [1, 1, 2, 2, 4]);
  const z = num(config, "z_channels", file, 32);
  const vocab = num(config, "vocab_size", file, 4096);
  const patchNums = ints(config, "v_patch_nums", file);
  const ks = num(config, "quant_conv_ks", file, 3);
  const shareQuantResi = num(config, "share_quant_resi", file, 4);
  if (config.double_decoder) throw new HartError("unsupported", `${file}: double_decoder is not supported`);
  const n = chMult.length;
  const b = new Builder();
  const resnet = (name: string, cin: number, cout: number) => {
    b.norm(`${name}.norm1`, cin, true);
    b.conv(`${name}.conv1`, cin, cout, 3);
    b.norm(`${name}.norm2`, cout, true);
    b.conv(`${name}.conv2`, cout, cout, 3);
    if (cin !== cout) b.conv(`${name}.nin_shortcut`, cin, cout, 1);
  };
  const attn = (name: string, c: number) => {
    b.norm(`${name}.norm`, c, true);
    b.conv(`${name}.qkv`, c, 3 * c, 1);
    b.conv(`${name}.proj_out`, c, c, 1);
  };
  // Encoder: 2 res blocks per level (attention after each on the last level), stride-2 conv between levels.
  b.conv("vae.encoder.conv_in", 3, ch, 3);
  let cin = ch;
  for (let i = 0; i < n; i++) {
    const cout = ch * chMult[i];
    for (let j = 0; j < 2; j++) {
      resnet(`vae.encoder.down.${i}.block.${j}`, cin, cout);
      cin = cout;
      if (i === n - 1) attn(`vae.encoder.down.${i}.attn.${j}`, cin);
    }
    if (i < n - 1) b.conv(`vae.encoder.down.${i}.downsample.conv`, cin, cin, 3);
  }
  resnet("vae.encoder.mid.block_1", cin, cin);
  attn("vae.encoder.mid.attn_1", cin);
  resnet("vae.encoder.mid.block_2", cin, cin);
  b.norm("vae.encoder.norm_out", cin, true);
  b.conv("vae.encoder.conv_out", cin, z, 3);
  // Decoder: mirror image with 3 res blocks per level and nearest-×2 + conv between levels.
  cin = ch * chMult[n - 1];
  b.conv("vae.decoder.conv_in", z, cin, 3);
  resnet("vae.decoder.mid.block_1", cin, cin);
  attn("vae.decoder.mid.attn_1", cin);
  resnet("vae.decoder.mid.block_2", cin, cin);
  for (let i = n - 1; i >= 0; i--) {
    const cout = ch * chMult[i];
    for (let j = 0; j < 3; j++) {
      resnet(`vae.decoder.up.${i}.block.${j}`, cin, cout);
      cin = cout;
      if (i === n - 1) attn(`vae.decoder.up.${i}.attn.${j}`, cin);
    }
    if (i > 0) b.conv(`vae.decoder.up.${i}.upsample.conv`, cin, cin, 3);
  }
  b.norm("vae.decoder.norm_out", cin, true);
  b.conv("vae.decoder.conv_out", cin, 3, 3);
  b.conv("vae.quant_conv", z, z, ks);
  b.conv("vae.post_quant_conv", z, z, ks);
  b.tensor("vae.quantize.ema_vocab_hit_SV", [patchNums.length, vocab], { kind: "zeros" }, "float32", false);
  b.tensor("vae.quantize.embedding.weight", [vocab, z], { kind: "normal", std: 1 });
  for (let k = 0; k < shareQuantResi; k++) b.conv(`vae.quantize.quant_resi.qresi_ls.${k}`, z, z, 3, 0.5);
  return b.schema;
}

/** `llm/` (HARTForT2I, diffusion head included) from `llm/config.json` and the tokenizer's config. */
export function transformerSchema(config: Config, tokenizerConfig: Config, file = "llm/config.json"): CheckpointSchema {
  const ctx = num(config, "context_token", file);
  const ctxDim = num(config, "context_dim", file);
  const depth = num(config, "depth", file);
  const C = num(config, "embed_dim", file);
  const heads = num(config, "num_heads", file);
  const mlpRatio = num(config, "mlp_ratio", file, 4);
  const patchNums = ints(config, "patch_nums", file);
  const cvae = num(tokenizerConfig, "z_channels", "tokenizer/config.json", 32);
  const vocab = num(tokenizerConfig, "vocab_size", "tokenizer/config.json", 4096);
  const diffWidth = num(config, "diff_width", file);
  const diffDepth = num(config, "diff_depth", file);
  if ((config.attn_type ?? "gpt2") !== "llama") {
    throw new HartError(
      "unsupported",
      `${file}: attn_type ${JSON.stringify(config.attn_type)} (only "llama" is supported)`,
    );
  }
  if (config.use_cross_attn) throw new HartError("unsupported", `${file}: use_cross_attn is not supported`);
  if (C % heads !== 0) throw new HartError("config", `${file}: embed_dim ${C} is not divisible by num_heads ${heads}`);
  const L = ctx + patchNums.slice(1).reduce((s, pn) => s + pn * pn, 0);
  const b = new Builder();
  b.linear("word_embed", cvae, C);
  b.linear("context_embed", ctxDim, C);
  if (config.use_context_norm) b.norm("context_norm", ctxDim, false);
  if (config.use_timestep_embed) {
    b.linear("lvl_embed.mlp.0", 256, C);
    b.linear("lvl_embed.mlp.2", C, C);
  } else {
    b.tensor("lvl_embed.weight", [patchNums.length, C], { kind: "normal", std: 1 });
  }
  const mlpType = config.mlp_type ?? "gpt2";
  for (let i = 0; i < depth; i++) {
    const p = `blocks.${i}`;
    if (config.attn_l2_norm) b.tensor(`${p}.attn.scale_mul_1H11`, [1, heads, 1, 1], { kind: "normal", std: 0.05 });
    b.linear(`${p}.attn.qkv_proj`, C, 3 * C, false);
    b.tensor(`${p}.attn.q_bias`, [C], { kind: "normal", std: 0.05 });
    b.tensor(`${p}.attn.v_bias`, [C], { kind: "normal", std: 0.05 });
    b.tensor(`${p}.attn.zero_k_bias`, [C], { kind: "zeros" }, "float32", false);
    b.linear(`${p}.attn.proj`, C, C);
    if (mlpType === "llama") {
      const hidden = Math.floor(Math.floor((C * mlpRatio * 2) / 3 + 255) / 256) * 256;
      b.linear(`${p}.ffn.gate_proj`, C, hidden, false);
      b.linear(`${p}.ffn.up_proj`, C, hidden, false);
      b.linear(`${p}.ffn.down_proj`, hidden, C, false);
    } else if (mlpType === "gpt2") {
      const hidden = Math.round(C * mlpRatio);
      b.linear(`${p}.ffn.fc1`, C, hidden);
      b.linear(`${p}.ffn.fc2`, hidden, C);
    } else {
      throw new HartError("unsupported", `${file}: mlp_type ${JSON.stringify(mlpType)}`);
    }
    b.norm(`${p}.ln_wo_grad`, C, false);
    if (!config.disable_aln) b.linear(`${p}.ada_lin.1`, C, 6 * C);
    else if (config.shared_aln) b.tensor(`${p}.scale_shift_table`, [6, C], { kind: "normal", std: 1 / Math.sqrt(C) });
  }
  b.tensor("lvl_1L", [1, L], { kind: "levels" }, "int64", false);
  b.tensor("attn_bias_for_masking", [1, 1, L, L], { kind: "causal-levels" }, "float32", false);
  b.norm("head_nm.ln_wo_grad", C, false);
  b.linear("head_nm.ada_lin.1", C, 2 * C);
  b.linear("head", C, vocab, true, 0.4);
  b.norm("decoder_norm", C, false);
  // The residual diffusion head (SimpleMLPAdaLN).
  const d = "diffloss.net";
  b.linear(`${d}.time_embed.mlp.0`, 256, diffWidth);
  b.linear(`${d}.time_embed.mlp.2`, diffWidth, diffWidth);
  b.linear(`${d}.cond_embed`, C, diffWidth);
  b.linear(`${d}.input_proj`, cvae, diffWidth);
  for (let i = 0; i < diffDepth; i++) {
    b.norm(`${d}.res_blocks.${i}.in_ln`, diffWidth, true);
    b.linear(`${d}.res_blocks.${i}.mlp.0`, diffWidth, diffWidth);
    b.linear(`${d}.res_blocks.${i}.mlp.2`, diffWidth, diffWidth);
    b.linear(`${d}.res_blocks.${i}.adaLN_modulation.1`, diffWidth, 3 * diffWidth);
  }
  b.linear(`${d}.final_layer.linear`, diffWidth, 2 * cvae, true, 0.3);
  b.linear(`${d}.final_layer.adaLN_modulation.1`, diffWidth, 2 * diffWidth);
  return b.schema;
}

/**
 * A Qwen2 text model (`Qwen2Model` key names, no LM head) from its config.json. For Qwen2-VL configs
 * only the language model is described (the vision tower is not used by HART).
 */
export function qwen2Schema(config: Config, file = "text_model/config.json"): CheckpointSchema {
  const hidden = num(config, "hidden_size", file);
  const layers = num(config, "num_hidden_layers", file);
  const heads = num(config, "num_attention_heads", file);
  const kvHeads = num(config, "num_key_value_heads", file, heads);
  const inter = num(config, "intermediate_size", file);
  const vocab = num(config, "vocab_size", file);
  const headDim = num(config, "head_dim", file, hidden / heads);
  const b = new Builder();
  b.tensor("embed_tokens.weight", [vocab, hidden], { kind: "normal", std: 1 });
  for (let i = 0; i < layers; i++) {
    const p = `layers.${i}`;
    b.norm(`${p}.input_layernorm`, hidden, false);
    b.linear(`${p}.self_attn.q_proj`, hidden, heads * headDim);
    b.linear(`${p}.self_attn.k_proj`, hidden, kvHeads * headDim);
    b.linear(`${p}.self_attn.v_proj`, hidden, kvHeads * headDim);
    b.linear(`${p}.self_attn.o_proj`, heads * headDim, hidden, false);
    b.norm(`${p}.post_attention_layernorm`, hidden, false);
    b.linear(`${p}.mlp.gate_proj`, hidden, inter, false);
    b.linear(`${p}.mlp.up_proj`, hidden, inter, false);
    b.linear(`${p}.mlp.down_proj`, inter, hidden, false);
  }
  b.norm("norm", hidden, false);
  return b.schema;
}

/** Number of learned parameters (buffers excluded) of the tensors whose key passes `filter`. */
export function countParameters(schema: CheckpointSchema, filter: (key: string) => boolean = () => true): number {
  let n = 0;
  for (const [key, spec] of schema) if (spec.parameter && filter(key)) n += spec.shape.reduce((a, d) => a * d, 1);
  return n;
}
