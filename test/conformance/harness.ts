/**
 * The golden conformance harness: finds every golden set under
 * `$HART_GOLDEN_DIR` (default `../shared/golden`), loads its cases and lets
 * case runners compare tensors, keeping the worst relative error per case.
 * Everything is derived from the set's own config and case files.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { readSafetensors, type StateDict, type Tensor } from "@hart/core";

/** Where the golden sets live. */
export const GOLDEN_DIR = resolve(process.env.HART_GOLDEN_DIR ?? join(import.meta.dirname, "../../../shared/golden"));

/** One golden set: a folder with `llm/`, `tokenizer/`, `text_model/` and `cases/`. */
export interface GoldenSet {
  name: string;
  dir: string;
  /** Case names found in `cases/` (the stems of `<case>.json` files with a `.safetensors` beside them). */
  cases: string[];
}

/** Lists every set directory with the documented layout (a `cases/` folder of json+safetensors pairs). */
export function findGoldenSets(dir = GOLDEN_DIR): GoldenSet[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => statSync(join(dir, name)).isDirectory() && existsSync(join(dir, name, "cases")))
    .sort()
    .map((name) => {
      const casesDir = join(dir, name, "cases");
      const cases = readdirSync(casesDir)
        .filter((f) => f.endsWith(".json") && existsSync(join(casesDir, f.replace(/\.json$/, ".safetensors"))))
        .map((f) => f.replace(/\.json$/, ""))
        .sort();
      return { name, dir: join(dir, name), cases };
    });
}

/** Reads a JSON file. */
export function readJson<T = Record<string, unknown>>(file: string): T {
  return JSON.parse(readFileSync(file, "utf8")) as T;
}

/** Comparison options: `rtol` bounds ‖Δ‖/‖ref‖; `elementwise` also checks |a−b| ≤ atol + rtolElem·|b|. */
export interface CompareOptions {
  rtol?: number;
  atol?: number;
  rtolElem?: number;
  /** Integers must match exactly (the default for integer tensors). */
  exact?: boolean;
}

/** The result of one tensor comparison. */
export interface Comparison {
  label: string;
  relErr: number;
  maxAbs: number;
  ok: boolean;
  message?: string;
}

function asNumbers(t: Tensor): Float64Array {
  const d = t.data as ArrayLike<number | bigint>;
  const out = new Float64Array(d.length);
  for (let i = 0; i < d.length; i++) out[i] = Number(d[i]);
  return out;
}

/** What a case runner gets: the set, the case's JSON and tensors, and a comparer that records results. */
export class CaseContext {
  readonly results: Comparison[] = [];
  readonly json: Record<string, any>;
  readonly tensors: StateDict;
  constructor(
    readonly set: GoldenSet,
    readonly caseName: string,
  ) {
    const base = join(set.dir, "cases", caseName);
    this.json = readJson(`${base}.json`);
    this.tensors = readSafetensors(`${base}.safetensors`);
  }

  /** A recorded tensor by key (throws naming the key when absent). */
  ref(key: string): Tensor {
    const t = this.tensors.get(key);
    if (!t) throw new Error(`${this.set.name}/${this.caseName}: no tensor "${key}" in the case file`);
    return t;
  }

  /** Compares `actual` with the recorded `expected` (a key or a tensor), prints and records the error. */
  compare(label: string, actual: Tensor, expected: Tensor | string, options: CompareOptions = {}): Comparison {
    const ref = typeof expected === "string" ? this.ref(expected) : expected;
    const isInt = !ref.dtype.startsWith("float") && ref.dtype !== "bfloat16";
    const rtol = options.rtol ?? 1e-4;
    let result: Comparison;
    if (actual.shape.length !== ref.shape.length || actual.shape.some((d, i) => d !== ref.shape[i])) {
      result = { label, relErr: Number.POSITIVE_INFINITY, maxAbs: Number.POSITIVE_INFINITY, ok: false };
      result.message = `shape [${actual.shape}] vs reference [${ref.shape}]`;
    } else {
      const a = asNumbers(actual);
      const b = asNumbers(ref);
      let num = 0;
      let den = 0;
      let maxAbs = 0;
      let elemOk = true;
      for (let i = 0; i < a.length; i++) {
        const d = Math.abs(a[i] - b[i]);
        if (!(d <= maxAbs) || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
        num += d * d;
        den += b[i] * b[i];
        if (options.atol !== undefined && !(d <= options.atol + (options.rtolElem ?? 0) * Math.abs(b[i])))
          elemOk = false;
      }
      const relErr = den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
      const ok = isInt || options.exact ? maxAbs === 0 : relErr <= rtol && elemOk;
      result = { label, relErr, maxAbs, ok };
    }
    this.results.push(result);
    console.log(
      `  ${this.set.name}/${this.caseName} ${label}: rel err ${result.relErr.toExponential(2)} max abs ${result.maxAbs.toExponential(2)} ${result.ok ? "ok" : `FAIL${result.message ? ` (${result.message})` : ""}`}`,
    );
    return result;
  }

  /** Worst relative error so far. */
  get maxRelErr(): number {
    return this.results.reduce((m, r) => Math.max(m, r.relErr), 0);
  }
}

/** A case runner checks one case kind (e.g. `tokenizer_encode`) for one set. */
export type CaseRunner = (ctx: CaseContext) => Promise<void>;
