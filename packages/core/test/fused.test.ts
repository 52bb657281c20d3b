/**
 * The fused graph forms compute the same function as the plain ones: each pair runs on CPU in float32 (every
 * fused op but GroupNorm has a CPU kernel) and is compared, and both against a float64 reference where one is
 * short to write. float16 variants are checked to float16 accuracy. GroupNorm (CUDA-only) is
 * checked by its graph's construction and by the op's documented semantics in float64 against the plain graph.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { ModelProtoSchema } from "onnx-buf";
import { describe, expect, it } from "vitest";
import { relativeError } from "../src/compare";
import { HartError } from "../src/errors";
import { type BuiltModel, GraphBuilder, type Value } from "../src/graph/builder";
import {
  addRmsNorm,
  attentionOf,
  attentionWithCache,
  cudaGroupNormSupports,
  type GraphForm,
  graphFlavourFor,
  graphForm,
  groupNormOf,
  kvLayoutOf,
  PLAIN_FORM,
  rmsNormOf,
  ropeOf,
  rotaryEmbedding,
  toFloat32Value,
  toFormPrecision,
} from "../src/graph/fused";
import { createRng } from "../src/rng";
import { createSession } from "../src/session";
import { type Tensor, tensor, toFloat16, toFloat32 } from "../src/tensor";

const FUSED: GraphForm = { flavour: "fused", precision: "float32" };
const HALF: GraphForm = { flavour: "fused", precision: "float16" };
const MATMUL: GraphForm = { flavour: "plain", precision: "float32", attention: "matmul" };
const rng = createRng(20250214);
const randn = (shape: number[], scale = 1) => {
  const t = rng.normal(shape);
  for (let i = 0; i < t.data.length; i++) t.data[i] *= scale;
  return t;
};

/** ‖a − b‖₂ / ‖b‖₂, printed so the run shows the measured error. */
function relErr(label: string, actual: Tensor, expected: Tensor | Float64Array): number {
  expect(actual.dtype).toBe("float32");
  const err = relativeError(actual, expected);
  console.log(`${label}: relative error ${err.toExponential(2)}`);
  return err;
}

/**
 * Builds a graph whose body is emitted in `form` and runs it on CPU. float16 graphs take and return float16
 * tensors (converted here): Cast pairs in the graph would be removed by onnxruntime around float16 nodes it runs
 * in float32 on CPU, hiding the float16 rounding this checks.
 */
async function runForm(
  form: GraphForm,
  inputs: Record<string, Tensor>,
  body: (g: GraphBuilder, x: Record<string, Value>) => Record<string, Value>,
): Promise<Record<string, Tensor>> {
  const g = new GraphBuilder(`fused-test-${form.flavour}-${form.precision}`);
  const half = form.precision === "float16";
  const feeds: Record<string, Tensor> = {};
  const values: Record<string, Value> = {};
  for (const [name, t] of Object.entries(inputs)) {
    feeds[name] = half && t.dtype === "float32" ? toFloat16(t) : t;
    values[name] = g.input(name, feeds[name].dtype, t.shape);
  }
  for (const [name, v] of Object.entries(body(g, values))) g.output(v, name, form.precision);
  const session = await createSession(g.build(), { intraOpThreads: 1 });
  try {
    const out = await session.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, toFloat32(t)]));
  } finally {
    await session.release();
  }
}

function opTypes(model: BuiltModel): string[] {
  return fromBinary(ModelProtoSchema, model.bytes).graph!.node.map(
    (n) => `${n.domain ? `${n.domain}.` : ""}${n.opType}`,
  );
}

// ---- float64 references ----

function refRms(x: Float32Array, width: number, eps: number, w?: Float32Array): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / width; r++) {
    let ms = 0;
    for (let i = 0; i < width; i++) ms += x[r * width + i] ** 2;
    const inv = 1 / Math.sqrt(ms / width + eps);
    for (let i = 0; i < width; i++) out[r * width + i] = x[r * width + i] * inv * (w ? w[i] : 1);
  }
  return out;
}

