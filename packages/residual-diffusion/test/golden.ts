import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { readSafetensors, type StateDict } from "@hart/core";

/** Where the golden sets live (`$HART_GOLDEN_DIR`, default `../shared/golden` beside the repo). */
export const GOLDEN_DIR = resolve(
  process.env.HART_GOLDEN_DIR ?? join(import.meta.dirname, "../../../../shared/golden"),
);

/** Names of the golden sets that have a `diffusion_sample` case. */
export function goldenSets(): string[] {
  if (!existsSync(GOLDEN_DIR)) return [];
  return readdirSync(GOLDEN_DIR)
    .filter((name) => existsSync(join(GOLDEN_DIR, name, "cases", "diffusion_sample.json")))
    .sort();
}

/** The fields of a `diffusion_sample.json` the tests read. */
export interface DiffusionCaseJson {
  cfg: { cfg: number; temperature: number };
  nocfg: { cfg: number; temperature: number };
  schedule: Record<string, unknown>;
}

/** A case's JSON and tensors. */
export function readCase(set: string, name: string): { json: DiffusionCaseJson; tensors: StateDict } {
  const base = join(GOLDEN_DIR, set, "cases", name);
  return { json: JSON.parse(readFileSync(`${base}.json`, "utf8")), tensors: readSafetensors(`${base}.safetensors`) };
}

/** The set's `llm/` folder. */
export const llmDir = (set: string) => join(GOLDEN_DIR, set, "llm");
