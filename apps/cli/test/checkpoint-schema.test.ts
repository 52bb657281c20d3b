import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { readConfig, readSafetensors, type StateDict } from "@hart/core";
import { describe, expect, it } from "vitest";
import { type CheckpointSchema, qwen2Schema, tokenizerSchema, transformerSchema } from "../src/model/checkpoint-schema";

const GOLDEN = resolve(process.env.HART_GOLDEN_DIR ?? join(import.meta.dirname, "../../../../shared/golden"));
const sets = existsSync(GOLDEN) ? readdirSync(GOLDEN).filter((s) => existsSync(join(GOLDEN, s, "llm"))) : [];

function layout(sd: StateDict) {
  return [...sd].map(([k, t]) => `${k} ${t.dtype} [${t.shape}]`).sort();
}
function described(schema: CheckpointSchema) {
  return [...schema].map(([k, s]) => `${k} ${s.dtype} [${s.shape}]`).sort();
}

describe.each(sets)("checkpoint schema vs the golden %s set", (set) => {
  const dir = join(GOLDEN, set);
  it("tokenizer/", () => {
    const schema = tokenizerSchema(readConfig(join(dir, "tokenizer")));
    expect(described(schema)).toEqual(layout(readSafetensors(join(dir, "tokenizer", "model.safetensors"))));
  });
  it("llm/", () => {
    const schema = transformerSchema(readConfig(join(dir, "llm")), readConfig(join(dir, "tokenizer")));
    expect(described(schema)).toEqual(layout(readSafetensors(join(dir, "llm", "model.safetensors"))));
  });
  it("text_model/", () => {
    const schema = qwen2Schema(readConfig(join(dir, "text_model")));
    expect(described(schema)).toEqual(layout(readSafetensors(join(dir, "text_model", "model.safetensors"))));
  });
});