/** `x·cos + rotate_half(x)·sin` per head with unsigned `[T, d]` tables (T tokens of x). */
function refRope(x: Float32Array, cos: Float64Array, sin: Float64Array, T: number, H: number, d: number) {
  const out = new Float64Array(x.length);
  const half = d / 2;
  for (let t = 0; t < T; t++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < d; i++) {
        const base = (t * H + h) * d;
        const rot = i < half ? -x[base + i + half] : x[base + i - half];
        out[base + i] = x[base + i] * cos[t * d + i] + rot * sin[t * d + i];
      }
  return out;
}

/** GroupNorm on NCHW (biased variance), affine, optional SiLU: the documented semantics of com.microsoft GroupNorm. */
function refGroupNorm(
  x: Float32Array,
  [N, C, H, W]: number[],
  gamma: Float32Array,
  beta: Float32Array,
  groups: number,
  eps: number,
  withSilu: boolean,
): Float64Array {
  const out = new Float64Array(x.length);
  const cpg = C / groups;
  const size = cpg * H * W;
  for (let n = 0; n < N; n++)
    for (let gi = 0; gi < groups; gi++) {
      const start = (n * C + gi * cpg) * H * W;
      let mean = 0;
      for (let i = 0; i < size; i++) mean += x[start + i];
      mean /= size;
      let variance = 0;
      for (let i = 0; i < size; i++) variance += (x[start + i] - mean) ** 2;
      variance /= size;
      const inv = 1 / Math.sqrt(variance + eps);
      for (let i = 0; i < size; i++) {
        const c = gi * cpg + Math.floor(i / (H * W));
        const y = (x[start + i] - mean) * inv * gamma[c] + beta[c];
        out[start + i] = withSilu ? y / (1 + Math.exp(-y)) : y;
      }
    }
  return out;
}

describe("graph forms", () => {
  it("picks the fused flavour for cuda and the plain one elsewhere; the option forces either", () => {
    expect(graphFlavourFor("cuda")).toBe("fused");
    expect(graphFlavourFor("cpu")).toBe("plain");
    expect(graphFlavourFor(undefined)).toBe("plain");
    expect(graphFlavourFor("webgpu")).toBe("plain");
    expect(graphFlavourFor("cpu", "fused")).toBe("fused");
    expect(graphFlavourFor("cuda", "plain")).toBe("plain");
    expect(graphForm({})).toBe(PLAIN_FORM);
    expect(graphForm({ device: "cuda", precision: "float16" })).toEqual(HALF);
    expect(() => graphForm({ precision: "float16" })).toThrow(HartError);
    expect(() => graphForm({ graphFlavour: "fast" as never })).toThrow(/graphFlavour must be/);
    expect(kvLayoutOf(PLAIN_FORM)).toBe("tokens");
    expect(kvLayoutOf(FUSED)).toBe("heads");
  });

  it("uses MatMul/Softmax attention on webgpu (its MultiHeadAttention is off for 32+ queries) unless told otherwise", () => {
    expect(graphForm({ device: "webgpu" })).toEqual({ flavour: "plain", precision: "float32", attention: "matmul" });
    expect(graphForm({ device: "webgpu", attention: "mha" })).toBe(PLAIN_FORM);
    expect(graphForm({ device: "cpu", attention: "matmul" }).attention).toBe("matmul");
    expect(graphForm({ device: "cuda" }).attention).toBeUndefined();
    expect(() => graphForm({ attention: "flash" as never })).toThrow(/attention must be/);
    // float16 needs the fused forms or MatMul attention
    expect(graphForm({ device: "webgpu", precision: "float16" })).toEqual({
      flavour: "plain",
      precision: "float16",
      attention: "matmul",
    });
    expect(() => graphForm({ device: "webgpu", precision: "float16", attention: "mha" })).toThrow(
      /attention: "matmul"/,
    );
    const g = new GraphBuilder("matmul-attention");
    const [q, k, v] = ["q", "k", "v"].map((n) => g.input(n, "float32", [1, 4, 8]));
    g.output(attentionOf(g, MATMUL, q, k, v, { heads: 2, scale: 0.5 }), "o");
    const ops = opTypes(g.build());
    expect(ops).not.toContain("com.microsoft.MultiHeadAttention");
    expect(ops.filter((o) => o === "MatMul")).toHaveLength(2);
    expect(ops).toContain("Softmax");
  });
});

