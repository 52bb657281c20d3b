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
 *   npx tsx bench/e2e.ts --ends 64 --device webgpu   # 1024 px on a GPU (--dtype float16 with fused forms)
 *   npx tsx bench/e2e.ts --ends 16 --dtype int8      # int8 transformer blocks on CPU (faster, not exact)
 *
 * Each schedule runs in its own child process so its peak RSS is its own.
 */
import type { HartTransformer } from "@hart/ar";
import { benchArgs, type Device, measureMatMulRate, memoryStats, runBenchChild } from "@hart/core";
import { registerGpuProviders } from "@hart/kernels-cuda";
import { randomReleasePipeline } from "../src/index";

const { args, arg } = benchArgs();
const runs = Math.max(1, Number(arg("runs", "2")));
const PYTORCH_256PX_S = 27;

const device = arg("device", "cpu") as Device;
const dtype = arg("dtype", "float32") as "float32" | "float16" | "int8";

async function child(end: number): Promise<void> {
  if (device !== "cpu") registerGpuProviders();
  const t0 = performance.now();
  const pipeline = await randomReleasePipeline({ resolution: end * 16, device, dtype });
  const loadS = (performance.now() - t0) / 1000;
  const patchNums = [...(pipeline.transformer as HartTransformer).patchNums];
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
          ? `\n  vs the official PyTorch code on this CPU (≈ ${PYTORCH_256PX_S} s, float32): ${(PYTORCH_256PX_S / (best.totalMs / 1000)).toFixed(2)}× ` +
            (dtype === "float32" ? "(target ≥ 1.8×)" : `(${dtype}: not the same precision; the target is for float32)`)
          : ""),
    );
  }
}

if (args.includes("--child")) await child(Number(arg("child", "16")));
else await parent();
