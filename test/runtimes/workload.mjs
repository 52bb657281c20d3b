// Runs under Node, Bun or Deno (started by smoke.mjs): loads the BUILT @hart/core, builds and runs a
// small graph, checks it against a float64 reference computed here, and reports one JSON line.
// Lines starting with "stage:" tell smoke.mjs how far it got (a failure before the first session
// exists means the runtime cannot load onnxruntime-node's native addon).

const runtime = typeof Deno !== "undefined" ? "deno" : typeof Bun !== "undefined" ? "bun" : "node";
const version = runtime === "deno" ? Deno.version.deno : runtime === "bun" ? Bun.version : process.versions.node;

const core = await import("../../packages/core/dist/index.js");
console.log("stage: imported");
const { GraphBuilder, createSession, createRng, encodePng, decodePng, f, rmsNorm } = core;

// --- a graph: RMSNorm → MatMul → Softmax, and MatMul → MultiHeadAttention (com.microsoft) ---
const [B, S, H, d, V] = [2, 3, 2, 4, 5];
const D = H * d;
const rng = createRng(2024);
const x = rng.normal([B, S, D]);
const w = rng.normal([D, V]);
const wq = rng.normal([D, D]);
const scale = 0.25 / Math.sqrt(d);
const g = new GraphBuilder("runtimes-smoke", { externalThreshold: 64 }); // weights go through externalData
const xIn = g.input("x", "float32", ["B", S, D]);
g.output(g.op("Softmax", [g.op("MatMul", [rmsNorm(g, xIn, 1e-6), g.weight(w)])], { axis: -1 }), "probs");
const q = g.op("MatMul", [xIn, g.weight(wq)]);
g.output(
  g.op("MultiHeadAttention", [q, xIn, xIn], { num_heads: H, scale: f(scale) }, { domain: "com.microsoft" }),
  "att",
);
const session = await createSession(g.build(), { intraOpThreads: 1 });
console.log("stage: session");
const out = await session.run({ x });
await session.release();

// --- float64 reference ---
const X = Float64Array.from(x.data);
const softmax = (row) => {
  const m = Math.max(...row);
  const e = row.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};
const refProbs = [];
const refAtt = new Float64Array(B * S * D);
const Q = new Float64Array(B * S * D);
for (let r = 0; r < B * S; r++) {
  const row = X.subarray(r * D, (r + 1) * D);
  const inv = 1 / Math.sqrt(row.reduce((s, v) => s + v * v, 0) / D + 1e-6);
  const logits = [];
  for (let j = 0; j < V; j++) {
    let s = 0;
    for (let i = 0; i < D; i++) s += row[i] * inv * w.data[i * V + j];
    logits.push(s);
  }
  refProbs.push(...softmax(logits));
  for (let j = 0; j < D; j++) {
    let s = 0;
    for (let i = 0; i < D; i++) s += row[i] * wq.data[i * D + j];
    Q[r * D + j] = s;
  }
}
for (let b = 0; b < B; b++)
  for (let h = 0; h < H; h++)
    for (let s = 0; s < S; s++) {
      const scores = [];
      for (let l = 0; l < S; l++) {
        let dot = 0;
        for (let i = 0; i < d; i++) dot += Q[(b * S + s) * D + h * d + i] * X[(b * S + l) * D + h * d + i];
        scores.push(dot * scale);
      }
      const p = softmax(scores);
      for (let i = 0; i < d; i++) {
        let acc = 0;
        for (let l = 0; l < S; l++) acc += p[l] * X[(b * S + l) * D + h * d + i];
        refAtt[(b * S + s) * D + h * d + i] = acc;
      }
    }
const relErr = (a, ref) => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (a[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return a.length === ref.length ? Math.sqrt(num / den) : Number.POSITIVE_INFINITY;
};

// --- RNG bits (must be identical on every runtime) and a PNG round trip ---
const r = createRng(42);
const draws = [r.uniform(257), r.normal(257), r.gumbel(257), r.split("x").normal(64)];
let hash = 0xcbf29ce484222325n;
for (const a of draws)
  for (const byte of new Uint8Array(a.buffer)) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
const img = { width: 3, height: 2, data: Uint8Array.from({ length: 18 }, (_, i) => i * 14) };
const back = decodePng(encodePng(img));
const pngOk = back.width === 3 && back.height === 2 && back.data.every((v, i) => v === img.data[i]);

console.log(
  JSON.stringify({
    runtime,
    version,
    relErrProbs: relErr(out.probs.data, refProbs),
    relErrAtt: relErr(out.att.data, refAtt),
    rngHash: hash.toString(16),
    pngOk,
  }),
);