describe("fused forms compute the plain forms' function (CPU, float32)", () => {
  const [N, l, H, d] = [2, 5, 3, 8];
  const C = H * d;
  const eps = 1e-6;

  it("RMSNorm: SimplifiedLayerNormalization", async () => {
    const x = randn([N, l, C], 2);
    const w = randn([C], 0.5);
    const body = (form: GraphForm) => (g: GraphBuilder, v: Record<string, Value>) => ({
      y: rmsNormOf(g, form, v.x, eps, C, w),
      y1: rmsNormOf(g, form, v.x, eps, C),
    });
    const plain = await runForm(PLAIN_FORM, { x }, body(PLAIN_FORM));
    const fused = await runForm(FUSED, { x }, body(FUSED));
    expect(relErr("rmsNorm plain vs float64", plain.y, refRms(x.data, C, eps, w.data))).toBeLessThan(1e-6);
    expect(relErr("rmsNorm fused vs plain", fused.y, plain.y)).toBeLessThan(1e-5);
    expect(relErr("rmsNorm (no weight) fused vs plain", fused.y1, plain.y1)).toBeLessThan(1e-5);
  });

  it("residual add + RMSNorm: SkipSimplifiedLayerNormalization returns the sum too", async () => {
    const x = randn([N, l, C]);
    const r = randn([N, l, C], 3);
    const w = randn([C], 0.5);
    const body = (form: GraphForm) => (g: GraphBuilder, v: Record<string, Value>) => {
      const { sum, y } = addRmsNorm(g, form, v.x, v.r, eps, C, w);
      return { sum, y };
    };
    const plain = await runForm(PLAIN_FORM, { x, r }, body(PLAIN_FORM));
    const fused = await runForm(FUSED, { x, r }, body(FUSED));
    expect(relErr("add+rmsNorm sum fused vs plain", fused.sum, plain.sum)).toBeLessThan(1e-6);
    expect(relErr("add+rmsNorm y fused vs plain", fused.y, plain.y)).toBeLessThan(1e-5);
    const sum = Float32Array.from(x.data, (v, i) => v + r.data[i]);
    expect(relErr("add+rmsNorm y plain vs float64", plain.y, refRms(sum, C, eps, w.data))).toBeLessThan(1e-6);
  });

  /** Per-token tables: first half angles `a`, second half `b` (2-D RoPE) or `a` again (1-D). */
  function tables(twoD: boolean) {
    const cos = new Float32Array(N * l * d);
    const sin = new Float32Array(N * l * d);
    const folded = new Float32Array(N * l * d);
    const inv = Array.from({ length: d / 4 }, (_, i) => 1 / 10000 ** ((4 * i) / d));
    for (let t = 0; t < N * l; t++) {
      const pr = 3 + (t % l) * 1.7;
      const pc = twoD ? 11 - (t % 3) * 2.3 : pr;
      for (let i = 0; i < d; i++) {
        const angle = (i < d / 2 ? pr : pc) * inv[i % (d / 4)];
        cos[t * d + i] = Math.cos(angle);
        sin[t * d + i] = Math.sin(angle);
        folded[t * d + i] = i < d / 2 ? -sin[t * d + i] : sin[t * d + i];
      }
    }
    const shape = [N, l, d];
    return {
      cos: tensor("float32", shape, cos),
      sin: tensor("float32", shape, sin),
      folded: tensor("float32", shape, folded),
    };
  }

  for (const twoD of [true, false]) {
    it(`rotate-half RoPE (${twoD ? "2-D: two RotaryEmbedding" : "1-D: one RotaryEmbedding"}), signed and folded sin`, async () => {
      const x = randn([N, l, C]);
      const t = tables(twoD);
      const body = (form: GraphForm) => (g: GraphBuilder, v: Record<string, Value>) => ({
        y: ropeOf(g, form, { cos: v.cos, sin: v.sin, sameHalves: !twoD }, { heads: H, headDim: d })(v.x),
        yFolded: ropeOf(
          g,
          form,
          { cos: v.cos, sin: v.folded, foldedSign: true, sameHalves: !twoD },
          { heads: H, headDim: d },
        )(v.x),
      });
      const plain = await runForm(PLAIN_FORM, { x, ...t }, body(PLAIN_FORM));
      const fused = await runForm(FUSED, { x, ...t }, body(FUSED));
      const ref = refRope(x.data, Float64Array.from(t.cos.data), Float64Array.from(t.sin.data), N * l, H, d);
      expect(relErr(`rope ${twoD ? "2-D" : "1-D"} plain vs float64`, plain.y, ref)).toBeLessThan(1e-6);
      expect(relErr(`rope ${twoD ? "2-D" : "1-D"} fused vs plain`, fused.y, plain.y)).toBeLessThan(1e-5);
      expect(relErr(`rope ${twoD ? "2-D" : "1-D"} folded fused vs plain`, fused.yFolded, plain.yFolded)).toBeLessThan(
        1e-5,
      );
      expect(relErr("rope folded vs signed (plain)", plain.yFolded, plain.y)).toBe(0);
    });
  }

  it("RotaryEmbedding with position caches and an offset computes rotate-half RoPE", async () => {
    const P = 12;
    const offset = 4;
    const x = randn([N, l, C]);
    const angles = new Float32Array(P * (d / 2));
    for (let p = 0; p < P; p++) for (let i = 0; i < d / 2; i++) angles[p * (d / 2) + i] = p / 10000 ** ((2 * i) / d);
    const cosCache = tensor("float32", [P, d / 2], angles.map(Math.cos));
    const sinCache = tensor("float32", [P, d / 2], angles.map(Math.sin));
    const g = new GraphBuilder("rotary-offset");
    const xv = g.input("x", "float32", [N, l, C]);
    const caches = {
      cos: g.input("cos", "float32", [P, d / 2]),
      sin: g.input("sin", "float32", [P, d / 2]),
      positionIds: g.weight(tensor("int64", [1], BigInt64Array.of(BigInt(offset)))),
    };
    g.output(rotaryEmbedding(g, xv, caches, H, d), "y");
    const session = await createSession(g.build(), { intraOpThreads: 1 });
    const { y } = await session.run({ x, cos: cosCache, sin: sinCache });
    await session.release();
    // every row's token t sits at position offset + t: full tables [N·l, d] = cat(angle, angle)
    const cos = new Float64Array(N * l * d);
    const sin = new Float64Array(N * l * d);
    for (let t = 0; t < N * l; t++)
      for (let i = 0; i < d; i++) {
        const a = angles[(offset + (t % l)) * (d / 2) + (i % (d / 2))];
        cos[t * d + i] = Math.cos(a);
        sin[t * d + i] = Math.sin(a);
      }
    expect(relErr("RotaryEmbedding (offset ids) vs float64", y, refRope(x.data, cos, sin, N * l, H, d))).toBeLessThan(
      1e-6,
    );
  });

  for (const P of [7, 0]) {
    it(`attention over a KV cache (P = ${P}): MultiHeadAttention past/present vs concat + flash MHA`, async () => {
      const [q, k, v] = [0, 1, 2].map(() => randn([N, l, C]));
      const pastTokK = randn([N, P, C]);
      const pastTokV = randn([N, P, C]);
      /** [N, P, H·d] → [N, H, P, d] */
      const toHeads = (t: Tensor<"float32">, T: number) => {
        const out = new Float32Array(t.data.length);
        for (let n = 0; n < N; n++)
          for (let p = 0; p < T; p++)
            for (let h = 0; h < H; h++)
              for (let i = 0; i < d; i++) out[((n * H + h) * T + p) * d + i] = t.data[((n * T + p) * H + h) * d + i];
        return tensor("float32", [N, H, T, d], out);
      };
      const scale = Math.fround(0.25 / Math.sqrt(d));
      const body = (form: GraphForm) => (g: GraphBuilder, x: Record<string, Value>) => {
        const att = attentionWithCache(g, form, { q: x.q, k: x.k, v: x.v }, { k: x.pk, v: x.pv }, { heads: H, scale });
        const out: Record<string, Value> = { o: att.o, kOut: att.k, vOut: att.v };
        if (att.presentK && att.presentV) Object.assign(out, { presentK: att.presentK, presentV: att.presentV });
        return out;
      };
      const plain = await runForm(PLAIN_FORM, { q, k, v, pk: pastTokK, pv: pastTokV }, body(PLAIN_FORM));
      const fused = await runForm(FUSED, { q, k, v, pk: toHeads(pastTokK, P), pv: toHeads(pastTokV, P) }, body(FUSED));
      expect(relErr(`attention P=${P} fused vs plain`, fused.o, plain.o)).toBeLessThan(1e-5);
      // present = cat(past, new) in the heads layout, exactly
      const cat = (past: Tensor<"float32">, add: Tensor<"float32">) => {
        const out = new Float32Array(N * (P + l) * C);
        for (let n = 0; n < N; n++) {
          out.set(past.data.subarray(n * P * C, (n + 1) * P * C), n * (P + l) * C);
          out.set(add.data.subarray(n * l * C, (n + 1) * l * C), (n * (P + l) + P) * C);
        }
        return toHeads(tensor("float32", [N, P + l, C], out), P + l);
      };
      expect(fused.presentK.shape).toEqual([N, H, P + l, d]);
      expect(fused.presentK.data).toEqual(cat(pastTokK, k).data);
      expect(fused.presentV.data).toEqual(cat(pastTokV, v).data);
      // the cache update: this call's keys/values, in each form's layout
      expect(plain.kOut.data).toEqual(k.data);
      expect(fused.kOut.shape).toEqual([N, H, l, d]);
      expect(fused.kOut.data).toEqual(toHeads(k, l).data);
      expect(fused.vOut.data).toEqual(toHeads(v, l).data);
    });
  }

  for (const heads of [H, 1]) {
    it(`attention over a KV cache, ${heads} head(s): MatMul/Softmax vs MultiHeadAttention; present = cat(past, new)`, async () => {
      const P = 5;
      const [q, k, v] = [0, 1, 2].map(() => randn([N, l, C]));
      const pk = randn([N, P, C]);
      const pv = randn([N, P, C]);
      const scale = Math.fround(0.25 / Math.sqrt(C / heads));
      const body = (form: GraphForm) => (g: GraphBuilder, x: Record<string, Value>) => {
        const att = attentionWithCache(g, form, { q: x.q, k: x.k, v: x.v }, { k: x.pk, v: x.pv }, { heads, scale });
        return { o: att.o, presentK: att.presentK as Value, presentV: att.presentV as Value };
      };
      const mha = await runForm(PLAIN_FORM, { q, k, v, pk, pv }, body(PLAIN_FORM));
      const matmul = await runForm(MATMUL, { q, k, v, pk, pv }, body(MATMUL));
      expect(relErr(`attention ${heads} head(s) matmul vs mha`, matmul.o, mha.o)).toBeLessThan(1e-6);
      for (const [name, past, add] of [
        ["presentK", pk, k],
        ["presentV", pv, v],
      ] as const) {
        const cat = new Float32Array(N * (P + l) * C);
        for (let n = 0; n < N; n++) {
          cat.set(past.data.subarray(n * P * C, (n + 1) * P * C), n * (P + l) * C);
          cat.set(add.data.subarray(n * l * C, (n + 1) * l * C), (n * (P + l) + P) * C);
        }
        expect(matmul[name].shape).toEqual([N, P + l, C]);
        expect(matmul[name].data).toEqual(cat);
      }
    });
  }
});

