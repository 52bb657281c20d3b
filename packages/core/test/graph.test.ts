import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, describe, expect, it } from "vitest";
import { relativeError } from "../src/compare";
import { HartError } from "../src/errors";
import { f, GraphBuilder } from "../src/graph/builder";
import { layerNorm, linearOI, rmsNorm } from "../src/graph/nn";
import { createRng } from "../src/rng";
import { createSession, resolveDevice, resolveSessionOptions, setDeviceProbe } from "../src/session";
import { SessionCache } from "../src/session-cache";
import { type Tensor, tensor } from "../src/tensor";

// ---- float64 reference math (row-major, last axis innermost) ----

const rng = createRng(20241010);
const randn = (shape: number[], scale = 1) => {
  const t = rng.normal(shape);
  for (let i = 0; i < t.data.length; i++) t.data[i] *= scale;
  return t;
};
const f64 = (t: Tensor) => Float64Array.from(t.data as Float32Array);

/** [rows, k] @ [k, n] */
function matmul(a: Float64Array, b: Float64Array, rows: number, k: number, n: number): Float64Array {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += a[r * k + i] * b[i * n + j];
      out[r * n + j] = s;
    }
  return out;
}
function rowwise(x: Float64Array, width: number, fn: (row: Float64Array) => void): Float64Array {
  const out = x.slice();
  for (let r = 0; r < out.length / width; r++) fn(out.subarray(r * width, (r + 1) * width));
  return out;
}
const refRmsNorm = (x: Float64Array, w: Float64Array, eps: number) =>
  rowwise(x, w.length, (row) => {
    const ms = row.reduce((s, v) => s + v * v, 0) / row.length;
    const inv = 1 / Math.sqrt(ms + eps);
    for (let i = 0; i < row.length; i++) row[i] = row[i] * inv * w[i];
  });
const refLayerNorm = (x: Float64Array, w: Float64Array, b: Float64Array, eps: number) =>
  rowwise(x, w.length, (row) => {
    const mean = row.reduce((s, v) => s + v, 0) / row.length;
    const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / row.length;
    for (let i = 0; i < row.length; i++) row[i] = ((row[i] - mean) / Math.sqrt(variance + eps)) * w[i] + b[i];
  });
const refSoftmax = (x: Float64Array, width: number) =>
  rowwise(x, width, (row) => {
    const max = Math.max(...row);
    let s = 0;
    for (let i = 0; i < row.length; i++) s += row[i] = Math.exp(row[i] - max);
    for (let i = 0; i < row.length; i++) row[i] /= s;
  });
/** Multi-head attention on [B, S, H·d] queries and [B, L, H·d] keys/values. */
function refMha(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  B: number,
  S: number,
  L: number,
  H: number,
  d: number,
  scale: number,
) {
  const D = H * d;
  const out = new Float64Array(B * S * D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let s = 0; s < S; s++) {
        const scores = new Float64Array(L);
        for (let l = 0; l < L; l++) {
          let dot = 0;
          for (let i = 0; i < d; i++) dot += q[(b * S + s) * D + h * d + i] * k[(b * L + l) * D + h * d + i];
          scores[l] = dot * scale;
        }
        const p = refSoftmax(scores, L);
        for (let i = 0; i < d; i++) {
          let acc = 0;
          for (let l = 0; l < L; l++) acc += p[l] * v[(b * L + l) * D + h * d + i];
          out[(b * S + s) * D + h * d + i] = acc;
        }
      }
  return out;
}
/** ‖a − b‖₂ / ‖b‖₂, printed so the run shows the measured error. */
function relErr(label: string, actual: Tensor, expected: Float64Array): number {
  const err = relativeError(actual, expected);
  console.log(`${label}: relative error ${err.toExponential(2)} vs float64 reference`);
  return err;
}

