/**
 * The golden conformance harness: finds every golden set under
 * `$HART_GOLDEN_DIR` (default `../shared/golden`), loads its cases and lets
 * case runners compare tensors, keeping the worst relative error per case.
 * Everything is derived from the set's own config and case files.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Device, type GraphFlavour, readSafetensors, type StateDict, type Tensor } from "@hart/core";
import { registerGpuProviders } from "@hart/kernels-cuda";

/** Where the golden sets live. */
export const GOLDEN_DIR = resolve(process.env.HART_GOLDEN_DIR ?? join(import.meta.dirname, "../../../shared/golden"));

/**
 * What the suite runs on: `HART_DEVICE` (`cpu` default, `cuda`, `webgpu`), `HART_DTYPE` (`float32` default,
 * `float16` or `int8`: the transformer blocks' and the text encoder's weights) and `HART_GRAPH_FLAVOUR`
 * (`plain`/`fused`; default: the device's). In float32 on CPU and WebGPU every case keeps its float32 tolerance; with
 * float16 or on CUDA the GPU tolerance applies: ‖Δ‖/‖ref‖ ≤ 1e-2 for float tensors, and at most 1 % of recomputed
 * integer codes may differ; int8 (CPU) is looser still, 5e-2.
 */
export interface ConformanceTarget {
  device: Device;
  dtype: "float32" | "float16" | "int8";
  graphFlavour?: GraphFlavour;
  /** ‖Δ‖/‖ref‖ bound (and largest fraction of differing codes) when not {@link exact}. */
  looseRtol: number;
  /** float32 off CUDA: the reference's own tolerances. */
  exact: boolean;
}

/** Relative error bound for float tensors, and the largest fraction of differing integer codes, when not exact. */
export const DEVICE_RTOL = 1e-2;

/** The same for int8 linear layers (per-tensor activation quantization is coarser than float16). */
export const INT8_RTOL = 5e-2;

function oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T | undefined): T | undefined {
  const value = process.env[name];
  if (value === undefined || value === "") return fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new Error(`${name}=${JSON.stringify(value)} is not one of ${allowed.join(", ")}`);
  }
  return value as T;
}

/** Reads the target from the environment (see {@link ConformanceTarget}). */
export function readTarget(): ConformanceTarget {
  const device = oneOf("HART_DEVICE", ["cpu", "cuda", "webgpu"] as const, "cpu") as Device;
  const dtype = oneOf("HART_DTYPE", ["float32", "float16", "int8"] as const, "float32") as ConformanceTarget["dtype"];
  const graphFlavour = oneOf("HART_GRAPH_FLAVOUR", ["plain", "fused"] as const, undefined);
  // CUDA may run float32 MatMuls in TF32 (onnxruntime's default there); WebGPU computes float32 in float32
  const looseRtol = dtype === "int8" ? INT8_RTOL : DEVICE_RTOL;
  return { device, dtype, graphFlavour, looseRtol, exact: device !== "cuda" && dtype === "float32" };
}

/** The target of this run. */
export const TARGET = readTarget();
// a GPU device is usable only once the provider checks are registered
if (TARGET.device !== "cpu") registerGpuProviders();

/** Load options that put a package's graphs on {@link TARGET} (each package takes the ones it knows). */
export const targetOptions = {
  device: TARGET.device,
  ...(TARGET.graphFlavour ? { graphFlavour: TARGET.graphFlavour } : {}),
} as const;

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
  /** Computed in JavaScript, not by a graph: keeps its tolerance on every {@link TARGET}. */
  host?: boolean;
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
  // biome-ignore lint/suspicious/noExplicitAny: each case JSON has its own fields; its runner reads them
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
    // in float16 or on CUDA, recomputed floats get the device tolerance and codes may differ in a few places
    const loose = !TARGET.exact && !options.exact && !options.host;
    const rtol = loose ? Math.max(options.rtol ?? 1e-4, TARGET.looseRtol) : (options.rtol ?? 1e-4);
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
      let differing = 0;
      for (let i = 0; i < a.length; i++) {
        const d = Math.abs(a[i] - b[i]);
        if (!(d <= maxAbs) || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
        if (d !== 0) differing++;
        num += d * d;
        den += b[i] * b[i];
        if (!loose && options.atol !== undefined && !(d <= options.atol + (options.rtolElem ?? 0) * Math.abs(b[i])))
          elemOk = false;
      }
      if (isInt && loose) {
        // for codes the error reported is the fraction that differ
        const fraction = a.length > 0 ? differing / a.length : 0;
        result = { label, relErr: fraction, maxAbs, ok: fraction <= TARGET.looseRtol };
      } else {
        const relErr = den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
        const ok = isInt || options.exact ? maxAbs === 0 : relErr <= rtol && elemOk;
        result = { label, relErr, maxAbs, ok };
      }
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

/** How one golden case ended. */
export type CaseStatus = "pass" | "fail" | "skip";

/** One case's summary line: `<set>/<case>: pass|fail|skip (max rel err …)`. */
export function summaryLine(setName: string, caseName: string, status: CaseStatus, maxRelErr?: number): string {
  return `${setName}/${caseName}: ${status} (max rel err ${maxRelErr === undefined ? "n/a" : maxRelErr.toExponential(2)})`;
}

/** The summary printed after a run: a header naming the golden folder and {@link TARGET}, then the sorted lines. */
export function goldenSummary(lines: readonly string[]): string {
  const target = `${TARGET.device}, ${TARGET.dtype}${TARGET.graphFlavour ? `, ${TARGET.graphFlavour}` : ""}`;
  return `golden conformance summary (${GOLDEN_DIR}; ${target}):\n${[...lines].sort().join("\n")}`;
}

/** The outcome of {@link runGoldenCase}. */
export interface CaseOutcome {
  status: CaseStatus;
  /** `status === "pass"`. */
  ok: boolean;
  /** The summary line ({@link summaryLine}). */
  line: string;
  /** What the runner threw, if it did. */
  error?: unknown;
  /** How many tensors the runner compared (a runner that compares none fails). */
  checked: number;
  /** The tensors outside tolerance, as `label (rel 1.23e-2)`. */
  failed: string[];
}

/**
 * Runs one case of a set with its runner (`undefined`: no package covers the case yet, a skip) and decides
 * pass or fail: the runner must not throw, must compare at least one tensor, and every comparison must be ok.
 */
export async function runGoldenCase(
  set: GoldenSet,
  caseName: string,
  runner: CaseRunner | undefined,
): Promise<CaseOutcome> {
  if (!runner)
    return { status: "skip", ok: false, line: summaryLine(set.name, caseName, "skip"), checked: 0, failed: [] };
  let ctx: CaseContext | undefined;
  let error: unknown;
  try {
    ctx = new CaseContext(set, caseName);
    await runner(ctx);
  } catch (err) {
    error = err ?? new Error(`${set.name}/${caseName}: the runner threw ${err}`);
  }
  const results = ctx?.results ?? [];
  const failed = results.filter((r) => !r.ok).map((r) => `${r.label} (rel ${r.relErr.toExponential(2)})`);
  const ok = !error && results.length > 0 && failed.length === 0;
  const status = ok ? "pass" : "fail";
  return {
    status,
    ok,
    line: summaryLine(set.name, caseName, status, ctx?.maxRelErr ?? 0),
    ...(error === undefined ? {} : { error }),
    checked: results.length,
    failed,
  };
}