describe("GroupNorm (CUDA-only when fused)", () => {
  const [N, C, Hh, W, groups, eps] = [2, 64, 3, 5, 32, 1e-6];
  const gamma = randn([C], 0.5);
  const beta = randn([C], 0.2);

  it("the plain form computes GroupNorm (+ SiLU) as documented for com.microsoft GroupNorm", async () => {
    const x = randn([N, C, Hh, W], 2);
    const body = (g: GraphBuilder, v: Record<string, Value>) => ({
      y: groupNormOf(g, PLAIN_FORM, v.x, gamma, beta, { groups, eps }),
      ySilu: groupNormOf(g, PLAIN_FORM, v.x, gamma, beta, { groups, eps, silu: true }),
    });
    const out = await runForm(PLAIN_FORM, { x }, body);
    const shape = [N, C, Hh, W];
    const ref = (s: boolean) => refGroupNorm(x.data, shape, gamma.data, beta.data, groups, eps, s);
    expect(relErr("groupNorm plain vs float64", out.y, ref(false))).toBeLessThan(1e-5);
    expect(relErr("groupNorm+SiLU plain vs float64", out.ySilu, ref(true))).toBeLessThan(1e-5);
  });

  it("the fused form is NHWC com.microsoft GroupNorm with SiLU fused, float32 gamma/beta, between transposes", () => {
    for (const form of [FUSED, HALF]) {
      const g = new GraphBuilder("gn");
      const x = toFormPrecision(g, form, g.input("x", "float32", ["N", C, "H", "W"]));
      g.output(toFloat32Value(g, form, groupNormOf(g, form, x, gamma, beta, { groups, eps, silu: true })), "y");
      const model = fromBinary(ModelProtoSchema, g.build().bytes).graph!;
      const types = model.node.map((n) => n.opType);
      const at = types.indexOf("GroupNorm");
      expect(types.slice(at - 1, at + 2)).toEqual(["Transpose", "GroupNorm", "Transpose"]);
      const [pre, gn, post] = model.node.slice(at - 1, at + 2);
      const ints = (n: typeof gn, name: string) => n.attribute.find((a) => a.name === name);
      expect(ints(pre, "perm")!.ints.map(Number)).toEqual([0, 2, 3, 1]);
      expect(ints(post, "perm")!.ints.map(Number)).toEqual([0, 3, 1, 2]);
      expect(gn.domain).toBe("com.microsoft");
      expect(Number(ints(gn, "activation")!.i)).toBe(1);
      expect(Number(ints(gn, "channels_last")!.i)).toBe(1);
      expect(Number(ints(gn, "groups")!.i)).toBe(groups);
      expect(ints(gn, "epsilon")!.f).toBeCloseTo(eps, 12);
      const inits = new Map(model.initializer.map((t) => [t.name, t]));
      for (const name of gn.input.slice(1)) expect(inits.get(name)!.dataType).toBe(1); // FLOAT, also in float16
      expect(types.includes("Sigmoid")).toBe(false);
    }
  });

  it("falls back to the plain form for channel counts the CUDA kernel refuses", () => {
    expect(cudaGroupNormSupports(128, 32)).toBe(true);
    expect(cudaGroupNormSupports(96, 32)).toBe(false); // 3 channels per group: the kernel needs an even count
    const g = new GraphBuilder("gn-odd");
    const x = g.input("x", "float32", ["N", 96, "H", "W"]);
    g.output(groupNormOf(g, FUSED, x, randn([96]), randn([96]), { groups, eps, silu: true }), "y");
    const types = opTypes(g.build());
    expect(types).not.toContain("com.microsoft.GroupNorm");
    expect(types).toContain("InstanceNormalization");
  });
});