describe("graph builder + session vs a float64 reference", () => {
  it("RMSNorm → MatMul → Softmax, and LayerNorm → com.microsoft MultiHeadAttention (3-D Q/K/V, scale)", async () => {
    const [B, S, L, H, d, V] = [2, 5, 7, 4, 8, 16];
    const D = H * d;
    const x = randn([B, S, D]);
    const ctx = randn([B, L, D]);
    const wNorm = randn([D], 0.5);
    const wOut = randn([D, V], 1 / Math.sqrt(D));
    const lnW = randn([D], 0.5);
    const lnB = randn([D], 0.1);
    const [wq, wk, wv] = [0, 1, 2].map(() => randn([D, D], 1 / Math.sqrt(D)));
    const scale = 0.25 / Math.sqrt(d);

    const g = new GraphBuilder("reference-check");
    const xIn = g.input("x", "float32", ["B", S, D]);
    const ctxIn = g.input("ctx", "float32", ["B", "L", D]);
    const probs = g.op("Softmax", [g.op("MatMul", [rmsNorm(g, xIn, 1e-6, wNorm), g.weight(wOut)])], { axis: -1 });
    g.output(probs, "probs");
    const q = g.op("MatMul", [layerNorm(g, xIn, 1e-5, D, lnW, lnB), g.weight(wq)]);
    const k = g.op("MatMul", [ctxIn, g.weight(wk)]);
    const v = g.op("MatMul", [ctxIn, g.weight(wv)]);
    const att = g.op("MultiHeadAttention", [q, k, v], { num_heads: H, scale: f(scale) }, { domain: "com.microsoft" });
    g.output(att, "att");
    const built = g.build();
    expect(built.externalData.length).toBe(4); // wOut and the three [D, D] projections (≥ 1 KiB)

    const session = await createSession(built, { intraOpThreads: 1 });
    const out = await session.run({ x, ctx });
    await session.release();

    const xr = f64(x);
    const refProbs = refSoftmax(matmul(refRmsNorm(xr, f64(wNorm), 1e-6), f64(wOut), B * S, D, V), V);
    const qr = matmul(refLayerNorm(xr, f64(lnW), f64(lnB), 1e-5), f64(wq), B * S, D, D);
    const kr = matmul(f64(ctx), f64(wk), B * L, D, D);
    const vr = matmul(f64(ctx), f64(wv), B * L, D, D);
    const refAtt = refMha(qr, kr, vr, B, S, L, H, d, scale);

    expect(out.probs.shape).toEqual([B, S, V]);
    expect(out.att.shape).toEqual([B, S, D]);
    expect(relErr("rmsNorm+MatMul+Softmax", out.probs, refProbs)).toBeLessThanOrEqual(1e-5);
    expect(relErr("LayerNorm+MultiHeadAttention", out.att, refAtt)).toBeLessThanOrEqual(1e-5);
  });
});

