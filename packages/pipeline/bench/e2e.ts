/**
 * End-to-end latency of one text-to-image generation with the release's
 * shapes (random weights): transformer (depth 24, width 1536), residual
 * diffusion (width 1024, depth 6, 8 steps) and the full-size tokenizer
 * decoder, B = 1 with classifier-free guidance (cfg 4.5, more smooth), for
 * schedules ending at 16 (256 px) and 32 (512 px). The text encoder is left
 * out (a fixed random context stands in), which is how the reference figure
 * the project compares with was taken: the official PyTorch code with the
 * 732M-parameter release shapes and a 256 px schedule, ≈ 27 s per image on
 * this machine's CPU (target: ≥ 1.8× faster, i.e. ≤ 15 s).
 *
 *   npm run bench -w @hart/pipeline                  # ends 16,32; 1 warm-up + 2 timed runs
 *   npx tsx bench/e2e.ts --ends 16 --runs 1          # quick check
 *
 * Each schedule runs in its own child process so its peak RSS is its own.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { HartTransformer, parseConfig, randomTransformerStateDict } from "@hart/ar";
import { benchTensor, measureMatMulRate, memoryStats, runBenchChild, tensor } from "@hart/core";
import { diffusionHeadConfig, ResidualDiffusion, randomDiffusionStateDict } from "@hart/residual-diffusion";
import type { EncodedPrompts, TextEncoder } from "@hart/text-encoder";
import { HartTokenizer, parseTokenizerConfig, randomTokenizerStateDict } from "@hart/tokenizer";
import { HartPipeline } from "../src/index";

const args = process.argv.slice(2);
const arg = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const runs = Math.max(1, Number(arg("runs", "2")));
const PYTORCH_256PX_S = 27;

/** The release transformer config, shared with @hart/ar's bench. */
const releaseConfig = JSON.parse(
  readFileSync(fileURLToPath(new URL("../../ar/bench/release-config.json", import.meta.url)), "utf8"),
) as Record<string, unknown> & { patch_nums: number[] };

/** Stands in for Qwen2: a fixed random context of the release's shape (48 valid tokens of 300). */
function fixedContext(tokens: number, dim: number): TextEncoder {
  const valid = 48;
  const context: EncodedPrompts = {
    contextBLD: benchTensor([1, tokens, dim], 7),
    mask: tensor(
      "bool",
      [1, tokens],
      Uint8Array.from({ length: tokens }, (_, i) => (i < valid ? 1 : 0)),
    ),
    positionIds: tensor(
      "int64",
      [1, tokens],
      BigInt64Array.from({ length: tokens }, (_, i) => BigInt(Math.min(i, valid - 1))),
    ),
    tokens: tensor("int64", [1, tokens], new BigInt64Array(tokens)),
  };
  return { hiddenSize: dim, encode: async () => context, release: async () => {} };
}

/** The released tokenizer's shape, shared with @hart/tokenizer's bench. */
const releaseTokenizerConfig = JSON.parse(
  readFileSync(fileURLToPath(new URL("../../tokenizer/bench/release-config.json", import.meta.url)), "utf8"),
) as Record<string, unknown>;

async function child(end: number): Promise<void> {
  const patchNums = [...releaseConfig.patch_nums.filter((p) => p < end), end];
  const cfg = parseConfig({ ...releaseConfig, patch_nums: patchNums }, "ar/bench/release-config.json");
  const tokConfig = parseTokenizerConfig({ ...releaseTokenizerConfig, v_patch_nums: patchNums });
  const t0 = performance.now();
  const tokenizer = HartTokenizer.fromStateDict(tokConfig, randomTokenizerStateDict(tokConfig, { parts: ["decoder"] }));
  const sd = randomTransformerStateDict(cfg, { vocabSize: tokConfig.vocabSize, latentChannels: tokConfig.zChannels });
  const transformer = await HartTransformer.fromStateDict(cfg, sd, tokenizer.quantizer, { consumeWeights: true });
  const head = diffusionHeadConfig({ ...releaseConfig, patch_nums: patchNums });
  const diffusion = ResidualDiffusion.fromStateDict(randomDiffusionStateDict(head, tokConfig.zChannels), head);
  const pipeline = new HartPipeline({
    textEncoder: fixedContext(cfg.contextToken, cfg.contextDim),
    transformer,
    diffusion,
    tokenizer,
  });
  const loadS = (performance.now() - t0) / 1000;
  const timings = [];
  for (let r = 0; r <= runs; r++) {
    const result = await pipeline.generate({ prompts: ["a bench"], seed: r, cfg: 4.5, moreSmooth: true });
    if (r > 0) timings.push(result.timings); // the first run is a warm-up
  }
  console.log(JSON.stringify({ end, patchNums, loadS, timings, peakRss: memoryStats().peak }));
}

async function parent(): Promise<void> {
  const ends = arg("ends", "16,32").split(",").map(Number);
  const mm = await measureMatMulRate();
  console.log(
    `onnxruntime MatMul rate now: ${mm.wall.toFixed(0)} GFLOP/s (the machine's load moves every number here)`,
  );
  for (const end of ends) {
    const r = runBenchChild(import.meta.url, args, end);
    const best = r.timings.reduce((a: { totalMs: number }, b: { totalMs: number }) => (b.totalMs < a.totalMs ? b : a));
    const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    console.log(
      `\n${end * 16} px (schedule ends at ${end}, ${r.patchNums.length} scales; B = 1, cfg 4.5; load ${r.loadS.toFixed(1)} s)\n` +
        `  best of ${r.timings.length}: total ${s(best.totalMs)} = transformer ${s(best.arMs)} + diffusion ${s(best.diffusionMs)} + decode ${s(best.decodeMs)}\n` +
        `  all runs: ${r.timings.map((t: { totalMs: number }) => s(t.totalMs)).join(", ")}; peak RSS ${(r.peakRss / 2 ** 30).toFixed(2)} GiB` +
        (end === 16
          ? `\n  vs the official PyTorch code on this CPU (≈ ${PYTORCH_256PX_S} s): ${(PYTORCH_256PX_S / (best.totalMs / 1000)).toFixed(2)}× (target ≥ 1.8×)`
          : ""),
    );
  }
}

if (args.includes("--child")) await child(Number(arg("child", "16")));
else await parent();
