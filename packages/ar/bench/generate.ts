import { benchArgs, benchTensor, measureMatMulRate, memoryStats, runBenchChild, type Tensor, tensor } from "@hart/core";
import {
  HartQuantizer,
  parseTokenizerConfig,
  RELEASE_TOKENIZER_CONFIG,
  randomTokenizerStateDict,
} from "@hart/tokenizer";
import { HartTransformer, parseConfig, RELEASE_TRANSFORMER_CONFIG, randomTransformerStateDict } from "../src/index";
import { scaleFlops } from "./flops";

const { args, arg } = benchArgs();
const threads = args.includes("--threads") ? Number(arg("threads", "0")) : undefined;
const runs = Math.max(1, Number(arg("runs", "2")));
const GB = 1e9;

/** The believed release schedule cut to end at `end`. */
function schedule(release: number[], end: number): number[] {
  return [...release.filter((p) => p < end), end];
}

const randomTensor = (shape: number[], seed: number) => benchTensor(shape, seed);

/** Child: one schedule; prints one JSON line. */
async function child(end: number): Promise<void> {
  const raw: Record<string, unknown> = { ...RELEASE_TRANSFORMER_CONFIG };
  if (args.includes("--depth")) raw.depth = Number(arg("depth", "24"));
  const patchNums = schedule([...RELEASE_TRANSFORMER_CONFIG.patch_nums], end);
  const cfg = parseConfig({ ...raw, patch_nums: patchNums }, "RELEASE_TRANSFORMER_CONFIG");
  const tokConfig = parseTokenizerConfig({ ...RELEASE_TOKENIZER_CONFIG, v_patch_nums: patchNums });
  const tokSd = randomTokenizerStateDict(tokConfig, { parts: [] });
  const quantizer = HartQuantizer.fromWeights(
    tokConfig,
    { has: (k) => tokSd.has(k), get: (k) => tokSd.get(k) as Tensor<"float32"> },
    { intraOpThreads: threads },
  );
  const V = tokConfig.vocabSize;
  const sd = randomTransformerStateDict(cfg, { vocabSize: V, latentChannels: tokConfig.zChannels });
  let weightBytes = 0;
  for (const t of sd.values()) weightBytes += t.data.byteLength;
  const t0 = performance.now();
  const model = await HartTransformer.fromStateDict(cfg, sd, quantizer, {
    patchNums,
    intraOpThreads: threads,
    consumeWeights: true,
    ...(args.includes("--spin") ? { sessionOptions: { config: { "session.intra_op.allow_spinning": "1" } } } : {}),
  });
  const loadS = (performance.now() - t0) / 1000;
  const loadPeakRss = memoryStats().peak;
  const loadedRss = process.memoryUsage().rss;

  const B = 1;
  const T = cfg.contextToken;
  const valid = Math.min(T, 48);
  const context = {
    contextBLD: randomTensor([B, T, cfg.contextDim], 7),
    mask: tensor(
      "bool",
      [B, T],
      Uint8Array.from({ length: T }, (_, i) => (i < valid ? 1 : 0)),
    ),
    positionIds: tensor(
      "int64",
      [B, T],
      BigInt64Array.from({ length: T }, (_, i) => BigInt(Math.min(i, valid - 1))),
    ),
  };
  const runsMs: number[][] = [];
  for (let r = 0; r < runs; r++) {
    const ms: number[] = [];
    await model.generate(context, { cfg: 4.5, seed: r, onProgress: (e) => ms.push(e.elapsedSeconds * 1000) });
    runsMs.push(ms);
  }
  // FLOPs and cache size per scale
  const N = 2 * B;
  let past = 0;
  const flops = patchNums.map((pn, si) => {
    const l = si === 0 ? T : pn * pn;
    // the first scale runs the unconditional rows (all-zero context at position 0) as one token each
    const f =
      si === 0
        ? scaleFlops(cfg, V, B, l, past, 1) + scaleFlops(cfg, V, N - B, 1, past, 1)
        : scaleFlops(cfg, V, N, l, past, l);
    past += l;
    return f;
  });
  const cacheTokens = T + patchNums.slice(1, -1).reduce((a, p) => a + p * p, 0);
  const kvBytes = cfg.depth * 2 * N * cacheTokens * cfg.embedDim * 4;
  const peakRss = memoryStats().peak;
  console.log(
    JSON.stringify({ end, patchNums, loadS, runsMs, flops, weightBytes, kvBytes, peakRss, loadPeakRss, loadedRss }),
  );
  await model.release();
}

async function parent(): Promise<void> {
  const ends = arg("ends", "16,32").split(",").map(Number);
  const mm = (
    await measureMatMulRate({
      rows: Number(arg("matmul", "2048")),
      width: Number(arg("matmul", "2048")),
      intraOpThreads: threads,
    })
  ).wall;
  console.log(`onnxruntime MatMul rate: ${mm.toFixed(1)} GFLOP/s (threads: ${threads ?? "default"})`);
  for (const end of ends) {
    const r = runBenchChild(import.meta.url, args, end);
    const ms: number[] = r.runsMs[r.runsMs.length - 1];
    console.log(`\nschedule [${r.patchNums}] (B = 1, cfg on; load ${r.loadS.toFixed(1)} s)`);
    console.log("  scale  side  tokens     ms   GFLOP  GFLOP/s");
    for (const [si, pn] of r.patchNums.entries()) {
      const g = r.flops[si] / GB;
      console.log(
        `  ${String(si).padStart(5)} ${String(pn).padStart(5)} ${String(si === 0 ? "ctx" : pn * pn).padStart(7)} ${ms[si].toFixed(0).padStart(6)} ${g.toFixed(1).padStart(7)} ${(g / (ms[si] / 1000)).toFixed(1).padStart(8)}`,
      );
    }
    const total = ms.reduce((a, b) => a + b, 0) / 1000;
    const flops = r.flops.reduce((a: number, b: number) => a + b, 0);
    const rate = flops / total / GB;
    const budget = r.weightBytes + r.kvBytes;
    console.log(
      `  total ${total.toFixed(2)} s (runs: ${r.runsMs.map((m: number[]) => (m.reduce((a, b) => a + b, 0) / 1000).toFixed(2)).join(", ")} s), ` +
        `${(flops / GB).toFixed(0)} GFLOP, ${rate.toFixed(1)} GFLOP/s = ${((100 * rate) / mm).toFixed(0)}% of MatMul (target ≥ 50%)`,
    );
    console.log(
      `  peak RSS ${(r.peakRss / GB).toFixed(2)} GB; weights ${(r.weightBytes / GB).toFixed(2)} GB + KV cache ${(r.kvBytes / GB).toFixed(2)} GB → ` +
        `${(r.peakRss / budget).toFixed(2)}× (target ≤ 1.5×); peak while loading ${(r.loadPeakRss / GB).toFixed(2)} GB, ` +
        `RSS after loading ${(r.loadedRss / GB).toFixed(2)} GB`,
    );
  }
}

if (args.includes("--child")) await child(Number(arg("child", "16")));
else await parent();
