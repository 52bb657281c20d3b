import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { RELEASE_TRANSFORMER_CONFIG } from "@hart/ar";
import { createRng, HartError, type Rng, type StateDict, type Tensor, tensor, writeSafetensors } from "@hart/core";
import {
  type CheckpointSchema,
  qwen2Schema,
  type TensorSpec,
  tokenizerSchema,
  transformerSchema,
} from "./checkpoint-schema";

/** Sizes of the tiny model (all small; the image side is `patchNums.at(-1) · 2^(chMult.length − 1)`). */
export interface TinyModelOptions {
  /** Seed of every weight (default 0). Same seed → byte-identical checkpoints. */
  seed?: number;
  /** Scale schedule (default the HART tokenizer's 10-scale schedule up to 16 → 64×64 images). */
  patchNums?: number[];
  /** Context tokens of the transformer = the prompt length it is used with (default 300, the release's). */
  contextTokens?: number;
}

/** The configs of a tiny random HART, shaped like the official ones (and the golden sets'). */
export function tinyConfigs(options: TinyModelOptions = {}) {
  const patchNums = options.patchNums ?? [1, 2, 3, 4, 5, 6, 8, 10, 13, 16];
  const textHidden = 32;
  const tokenizer = {
    vocab_size: 512,
    z_channels: 8,
    ch: 32,
    dropout: 0.0,
    beta: 0.25,
    using_znorm: false,
    quant_conv_ks: 3,
    quant_resi: 0.5,
    share_quant_resi: 4,
    default_qresi_counts: 0,
    v_patch_nums: patchNums,
    test_mode: false,
    ch_mult: [1, 1, 1],
    levels: [8, 8, 8, 6, 5],
    quantizer_type: "var_hybrid",
    hybrid: true,
    disable_quant_resi: false,
    freeze_codebook_for_hybrid: true,
    double_decoder: false,
    model_type: "hart_autoencoder_with_disc",
    architectures: ["HARTAutoEncoderWithDisc"],
    torch_dtype: "float32",
  };
  // the release's llm/config.json, shrunk; the training-only fields a checkpoint's config.json also carries
  const llm = {
    ...RELEASE_TRANSFORMER_CONFIG,
    context_token: options.contextTokens ?? 300,
    context_dim: textHidden,
    depth: 2,
    embed_dim: 64,
    num_heads: 4,
    patch_nums: patchNums,
    diff_width: 32,
    diff_depth: 2,
    drop_rate: 0.0,
    attn_drop_rate: 0.0,
    drop_path_rate: 0.0,
    cond_drop_rate: 0.1,
    flash_if_available: true,
    fused_if_available: true,
    diffusion_batch_mul: 4,
    diffusion_head_repeats: 1,
    torch_dtype: "float32",
  };
  const textModel = {
    vocab_size: 512,
    hidden_size: textHidden,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 8,
    hidden_act: "silu",
    max_position_embeddings: 32768,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    tie_word_embeddings: false,
    attention_dropout: 0.0,
    use_sliding_window: false,
    sliding_window: null,
    max_window_layers: 2,
    initializer_range: 0.02,
    use_cache: true,
    bos_token_id: null,
    eos_token_id: null,
    torch_dtype: "float32",
    model_type: "qwen2",
    architectures: ["Qwen2Model"],
  };
  return { tokenizer, llm, textModel };
}

/** Random weights for a schema; each tensor draws from its own stream (`split(file:key)`), so order does not matter. */
function randomWeights(schema: CheckpointSchema, rng: Rng, file: string, levels: number[]): StateDict {
  const sd: StateDict = new Map();
  for (const [key, spec] of schema) sd.set(key, initTensor(key, spec, rng.split(`${file}:${key}`), levels));
  return sd;
}

function initTensor(key: string, spec: TensorSpec, rng: Rng, levels: number[]): Tensor {
  const n = spec.shape.reduce((a, d) => a * d, 1);
  const init = spec.init;
  switch (init.kind) {
    case "normal":
      return tensor(
        "float32",
        spec.shape,
        rng.normal(n).map((v) => v * init.std),
      );
    case "norm-weight":
      return tensor(
        "float32",
        spec.shape,
        rng.normal(n).map((v) => 1 + 0.1 * v),
      );
    case "zeros":
      return tensor(spec.dtype, spec.shape, spec.dtype === "int64" ? new BigInt64Array(n) : new Float32Array(n));
    case "levels":
      return tensor(
        "int64",
        spec.shape,
        BigInt64Array.from(levels, (l) => BigInt(l)),
      );
    case "causal-levels": {
      const L = levels.length;
      const out = new Float32Array(L * L);
      for (let i = 0; i < L; i++) for (let j = 0; j < L; j++) out[i * L + j] = levels[i] >= levels[j] ? 0 : -Infinity;
      return tensor("float32", spec.shape, out);
    }
    default:
      throw new HartError("internal", `no initialiser for ${key}`);
  }
}

