import { benchArgs, benchTensor, measureMatMulRate, memoryStats, runBenchChild } from "@hart/core";
import { HartTokenizer, parseTokenizerConfig, RELEASE_TOKENIZER_CONFIG, randomTokenizerStateDict } from "../src/index";
import { decoderFlops } from "./flops";

const { args, arg } = benchArgs();
const threads = args.includes("--threads") ? Number(arg("threads", "0")) : undefined;
const runs = Math.max(1, Number(arg("runs", "2")));
const attention = arg("attention", "mha") as "mha" | "plain";
const matmulSide = Number(arg("matmul", "2048"));

/** The released tokenizer's shape ({@link RELEASE_TOKENIZER_CONFIG}), latent side `side`. */
function fullSizeConfig(side: number) {
  const raw = RELEASE_TOKENIZER_CONFIG;
  return parseTokenizerConfig({ ...raw, v_patch_nums: [...raw.v_patch_nums.filter((p) => p < side), side] });
}

/**
 * Child: one decode size; prints one JSON line. The MatMul rate is measured right before and
 * right after the timed run, because the machine's load changes over minutes.
 */
async function child(side: number): Promise<void> {
  const config = fullSizeConfig(side);
  const sd = randomTokenizerStateDict(config, { parts: ["decoder"] });
  const tok = HartTokenizer.fromStateDict(config, sd, { intraOpThreads: threads, attention });
  const latent = benchTensor([1, config.zChannels, side, side], 12345);
  const times: number[] = [];
  const matmul: number[] = [];
  for (let r = 0; r < runs; r++) {
    if (r === runs - 1)
      matmul.push((await measureMatMulRate({ rows: matmulSide, width: matmulSide, intraOpThreads: threads })).wall);
    const t0 = performance.now();
    const image = await tok.decode(latent);
    times.push((performance.now() - t0) / 1000);
    if (image.shape[2] !== side * 16) throw new Error(`unexpected output shape ${image.shape}`);
  }
  matmul.push((await measureMatMulRate({ rows: matmulSide, width: matmulSide, intraOpThreads: threads })).wall);
  const flops = decoderFlops(config, side);
  const peakRssGB = memoryStats().peak / 1e9;
  console.log(JSON.stringify({ side, times, flops, peakRssGB, matmul }));
  await tok.release();
}

async function parent(): Promise<void> {
  const sides = arg("sides", "64,32").split(",").map(Number);
  console.log(`threads: ${threads ?? "default"}, attention: ${attention}, runs: ${runs} (the last one is timed)`);
  for (const side of sides) {
    const r = runBenchChild(import.meta.url, args, side);
    const t = r.times[r.times.length - 1];
    const rate = r.flops / t / 1e9;
    const mm = Math.max(...r.matmul);
    console.log(
      `decode ${side}×${side}×32 → ${side * 16}×${side * 16}: ${t.toFixed(2)} s (runs: ${r.times.map((x: number) => x.toFixed(2)).join(", ")} s), ` +
        `${(r.flops / 1e9).toFixed(0)} GFLOP, ${rate.toFixed(1)} GFLOP/s = ${((100 * rate) / mm).toFixed(0)}% of the MatMul rate ` +
        `(${r.matmul.map((x: number) => x.toFixed(1)).join(" before, ")} after; the higher is used), peak RSS ${r.peakRssGB.toFixed(2)} GB`,
    );
  }
}

if (args.includes("--child")) await child(Number(arg("child", "64")));
else await parent();