describe("float16 fused forms on CPU match float32 to float16 accuracy", () => {
  const [N, l, H, d] = [2, 4, 2, 16];
  const C = H * d;
  const eps = 1e-6;

  it("RMSNorm, add + RMSNorm, RoPE and cached attention", async () => {
    const x = randn([N, l, C]);
    const r = randn([N, l, C]);
    const w = randn([C], 0.5);
    const [q, k, v] = [0, 1, 2].map(() => randn([N, l, C]));
    const P = 3;
    const pk = randn([N, H, P, d]);
    const pv = randn([N, H, P, d]);
    const angles = Float32Array.from({ length: N * l * d }, (_, i) => ((i * 7) % 13) * 0.37);
    const cos = tensor("float32", [N, l, d], angles.map(Math.cos));
    const sin = tensor("float32", [N, l, d], angles.map(Math.sin));
    const scale = Math.fround(0.25 / Math.sqrt(d));
    const inputs = { x, r, q, k, v, pk, pv, cos, sin };
    const body = (form: GraphForm) => (g: GraphBuilder, i: Record<string, Value>) => {
      const { sum, y } = addRmsNorm(g, form, i.x, i.r, eps, C, w);
      const att = attentionWithCache(g, form, { q: i.q, k: i.k, v: i.v }, { k: i.pk, v: i.pv }, { heads: H, scale });
      return {
        norm: rmsNormOf(g, form, i.x, eps, C, w),
        sum,
        y,
        rope: ropeOf(g, form, { cos: i.cos, sin: i.sin }, { heads: H, headDim: d })(i.q),
        o: att.o,
        presentK: att.presentK!,
        newK: att.k,
      };
    };
    const full = await runForm(FUSED, inputs, body(FUSED));
    const half = await runForm(HALF, inputs, body(HALF));
    for (const name of ["norm", "sum", "y", "rope", "o", "presentK", "newK"]) {
      expect(relErr(`${name} float16 vs float32`, half[name], full[name])).toBeLessThan(1e-2);
    }
  });
});
