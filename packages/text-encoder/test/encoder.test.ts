/**
 * The encoder end to end on the golden sets' tiny Qwen2 text model (real
 * tokenizer files in the Qwen2 format), checked against an independent
 * float64 forward: padding on either side, an all-pad row, the system prompt,
 * part-by-part compilation, 16-bit weight storage, checkpoint key prefixes,
 * and the errors a user can run into.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  HartError,
  readSafetensors,
  relativeError,
  type StateDict,
  type Tensor,
  tensor,
  toBFloat16,
  toFloat16,
  toFloat32,
  writeSafetensors,
} from "@hart/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type EncodedPrompts,
  PromptTokenizer,
  type Qwen2Config,
  Qwen2TextEncoder,
  readQwen2Config,
} from "../src/index";
import { qwen2Reference, toleranceRatio } from "./reference";

const GOLDEN = process.env.HART_GOLDEN_DIR ?? join(import.meta.dirname, "../../../../shared/golden");
const MODEL = join(GOLDEN, "main", "text_model");
const PROMPTS = ["a photo of a cat", "", "生活 😂 on  the\nbeach"];

let config: Qwen2Config;
let weights: StateDict;
let encoder: Qwen2TextEncoder;
const tmp = mkdtempSync(join(tmpdir(), "hart-text-enc-"));

beforeAll(async () => {
  config = readQwen2Config(MODEL);
  weights = readSafetensors(join(MODEL, "model.safetensors"));
  encoder = await Qwen2TextEncoder.fromPretrained(MODEL);
});
afterAll(async () => {
  await encoder?.release();
  rmSync(tmp, { recursive: true, force: true });
});

/** The model's input for an encode call: system ids (if any) + padded tokens, and its mask. */
function modelInput(out: EncodedPrompts, systemIds: number[]): { ids: Tensor; mask: Tensor } {
  const [B, L] = out.tokens.shape;
  const S = systemIds.length + L;
  const ids = new BigInt64Array(B * S);
  const mask = new Uint8Array(B * S);
  for (let b = 0; b < B; b++) {
    systemIds.forEach((id, i) => {
      ids[b * S + i] = BigInt(id);
      mask[b * S + i] = 1;
    });
    ids.set(out.tokens.data.subarray(b * L, (b + 1) * L), b * S + systemIds.length);
    mask.set(out.mask.data.subarray(b * L, (b + 1) * L), b * S + systemIds.length);
  }
  return { ids: tensor("int64", [B, S], ids), mask: tensor("bool", [B, S], mask) };
}

/** The reference's prompt positions `[B, L, D]` for an encode result. */
function expected(out: EncodedPrompts, systemIds: number[], sd: StateDict = weights): Float64Array {
  const { ids, mask } = modelInput(out, systemIds);
  const full = qwen2Reference(config, sd, ids, mask);
  const [B, L] = out.tokens.shape;
  const D = config.hiddenSize;
  const S = systemIds.length + L;
  const kept = new Float64Array(B * L * D);
  for (let b = 0; b < B; b++) kept.set(full.subarray((b * S + systemIds.length) * D, (b + 1) * S * D), b * L * D);
  return kept;
}