describe("weights as external data", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it("runs a model with several MB of external initializers that are views into one shared buffer", async () => {
    const n = 512;
    // One "checkpoint" buffer with the three weights at unaligned-to-the-start, nonzero offsets.
    const shared = new ArrayBuffer(64 + 3 * n * n * 4);
    const weights = [0, 1, 2].map((i) => {
      const w = new Float32Array(shared, 64 + i * n * n * 4, n * n);
      w.set(rng.normal(n * n).map((v) => v / Math.sqrt(n)));
      return tensor("float32", [n, n], w);
    });
    const g = new GraphBuilder("three-weights");
    let h = g.input("x", "float32", [4, n]);
    for (const w of weights) h = g.op("MatMul", [h, g.weight(w)]);
    h = g.op("Add", [h, g.op("MatMul", [g.input("x2", "float32", [4, n]), g.weight(weights[0])])]); // reused: stored once
    g.output(h, "y");
    const built = g.build();
    expect(built.externalData.length).toBe(3);
    for (const [i, e] of built.externalData.entries()) {
      expect(e.data.buffer).toBe(shared); // a view of the caller's buffer, not a copy
      expect(e.data.byteOffset).toBe(64 + i * n * n * 4);
    }
    const x = randn([4, n]);
    const x2 = randn([4, n]);
    const session = await createSession(built, { intraOpThreads: 1, disablePrepacking: true });
    const { y } = await session.run({ x, x2 });
    await session.release();
    let ref: Float64Array = f64(x);
    for (const w of weights) ref = matmul(ref, f64(w), 4, n, n);
    const ref2 = matmul(f64(x2), f64(weights[0]), 4, n, n);
    expect(
      relErr(
        "3 × 1 MiB external weights",
        y,
        ref.map((v, i) => v + ref2[i]),
      ),
    ).toBeLessThanOrEqual(1e-5);
  });

  it("a session does not keep the caller's weight buffers alive (onnxruntime holds its own copy)", async () => {
    // The transformer frees its state dict as sessions are created (consumeWeights); a session that still
    // referenced its BuiltModel kept every weight twice (a regression once: 3.9 → 6.6 GB peak in the AR bench).
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const n = 256;
    const make = async () => {
      const w = randn([n, n], 1 / Math.sqrt(n));
      const g = new GraphBuilder("released-weights");
      g.output(g.op("MatMul", [g.input("x", "float32", [2, n]), g.weight(w)]), "y");
      const built = g.build();
      expect(built.externalData[0]?.data.buffer).toBe(w.data.buffer);
      return { session: await createSession(built, { intraOpThreads: 1 }), weightRef: new WeakRef(w.data.buffer) };
    };
    const { session, weightRef } = await make();
    for (let i = 0; i < 3 && weightRef.deref(); i++) {
      await new Promise((resolve) => setTimeout(resolve, 0)); // WeakRefs clear only after the job that made them
      gc();
    }
    expect(weightRef.deref()).toBeUndefined();
    const { y } = await session.run({ x: randn([2, n]) });
    expect(y.shape).toEqual([2, n]);
    await session.release();
  });

  it("reads file-backed weights (fileWeight) next to in-memory ones", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hart-core-fileweight-"));
    dirs.push(dir);
    const [k, n] = [64, 48];
    const w1 = randn([k, n], 0.2);
    const w2 = randn([n, k], 0.2);
    const header = new Uint8Array(36); // data starts at an offset like a safetensors header would leave
    const file = join(dir, "weights.bin");
    writeFileSync(file, Buffer.concat([header, Buffer.from(w1.data.buffer)]));
    const g = new GraphBuilder("file-weights");
    const x = g.input("x", "float32", [3, k]);
    const h = g.op("MatMul", [x, g.fileWeight({ file, offset: 36, dtype: "float32", shape: [k, n] })]);
    g.output(g.op("MatMul", [h, g.weight(w2)]), "y");
    const built = g.build();
    expect(built.externalFolder).toBe(dir);
    expect(built.externalData.length).toBe(0); // mixed graphs inline the JS weight (onnxruntime cannot mix)
    const xs = randn([3, k]);
    const session = await createSession(built, { disablePrepacking: true });
    const { y } = await session.run({ x: xs });
    await session.release();
    const ref = matmul(matmul(f64(xs), f64(w1), 3, k, n), f64(w2), 3, n, k);
    expect(relErr("file-backed + in-memory weights", y, ref)).toBeLessThanOrEqual(1e-5);

    const g2 = new GraphBuilder("bad-file-weights");
    expect(() => g2.fileWeight({ file, offset: 40, dtype: "float32", shape: [k, n] })).toThrow(
      /graph "bad-file-weights".*needs bytes 40\.\.12328, the file has 12324/,
    );
    expect(() => g2.fileWeight({ file: join(dir, "missing.bin"), offset: 0, dtype: "float32", shape: [1] })).toThrow(
      /cannot read the file/,
    );
    g2.fileWeight({ file, offset: 36, dtype: "float32", shape: [4] });
    const other = mkdtempSync(join(tmpdir(), "hart-core-other-"));
    dirs.push(other);
    writeFileSync(join(other, "w.bin"), new Uint8Array(16));
    expect(() => g2.fileWeight({ file: join(other, "w.bin"), offset: 0, dtype: "float32", shape: [4] })).toThrow(
      /must live in one folder/,
    );
  });
});

