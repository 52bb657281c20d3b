/**
 * Plain vs fused graph forms on one device: a HART-shaped transformer block (RMSNorm, QKV, 2-D rotate-half RoPE,
 * attention over a KV cache, projection, residual + RMSNorm, SwiGLU, residual) built with `@hart/core`'s form
 * helpers, timed per run, plus what returning the KV cache costs in onnxruntime-node: the fused block returning this
 * scale's keys/values (what hart does) vs returning MultiHeadAttention's whole `present` cache (what a
 * device-resident cache would return if the Node binding could keep it on the GPU).
 *
 *   npm run bench -w @hart/kernels-cuda                                    # CPU, small shapes
 *   npm run bench -w @hart/kernels-cuda -- --device cuda --width 1536 --heads 24 --tokens 4096 --past 5654
 *
 * Options: --device cpu|cuda|webgpu, --width C, --heads H, --rows N (2B), --tokens l, --past P, --runs R
 * (best of R after two warm-ups), --threads T (CPU).
 */
import {
  addRmsNorm,
  attentionWithCache,
  benchTensor,
  createSession,
  type Device,
  formWeight,
  GraphBuilder,
  type GraphForm,
  linearOI,
  PLAIN_FORM,
  rmsNormOf,
  ropeOf,
  silu,
  type Tensor,
  timeIt,
  toFloat16,
  toFloat32Value,
  toFormPrecision,
  type Value,
} from "@hart/core";
import { registerGpuProviders } from "../src/index";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const device = arg("device", "cpu") as Device;
const C = Number(arg("width", "256"));
const H = Number(arg("heads", "4"));
const N = Number(arg("rows", "2"));
const l = Number(arg("tokens", "256"));
const P = Number(arg("past", "512"));
const runs = Number(arg("runs", "3"));
const threads = process.argv.includes("--threads") ? Number(arg("threads", "2")) : undefined;
const hd = C / H;
const hidden = 4 * C;

const weights = {
  qkv: benchTensor([3 * C, C], 1, Math.sqrt(3 / C)),
  proj: benchTensor([C, C], 2, Math.sqrt(3 / C)),
  gateUp: benchTensor([2 * hidden, C], 3, Math.sqrt(3 / C)),
  down: benchTensor([C, hidden], 4, Math.sqrt(3 / hidden)),
  norm: benchTensor([C], 5, 0.1),
};

/** One block; `kv` picks which cache update the fused form returns. */
function block(form: GraphForm, kv: "new" | "present") {
  const g = new GraphBuilder(`bench-block-${form.flavour}-${form.precision}-${kv}`);
  const input = (name: string, shape: (string | number)[]) => toFormPrecision(g, form, g.input(name, "float32", shape));
  const x = input("x", ["N", "l", C]);
  const cos = input("cos", ["N", "l", hd]);
  const sin = input("sin", ["N", "l", hd]);
  const heads = form.flavour === "fused";
  const pastShape = heads ? ["N", H, "P", hd] : ["N", "P", C];
  const pastK = g.input("pastK", form.precision, pastShape);
  const pastV = g.input("pastV", form.precision, pastShape);
  const W = (t: Tensor) => formWeight(g, form, t);
  const h = rmsNormOf(g, form, x, 1e-6, C, weights.norm);
  const [q, k, v] = g.opMulti(
    "Split",
    [linearOI(g, h, W(weights.qkv)), g.ints([C, C, C])],
    { axis: -1 },
    { outputs: 3 },
  );
  const rotate = ropeOf(g, form, { cos, sin, foldedSign: true }, { heads: H, headDim: hd });
  const att = attentionWithCache(
    g,
    form,
    { q: rotate(q), k: rotate(k), v },
    { k: pastK, v: pastV },
    { heads: H, scale: Math.fround(0.25 / Math.sqrt(hd)) },
  );
  const { sum, y: h2 } = addRmsNorm(g, form, x, linearOI(g, att.o, W(weights.proj)), 1e-6, C, weights.norm);
  const [gate, up] = g.opMulti(
    "Split",
    [linearOI(g, h2, W(weights.gateUp)), g.ints([hidden, hidden])],
    { axis: -1 },
    { outputs: 2 },
  );
  const y: Value = g.op("Add", [sum, linearOI(g, g.op("Mul", [silu(g, gate), up]), W(weights.down))]);
  g.output(toFloat32Value(g, form, y), "y");
  const present = kv === "present" && att.presentK && att.presentV;
  g.output(present ? att.presentK! : att.k, "k", form.precision);
  g.output(present ? att.presentV! : att.v, "v", form.precision);
  return g.build();
}

async function bench(label: string, form: GraphForm, kv: "new" | "present") {
  const heads = form.flavour === "fused";
  const past = (seed: number) => {
    const t = benchTensor(heads ? [N, H, P, hd] : [N, P, C], seed);
    return form.precision === "float16" ? toFloat16(t) : t;
  };
  const angles = benchTensor([N, l, hd], 8, 3);
  const feeds: Record<string, Tensor> = {
    x: benchTensor([N, l, C], 7),
    cos: { ...angles, data: angles.data.map(Math.cos) },
    sin: { ...angles, data: angles.data.map(Math.sin) },
    pastK: past(9),
    pastV: past(10),
  };
  let session: Awaited<ReturnType<typeof createSession>>;
  try {
    session = await createSession(block(form, kv), { device, intraOpThreads: threads, label });
  } catch (err) {
    console.log(`${label.padEnd(36)} not run: ${(err as Error).message.split("\n")[0]}`);
    return;
  }
  for (let i = 0; i < 2; i++) await session.run(feeds);
  let best = Number.POSITIVE_INFINITY;
  let kvBytes = 0;
  for (let i = 0; i < runs; i++) {
    let out: Record<string, Tensor> = {};
    const t = await timeIt(async () => {
      out = await session.run(feeds);
    });
    best = Math.min(best, t.wall);
    kvBytes = out.k.data.byteLength + out.v.data.byteLength;
  }
  await session.release();
  const flops = 2 * N * l * (3 * C * C + C * C + 3 * C * hidden) + 4 * N * l * (P + l) * C;
  console.log(
    `${label.padEnd(36)} ${(best * 1000).toFixed(1).padStart(9)} ms  ${(flops / best / 1e9).toFixed(1).padStart(7)} GFLOP/s  KV out ${(kvBytes / 2 ** 20).toFixed(1)} MiB`,
  );
}

registerGpuProviders();
console.log(
  `device ${device}: block C=${C}, H=${H}, N=${N}, l=${l} new tokens over P=${P} cached (best of ${runs} after 2 warm-ups)`,
);
await bench("plain float32", PLAIN_FORM, "new");
await bench("fused float32 (new k/v out)", { flavour: "fused", precision: "float32" }, "new");
await bench("fused float32 (present out)", { flavour: "fused", precision: "float32" }, "present");
await bench("fused float16 (new k/v out)", { flavour: "fused", precision: "float16" }, "new");
await bench("fused float16 (present out)", { flavour: "fused", precision: "float16" }, "present");