describe("Qwen2TextEncoder.encode", () => {
  it("matches a float64 forward with the system prompt (right padding, an all-pad row)", async () => {
    const tok = encoder.tokenizer!;
    const out = await encoder.encode(PROMPTS, { maxTokenLength: 12 });
    expect(out.tokens.shape).toEqual([3, 12]);
    expect(out.contextBLD.shape).toEqual([3, 12, config.hiddenSize]);
    const pad = tok.settings.padId;
    PROMPTS.forEach((p, b) => {
      const ids = tok.tokenize(p, 12);
      const row = Array.from(out.tokens.data.subarray(b * 12, (b + 1) * 12), Number);
      expect(row).toEqual([...ids, ...Array(12 - ids.length).fill(pad)]);
      expect(Array.from(out.mask.data.subarray(b * 12, (b + 1) * 12))).toEqual(row.map((id) => (id !== pad ? 1 : 0)));
      const positions = Array.from(out.positionIds.data.subarray(b * 12, (b + 1) * 12), Number);
      expect(positions).toEqual(row.map((_, i) => Math.min(i, ids.length - 1)));
    });
    // The system prompt is truncated to maxTokenLength like any prompt (this tiny vocabulary needs > 300 tokens for it).
    const systemIds = tok.tokenize(encoder.systemPrompt, 12);
    expect(systemIds).toHaveLength(12);
    expect(toleranceRatio(out.contextBLD.data, expected(out, systemIds))).toBeLessThan(1);
  });

  it("matches a float64 forward without the system prompt (the empty prompt attends uniformly, as HF eager)", async () => {
    const out = await encoder.encode(PROMPTS, { maxTokenLength: 10, useSystemPrompt: false });
    expect(Array.from(out.mask.data.subarray(10, 20))).toEqual(Array(10).fill(0));
    expect(Array.from(out.positionIds.data.subarray(10, 20), Number)).toEqual(Array(10).fill(-1));
    expect(toleranceRatio(out.contextBLD.data, expected(out, []))).toBeLessThan(1);
  });

  it("pads on the left when tokenizer_config.json says so", async () => {
    const tokenizerJson = JSON.parse(readFileSync(join(MODEL, "tokenizer.json"), "utf8"));
    const tokenizerConfig = JSON.parse(readFileSync(join(MODEL, "tokenizer_config.json"), "utf8"));
    const left = await Qwen2TextEncoder.fromWeights(config, weights, {
      tokenizer: PromptTokenizer.fromJson(tokenizerJson, { ...tokenizerConfig, padding_side: "left" }),
    });
    try {
      const out = await left.encode(PROMPTS.slice(0, 1), { maxTokenLength: 12 });
      const n = left.tokenizer!.tokenize(PROMPTS[0]).length;
      expect(Array.from(out.mask.data)).toEqual([...Array(12 - n).fill(0), ...Array(n).fill(1)]);
      expect(Array.from(out.positionIds.data, Number)).toEqual([
        ...Array(12 - n).fill(-1),
        ...Array.from({ length: n }, (_, i) => i),
      ]);
      const systemIds = left.tokenizer!.tokenize(left.systemPrompt, 12);
      expect(toleranceRatio(out.contextBLD.data, expected(out, systemIds))).toBeLessThan(1);
    } finally {
      await left.release();
    }
  });

  it("gives the same numbers when compiled one layer per session", async () => {
    const parts: number[] = [];
    const split = await Qwen2TextEncoder.fromWeights(config, weights, {
      tokenizer: encoder.tokenizer!,
      partBytes: 1,
      onProgress: (e) => parts.push(e.step!),
    });
    try {
      expect(parts).toEqual([1, 2, 3]); // embedding, layer 0, layer 1 + final norm
      const a = await encoder.encode(PROMPTS, { maxTokenLength: 9 });
      const b = await split.encode(PROMPTS, { maxTokenLength: 9 });
      expect(toleranceRatio(b.contextBLD.data, a.contextBLD.data, 1e-6, 1e-6)).toBeLessThan(1);
    } finally {
      await split.release();
    }
  });

  for (const [dtype, round] of [
    ["float16", toFloat16],
    ["bfloat16", toBFloat16],
  ] as const) {
    it(`stores matrices as ${dtype} and computes in float32`, async () => {
      const small = await Qwen2TextEncoder.fromWeights(config, weights, { tokenizer: encoder.tokenizer!, dtype });
      try {
        const out = await small.encode(PROMPTS, { maxTokenLength: 8, useSystemPrompt: false });
        // Reference: the same rounding of the projections and embedding, norms and biases in full precision.
        const rounded: StateDict = new Map(
          [...weights].map(([k, t]) => [k, /(proj|embed_tokens)\.weight$/.test(k) ? toFloat32(round(t)) : t]),
        );
        expect(toleranceRatio(out.contextBLD.data, expected(out, [], rounded))).toBeLessThan(1);
        expect(toleranceRatio(out.contextBLD.data, expected(out, []))).toBeGreaterThan(1); // the rounding is visible
      } finally {
        await small.release();
      }
    });
  }

  it("int8: quantized projections stay within int8 accuracy of the float32 encoder", async () => {
    const int8 = await Qwen2TextEncoder.fromWeights(config, weights, { tokenizer: encoder.tokenizer!, dtype: "int8" });
    try {
      const a = await encoder.encode(PROMPTS, { maxTokenLength: 8 });
      const b = await int8.encode(PROMPTS, { maxTokenLength: 8 });
      const err = relativeError(b.contextBLD, a.contextBLD);
      console.log(`text encoder int8 vs float32: relative error ${err.toExponential(2)}`);
      expect(err).toBeLessThan(5e-2);
      expect(err).toBeGreaterThan(1e-5); // the quantization is visible
      expect(Array.from(b.mask.data)).toEqual(Array.from(a.mask.data));
    } finally {
      await int8.release();
    }
  });

  it("reads Qwen2ForCausalLM-style checkpoints (model. prefix, lm_head ignored)", async () => {
    const dir = join(tmp, "prefixed");
    const prefixed: StateDict = new Map([...weights].map(([k, t]) => [`model.${k}`, t]));
    prefixed.set("lm_head.weight", weights.get("embed_tokens.weight")!);
    mkdirSync(dir);
    writeSafetensors(join(dir, "model.safetensors"), prefixed);
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"])
      symlinkSync(join(MODEL, f), join(dir, f));
    const other = await Qwen2TextEncoder.fromPretrained(dir);
    try {
      const a = await encoder.encode(PROMPTS.slice(0, 1), { maxTokenLength: 6 });
      const b = await other.encode(PROMPTS.slice(0, 1), { maxTokenLength: 6 });
      expect(Array.from(b.contextBLD.data)).toEqual(Array.from(a.contextBLD.data));
    } finally {
      await other.release();
    }
  });
});