describe("linearOI", () => {
  it("applies PyTorch-layout [out, in] weights (tensor or file-backed) to 3-D input, with bias", async () => {
    const [B, L, I, O] = [2, 3, 40, 24];
    const wOI = randn([O, I], 0.3);
    const bias = randn([O], 0.1);
    const dir = mkdtempSync(join(tmpdir(), "hart-core-linear-"));
    try {
      const file = join(dir, "w.bin");
      writeFileSync(file, Buffer.from(wOI.data.buffer));
      const g = new GraphBuilder("linear-oi");
      const x = g.input("x", "float32", [B, L, I]);
      g.output(linearOI(g, x, wOI, bias), "fromTensor");
      g.output(linearOI(g, x, g.fileWeight({ file, offset: 0, dtype: "float32", shape: [O, I] })), "fromFile");
      const xs = randn([B, L, I]);
      const session = await createSession(g.build(), { disablePrepacking: true });
      const out = await session.run({ x: xs });
      await session.release();
      const w = f64(wOI);
      const wIO = new Float64Array(I * O).map((_, k) => w[(k % O) * I + Math.floor(k / O)]);
      const ref = matmul(f64(xs), wIO, B * L, I, O);
      expect(out.fromTensor.shape).toEqual([B, L, O]);
      expect(
        relErr(
          "linearOI (tensor, bias)",
          out.fromTensor,
          ref.map((v, k) => v + bias.data[k % O]),
        ),
      ).toBeLessThanOrEqual(1e-5);
      expect(relErr("linearOI (file-backed)", out.fromFile, ref)).toBeLessThanOrEqual(1e-5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("errors name the graph", () => {
  it("duplicate names", () => {
    const g = new GraphBuilder("dups");
    const x = g.input("x", "float32", [2]);
    expect(() => g.input("x", "float32", [2])).toThrow(HartError);
    expect(() => g.input("x", "float32", [2])).toThrow(/graph "dups": input "x": the name is already used/);
    expect(() => g.op("Relu", [x], {}, { outputs: ["x"] })).toThrow(/graph "dups": Relu output "x"/);
    const w = tensor("float32", [1], Float32Array.of(1));
    g.weight(w, "w");
    expect(() => g.weight(tensor("float32", [1], Float32Array.of(2)), "w")).toThrow(/weight "w"/);
    g.output(g.op("Relu", [x]), "y");
    expect(() => g.output(x, "y")).toThrow(/graph "dups": output "y"/);
  });

  it("non-integer int attributes, float lists as ints, undefined inputs, no outputs", () => {
    const g = new GraphBuilder("attrs");
    const x = g.input("x", "float32", [2, 3]);
    let err: unknown;
    try {
      g.op("Softmax", [x], { axis: 1.5 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HartError);
    expect((err as HartError).code).toBe("graph");
    expect((err as HartError).message).toMatch(
      /graph "attrs": Softmax attribute axis=1.5: an int attribute must be an integer/,
    );
    expect(() => g.op("Transpose", [x], { perm: [1, 0.5] })).toThrow(/graph "attrs": Transpose attribute perm/);
    expect(() => g.op("Relu", ["nope"])).toThrow(/graph "attrs": Relu input 0 "nope" is not defined/);
    expect(() => g.ints([1, 2.5])).toThrow(/graph "attrs": ints/);
    expect(() => g.build()).toThrow(/graph "attrs": no outputs declared/);
  });

  it("bad feeds: missing, unknown, wrong dtype, rank or size", async () => {
    const g = new GraphBuilder("feeds");
    g.output(g.op("Relu", [g.input("x", "float32", ["N", 3])]), "y");
    const session = await createSession(g.build());
    const ok = tensor("float32", [2, 3], new Float32Array(6).fill(-1));
    expect((await session.run({ x: ok })).y.data).toEqual(new Float32Array(6));
    await expect(session.run({})).rejects.toThrow(/graph "feeds": input "x" \(float32 \[N, 3\]\) is missing/);
    await expect(session.run({ x: ok, z: ok })).rejects.toThrow(
      /graph "feeds": unknown input "z"; the graph's inputs are x/,
    );
    await expect(session.run({ x: tensor("float64", [2, 3], new Float64Array(6)) })).rejects.toThrow(
      /graph "feeds": input "x" expects float32 \[N, 3\], got float64 \[2, 3\]/,
    );
    await expect(session.run({ x: tensor("float32", [2, 4], new Float32Array(8)) })).rejects.toThrow(
      /expects float32 \[N, 3\], got float32 \[2, 4\]/,
    );
    await expect(session.run({ x: tensor("float32", [6], new Float32Array(6)) })).rejects.toThrow(/got float32 \[6\]/);
    await expect(session.run({ x: ok }, ["nope"])).rejects.toThrow(/graph "feeds": unknown output "nope"/);
    const err = await session.run({}).catch((e) => e);
    expect(err).toBeInstanceOf(HartError);
    expect(err.code).toBe("feed");
    await session.release();
    await session.release(); // idempotent
    await expect(session.run({ x: ok })).rejects.toThrow(/graph "feeds": run\(\) after release\(\)/);
  });

  it("a graph onnxruntime rejects fails at session creation with the graph's name", async () => {
    const g = new GraphBuilder("rejected");
    g.output(g.op("NoSuchOp", [g.input("x", "float32", [1])]), "y");
    await expect(createSession(g.build())).rejects.toThrow(
      /graph "rejected": could not create the onnxruntime session/,
    );
  });
});

describe("session settings", () => {
  it("threads from the option, else HART_NUM_THREADS; bad values are named", () => {
    const saved = process.env.HART_NUM_THREADS;
    try {
      process.env.HART_NUM_THREADS = "3";
      expect(resolveSessionOptions().intraOpThreads).toBe(3);
      expect(resolveSessionOptions({ intraOpThreads: 1 }).intraOpThreads).toBe(1);
      process.env.HART_NUM_THREADS = "two";
      expect(() => resolveSessionOptions()).toThrow(/HART_NUM_THREADS environment variable must be a positive integer/);
      delete process.env.HART_NUM_THREADS;
      expect(resolveSessionOptions().intraOpThreads).toBeUndefined();
      expect(() => resolveSessionOptions({ intraOpThreads: 0 })).toThrow(/intraOpThreads/);
    } finally {
      if (saved === undefined) delete process.env.HART_NUM_THREADS;
      else process.env.HART_NUM_THREADS = saved;
    }
    const r = resolveSessionOptions({
      disablePrepacking: true,
      useEnvAllocators: true,
      graphOptimizationLevel: "basic",
    });
    expect(r.config).toEqual({ "session.disable_prepacking": "1", "session.use_env_allocators": "1" });
    expect(r.graphOptimizationLevel).toBe("basic");
  });

  it("GPU devices only when the registered probe says usable; auto falls back to cpu", () => {
    try {
      setDeviceProbe(undefined);
      expect(resolveDevice()).toBe("cpu");
      expect(resolveDevice("auto")).toBe("cpu");
      expect(() => resolveDevice("cuda")).toThrow(/device "cuda" is not usable: no GPU provider is registered/);
      setDeviceProbe((d) => (d === "webgpu" ? { usable: true } : { usable: false, reason: "no driver" }));
      expect(resolveDevice("auto")).toBe("webgpu");
      expect(() => resolveDevice("cuda")).toThrow(/no driver/);
      expect(() => resolveDevice("tpu" as never)).toThrow(/unknown/);
      // a software adapter works when asked for, but "auto" does not pick it
      setDeviceProbe((d) => (d === "webgpu" ? { usable: true, autoSelect: false } : { usable: false }));
      expect(resolveDevice("auto")).toBe("cpu");
      expect(resolveDevice("webgpu")).toBe("webgpu");
    } finally {
      setDeviceProbe(undefined);
    }
  });
});

describe("SessionCache", () => {
  const relu = (name: string) => {
    const g = new GraphBuilder(name);
    g.output(g.op("Relu", [g.input("x", "float32", [2])]), "y");
    return g.build();
  };
  const x = tensor("float32", [2], Float32Array.of(-1, 2));

  it("builds once per key (also under concurrent gets) and releases", async () => {
    const cache = new SessionCache({ intraOpThreads: 1 });
    let builds = 0;
    const build = () => {
      builds++;
      return relu("relu");
    };
    const [a, b] = await Promise.all([cache.get("relu:2", build), cache.get("relu:2", build)]);
    expect(a).toBe(b);
    expect(await cache.get("relu:2", build)).toBe(a);
    expect(builds).toBe(1);
    expect(Array.from((await a.run({ x })).y.data as Float32Array)).toEqual([0, 2]);
    await cache.get("other", () => relu("other"));
    expect(cache.keys().sort()).toEqual(["other", "relu:2"]);
    expect(await cache.release("relu:2")).toBe(1);
    expect(cache.has("relu:2")).toBe(false);
    await cache.get("relu:2", build);
    expect(builds).toBe(2);
    const s = await cache.get("other", () => relu("other"));
    await s.release(); // the session's own release also drops it from the cache
    expect(cache.has("other")).toBe(false);
    expect(await cache.release()).toBe(1);
    expect(cache.size).toBe(0);
  });

  it("a failed build does not poison the key; errors carry the key as label", async () => {
    const cache = new SessionCache();
    await expect(
      cache.get("broken", () => {
        throw new HartError("test", "build failed");
      }),
    ).rejects.toThrow(/build failed/);
    expect(cache.has("broken")).toBe(false);
    const s = await cache.get("broken", () => relu("fixed"));
    await expect(s.run({})).rejects.toThrow(/graph "broken": input "x"/);
    await cache.release();
  });
});
