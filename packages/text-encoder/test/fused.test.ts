/**
 * The fused text-encoder graphs (the CUDA forms: SimplifiedLayerNormalization, SkipSimplifiedLayerNormalization
 * for every residual add + norm, RotaryEmbedding, MultiHeadAttention with the mask as attention_bias) compute the
 * plain graphs' function. Every op has a CPU kernel, so both run here in float32 on the golden sets' tiny Qwen2.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { readSafetensors, relativeError, type StateDict, type Tensor } from "@hart/core";
import { ModelProtoSchema } from "onnx-buf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildQwen2Part,
  PromptTokenizer,
  planParts,
  type Qwen2Config,
  Qwen2TextEncoder,
  readQwen2Config,
  stateDictSource,
  takePart,
} from "../src/index";

const GOLDEN = process.env.HART_GOLDEN_DIR ?? join(import.meta.dirname, "../../../../shared/golden");
const MODEL = join(GOLDEN, "main", "text_model");
const PROMPTS = ["a photo of a cat", "", "生活 😂 on  the\nbeach"];

/** ‖a − b‖₂ / ‖b‖₂, printed so the run shows the measured error. */
function relErr(label: string, actual: Tensor, expected: Tensor): number {
  const err = relativeError(actual, expected);
  console.log(`${label}: relative error ${err.toExponential(2)}`);
  return err;
}

let config: Qwen2Config;
let weights: StateDict;
let plain: Qwen2TextEncoder;
let fused: Qwen2TextEncoder;

beforeAll(async () => {
  config = readQwen2Config(MODEL);
  weights = readSafetensors(join(MODEL, "model.safetensors"));
  plain = await Qwen2TextEncoder.fromPretrained(MODEL);
  fused = await Qwen2TextEncoder.fromWeights(config, weights, { tokenizer: plain.tokenizer!, graphFlavour: "fused" });
});
afterAll(async () => {
  await plain?.release();
  await fused?.release();
});

describe("fused Qwen2 text encoder", () => {
  it("emits the fused operators (and the plain form none of them)", () => {
    const [plan] = planParts(config, "float32", 2 ** 40); // the whole model in one part
    const opsOf = (flavour: "plain" | "fused") => {
      const part = takePart(config, plan, stateDictSource(weights), "float32", "golden");
      const model = buildQwen2Part(config, part, { flavour, precision: "float32" });
      const counts = new Map<string, number>();
      for (const n of fromBinary(ModelProtoSchema, model.bytes).graph!.node) {
        counts.set(n.opType, (counts.get(n.opType) ?? 0) + 1);
      }
      return counts;
    };
    const L = config.numLayers;
    const fusedOps = opsOf("fused");
    expect(fusedOps.get("SimplifiedLayerNormalization")).toBe(1); // the first layer's input norm
    expect(fusedOps.get("SkipSimplifiedLayerNormalization")).toBe(2 * L); // every other norm, final norm included
    expect(fusedOps.get("RotaryEmbedding")).toBe(2 * L);
    expect(fusedOps.get("MultiHeadAttention")).toBe(L);
    const plainOps = opsOf("plain");
    for (const op of ["SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization", "RotaryEmbedding"]) {
      expect(plainOps.has(op)).toBe(false);
    }
  });

  it("matches the plain graphs with the system prompt (right padding, an all-pad row)", async () => {
    const a = await plain.encode(PROMPTS, { maxTokenLength: 12 });
    const b = await fused.encode(PROMPTS, { maxTokenLength: 12 });
    expect(relErr("text encoder fused vs plain (system prompt)", b.contextBLD, a.contextBLD)).toBeLessThan(1e-5);
  });

  it("matches without the system prompt (fully masked rows attend uniformly in both)", async () => {
    const a = await plain.encode(PROMPTS, { maxTokenLength: 10, useSystemPrompt: false });
    const b = await fused.encode(PROMPTS, { maxTokenLength: 10, useSystemPrompt: false });
    expect(relErr("text encoder fused vs plain (no system prompt)", b.contextBLD, a.contextBLD)).toBeLessThan(1e-5);
  });

  it("matches with left padding and compiled one layer per session (a residual add pending across parts)", async () => {
    const tokenizerJson = JSON.parse(readFileSync(join(MODEL, "tokenizer.json"), "utf8"));
    const tokenizerConfig = JSON.parse(readFileSync(join(MODEL, "tokenizer_config.json"), "utf8"));
    const tokenizer = PromptTokenizer.fromJson(tokenizerJson, { ...tokenizerConfig, padding_side: "left" });
    const left = await Qwen2TextEncoder.fromWeights(config, weights, { tokenizer });
    const leftFused = await Qwen2TextEncoder.fromWeights(config, weights, {
      tokenizer,
      graphFlavour: "fused",
      partBytes: 1,
    });
    try {
      const a = await left.encode(PROMPTS, { maxTokenLength: 12 });
      const b = await leftFused.encode(PROMPTS, { maxTokenLength: 12 });
      expect(
        relErr("text encoder fused (per-layer parts) vs plain (left padding)", b.contextBLD, a.contextBLD),
      ).toBeLessThan(1e-5);
    } finally {
      await left.release();
      await leftFused.release();
    }
  });
});
