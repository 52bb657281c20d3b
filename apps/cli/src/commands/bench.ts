import { assertDeviceUsable } from "@hart/core";
import { type GenerationResult, type HartPipeline, randomReleasePipeline, sampleDefaultPrompts } from "@hart/pipeline";
import { Command } from "commander";
import { addModelOptions, addSamplingOptions, type CliContext, intArg } from "../cli";
import { loadPipeline, type ModelOptions } from "../load";
import { formatMs, ProgressBar } from "../progress";

interface BenchOptions extends ModelOptions {
  batchSize: number;
  warmup: number;
  iters: number;
  seed: number;
  cfg: number;
  moreSmooth?: boolean;
  maxTokenLength?: number;
  json?: boolean;
  randomWeights?: boolean;
  resolution: number;
}

type StageKey = "textMs" | "arMs" | "diffusionMs" | "decodeMs" | "totalMs";
const STAGES: [StageKey, string][] = [
  ["textMs", "text encoder"],
  ["arMs", "transformer"],
  ["diffusionMs", "residual diffusion"],
  ["decodeMs", "decoder"],
  ["totalMs", "end to end"],
];

/** `hart bench`: the release's `latency_profile.py` — per-stage latency and throughput after warm-up. */
export function benchCommand(ctx: CliContext): Command {
  const cmd = new Command("bench")
    .description(
      "measure per-stage latency and throughput over repeated generations after warm-up (latency_profile.py)",
    )
    .option("--batch-size <n>", "images per generation (default prompts)", intArg("--batch-size", 1), 1)
    .option("--warmup <n>", "untimed generations first (the release: 50)", intArg("--warmup", 0), 2)
    .option("--iters <n>", "timed generations (the release: 100)", intArg("--iters", 1), 5)
    .option("--json", "print JSON")
    .option(
      "--random-weights",
      "the release's shapes with random weights, built in memory (no download; Qwen2 replaced by a fixed context)",
    )
    .option(
      "--resolution <px>",
      "with --random-weights: output side, a multiple of 16 up to 1024",
      intArg("--resolution", 16),
      1024,
    );
  return addModelOptions(addSamplingOptions(cmd)).action(async (opts: BenchOptions) => {
    const bar = new ProgressBar(ctx.stderr, !opts.json);
    try {
      let pipeline: HartPipeline;
      if (opts.randomWeights) {
        assertDeviceUsable(opts.device);
        bar.update("Building random release-shaped model…", undefined, "", true);
        pipeline = await randomReleasePipeline({
          resolution: opts.resolution,
          device: opts.device,
          dtype: opts.dtype,
          seed: opts.seed,
        });
      } else pipeline = await loadPipeline(opts, ctx, bar);
      const prompts = sampleDefaultPrompts(opts.batchSize, opts.seed);
      while (prompts.length < opts.batchSize) prompts.push(prompts[prompts.length % 9]);
      const runs: GenerationResult["timings"][] = [];
      const total = opts.warmup + opts.iters;
      for (let i = 0; i < total; i++) {
        bar.update(i < opts.warmup ? "Warm-up" : "Timing", i / total, `${i + 1}/${total}`, true);
        const r = await pipeline.generate({
          prompts,
          seed: opts.seed,
          cfg: opts.cfg,
          moreSmooth: opts.moreSmooth ?? true,
          maxTokenLength: opts.maxTokenLength,
          signal: ctx.signal,
        });
        if (i >= opts.warmup) runs.push(r.timings);
      }
      bar.clear();
      const stats = Object.fromEntries(STAGES.map(([key]) => [key, summarize(runs.map((t) => t[key]))]));
      const scales = runs[0].arScaleMs.map((_, si) => summarize(runs.map((t) => t.arScaleMs[si] ?? 0)).mean);
      const throughput = (opts.batchSize * 1000) / stats.totalMs.mean;
      if (opts.json) {
        ctx.stdout.write(
          `${JSON.stringify({ ...(opts.randomWeights ? { randomWeights: true, resolution: opts.resolution, device: opts.device, dtype: opts.dtype } : {}), batchSize: opts.batchSize, warmup: opts.warmup, iters: opts.iters, stagesMs: stats, arScaleMeanMs: scales, imagesPerSecond: throughput }, null, 2)}\n`,
        );
        return;
      }
      const lines = [
        ...(opts.randomWeights
          ? [
              `release shapes, random weights, ${opts.resolution} px on ${opts.device} (${opts.dtype}); text encoder left out`,
            ]
          : []),
        `batch ${opts.batchSize}, ${opts.warmup} warm-up + ${opts.iters} timed runs (cfg ${opts.cfg}, more_smooth ${opts.moreSmooth ?? true})`,
        `${"stage".padEnd(20)}${"mean".padStart(10)}${"median".padStart(10)}${"min".padStart(10)}${"max".padStart(10)}`,
        ...STAGES.map(
          ([key, name]) =>
            `${name.padEnd(20)}${[stats[key].mean, stats[key].median, stats[key].min, stats[key].max].map((v) => formatMs(v).padStart(10)).join("")}`,
        ),
        `transformer per scale (mean): ${scales.map((v) => formatMs(v)).join(", ")}`,
        `throughput: ${throughput.toFixed(3)} images/s; ${formatMs(stats.totalMs.mean / opts.batchSize)} per image`,
      ];
      ctx.stdout.write(`${lines.join("\n")}\n`);
    } finally {
      bar.clear();
    }
  });
}

function summarize(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return {
    mean: values.reduce((s, v) => s + v, 0) / values.length,
    median: sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2,
    min: sorted[0],
    max: sorted[sorted.length - 1],
  };
}