/** The EMA copy: every learned tensor perturbed by 2 % (relative), buffers unchanged — like the golden sets. */
function emaOf(sd: StateDict, schema: CheckpointSchema, rng: Rng): StateDict {
  const out: StateDict = new Map();
  for (const [key, t] of sd) {
    if (!schema.get(key)?.parameter) {
      out.set(key, t);
      continue;
    }
    const noise = rng.split(`ema:${key}`).normal(t.data.length);
    out.set(
      key,
      tensor(
        "float32",
        t.shape,
        (t.data as Float32Array).map((v, i) => v * (1 + 0.02 * noise[i])),
      ),
    );
  }
  return out;
}

/** The bundled tiny Qwen2-format tokenizer files (see assets/tiny-qwen2-tokenizer/ORIGIN.md). */
function tinyTokenizerDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/hart.js → ../assets; src/model/tiny-model.ts → ../../assets
  for (const up of ["..", "../.."]) {
    const dir = resolve(here, up, "assets", "tiny-qwen2-tokenizer");
    if (existsSync(join(dir, "tokenizer.json"))) return dir;
  }
  throw new HartError(
    "internal",
    "the bundled tiny tokenizer (assets/tiny-qwen2-tokenizer) is missing from this install",
  );
}

const README = `# Tiny random HART

Written by \`hart create-tiny-model\`. Every weight is random (seeded): the model runs the whole
HART pipeline (Qwen2 text encoder → autoregressive transformer → residual diffusion → decoder) in
seconds, but **the pictures it makes are noise**. It exists to try the tools and to test them.

Layout (the official one): \`llm/\` (transformer + diffusion head, \`model.safetensors\` and the EMA
weights \`ema_model.safetensors\`), \`tokenizer/\` (the image tokenizer), \`text_model/\` (a 2-layer
Qwen2 with a small byte-level BPE tokenizer in Qwen2's format).
`;

/**
 * Writes a random-weight HART in the official layout to `dir` (which must not exist or be empty,
 * unless `force`). Everything is built in a temporary sibling folder and renamed into place at the end.
 */
export function createTinyModel(dir: string, options: TinyModelOptions & { force?: boolean } = {}): string {
  const target = resolve(dir);
  const info = statSync(target, { throwIfNoEntry: false });
  if (info && !info.isDirectory()) throw new HartError("argument", `${target} exists and is a file`);
  if (info && readdirSync(target).length > 0 && !options.force) {
    throw new HartError("argument", `${target} exists and is not empty (pass --force to replace it)`);
  }
  const configs = tinyConfigs(options);
  const rng = createRng(options.seed ?? 0);
  const patchNums = configs.llm.patch_nums;
  const levels = [
    ...new Array<number>(configs.llm.context_token).fill(0),
    ...patchNums.slice(1).flatMap((pn, i) => new Array<number>(pn * pn).fill(i + 1)),
  ];
  mkdirSync(dirname(target), { recursive: true });
  const temp = join(dirname(target), `.${basename(target)}.${process.pid}.tmp`);
  rmSync(temp, { recursive: true, force: true });
  try {
    const write = (sub: string, config: object, schema: CheckpointSchema, ema?: boolean) => {
      mkdirSync(join(temp, sub), { recursive: true });
      writeFileSync(join(temp, sub, "config.json"), `${JSON.stringify(config, null, 1)}\n`);
      const sd = randomWeights(schema, rng, sub, levels);
      writeSafetensors(join(temp, sub, "model.safetensors"), sd, { format: "pt" });
      if (ema) writeSafetensors(join(temp, sub, "ema_model.safetensors"), emaOf(sd, schema, rng), { format: "pt" });
    };
    write("tokenizer", configs.tokenizer, tokenizerSchema(configs.tokenizer));
    write("llm", configs.llm, transformerSchema(configs.llm, configs.tokenizer), true);
    write("text_model", configs.textModel, qwen2Schema(configs.textModel));
    for (const name of ["tokenizer.json", "tokenizer_config.json"]) {
      writeFileSync(join(temp, "text_model", name), readFileSync(join(tinyTokenizerDir(), name)));
    }
    writeFileSync(join(temp, "README.md"), README);
    if (info) rmSync(target, { recursive: true, force: true });
    renameSync(temp, target);
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
  return target;
}