describe("Qwen2TextEncoder checkpoints", () => {
  it("reads a sharded safetensors checkpoint part by part", async () => {
    const dir = join(tmp, "sharded");
    mkdirSync(dir);
    const keys = [...weights.keys()].sort();
    const weightMap: Record<string, string> = {};
    const shards = [keys.slice(0, keys.length / 2), keys.slice(keys.length / 2)];
    shards.forEach((shard, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(join(dir, file), new Map(shard.map((k) => [k, weights.get(k)!])));
      for (const k of shard) weightMap[k] = file;
    });
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"])
      symlinkSync(join(MODEL, f), join(dir, f));
    const sharded = await Qwen2TextEncoder.fromPretrained(dir, { partBytes: 1 });
    try {
      const a = await encoder.encode(PROMPTS, { maxTokenLength: 7 });
      const b = await sharded.encode(PROMPTS, { maxTokenLength: 7 });
      expect(toleranceRatio(b.contextBLD.data, a.contextBLD.data, 1e-6, 1e-6)).toBeLessThan(1);
    } finally {
      await sharded.release();
    }
  });
});

describe("Qwen2TextEncoder errors", () => {
  it("rejects an empty prompt list, non-strings and a bad maxTokenLength", async () => {
    await expect(encoder.encode([])).rejects.toThrow(/non-empty array/);
    await expect(encoder.encode("a cat" as unknown as string[])).rejects.toThrow(/non-empty array/);
    await expect(encoder.encode(["a cat", 42 as unknown as string])).rejects.toThrow(/prompts\[1\] is number/);
    await expect(encoder.encode(["a cat"], { maxTokenLength: 0 })).rejects.toThrow(/maxTokenLength/);
    await expect(encoder.encode(["a cat"], { maxTokenLength: 2.5 })).rejects.toThrow(HartError);
  });

  it("rejects out-of-vocabulary ids and mismatched masks", async () => {
    const ids = tensor("int64", [1, 2], BigInt64Array.of(1n, BigInt(config.vocabSize)));
    const mask = tensor("bool", [1, 2], Uint8Array.of(1, 1));
    await expect(encoder.encodeIds(ids, mask)).rejects.toThrow(/outside the vocabulary/);
    const ok = tensor("int64", [1, 2], BigInt64Array.of(1n, 2n));
    await expect(encoder.encodeIds(ok, tensor("bool", [1, 3], Uint8Array.of(1, 1, 1)))).rejects.toThrow(
      /mask has shape/,
    );
  });

  it("names the missing tokenizer files of a model folder", async () => {
    const dir = join(tmp, "no-tokenizer");
    mkdirSync(dir);
    for (const f of ["config.json", "model.safetensors"]) symlinkSync(join(MODEL, f), join(dir, f));
    await expect(Qwen2TextEncoder.fromPretrained(dir)).rejects.toThrow(/tokenizer\.json not found/);
  });

  it("names a missing or misshapen weight", async () => {
    const missing = new Map(weights);
    missing.delete("layers.1.mlp.up_proj.weight");
    await expect(Qwen2TextEncoder.fromWeights(config, missing)).rejects.toThrow(/layers\.1\.mlp\.up_proj\.weight/);
    const wrong = new Map(weights);
    wrong.set("norm.weight", tensor("float32", [3], new Float32Array(3)));
    await expect(Qwen2TextEncoder.fromWeights(config, wrong)).rejects.toThrow(/"norm\.weight".*\[3\]/);
  });

  it("rejects a config of another model type", () => {
    const dir = join(tmp, "llama");
    mkdirSync(dir);
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({ ...readJson(join(MODEL, "config.json")), model_type: "llama" }),
    );
    expect(() => readQwen2Config(dir)).toThrow(/model_type/);
  });

  it("refuses to run after release", async () => {
    const e = await Qwen2TextEncoder.fromWeights(config, weights, { tokenizer: encoder.tokenizer! });
    await e.release();
    await expect(e.encode(["a cat"])).rejects.toThrow(/after release/);
  });
});

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(file, "utf8"));
}
