/**
 * Residual diffusion bench: one full sampling run (the release's 8 iDDPM steps
 * with CFG) of a SimpleMLPAdaLN with the release's sizes (width 1024, 6 blocks,
 * condition width 1536, Cvae 32; random weights) for 2 × 4096 tokens (one
 * 1024 px image with CFG) and 2 × 1024 tokens, on CPU. Prints the network's
 * GFLOP/s next to onnxruntime's plain MatMul rate measured here on the same
 * GEMM shape ([N, w] × [w, w]) — the target is ≥ 60 % of it, since the head is
 * pure GEMM work — and the time spent in the TypeScript scheduler steps.
 *
 *   npm run bench -w @hart/residual-diffusion
 *   npx tsx bench/sample.ts --tokens 512 --width 256 --reps 1   # quick check
 *
 * Options: --tokens 4096,1024 (per half of the CFG batch), --width 1024,
 * --depth 6, --cond 1536, --channels 32, --steps 8, --reps 1, --threads N.
 *
 * Both rates are also given per CPU-second (process user+system time): on a
 * shared machine wall time swings with other load, CPU time much less (with
 * `--threads 1` there is no thread-pool spinning in it either), so the CPU
 * ratio is the steadier comparison.
 */
import { benchArgs, benchTensor, measureMatMulRate, timeIt } from "@hart/core";
import {
  ResidualDiffusion,
  type ResidualScheduler,
  randomDiffusionStateDict,
  type SchedulerStepInput,
  ZeroNoise,
} from "../src/index";

const { args, arg } = benchArgs();
const tokenList = arg("tokens", "4096,1024").split(",").map(Number);
const width = Number(arg("width", "1024"));
const depth = Number(arg("depth", "6"));
const condWidth = Number(arg("cond", "1536"));
const channels = Number(arg("channels", "32"));
const steps = arg("steps", "8");
const reps = Number(arg("reps", "1"));
const threads = args.includes("--threads") ? Number(arg("threads", "0")) : undefined;

/** Deterministic pseudo-random weights, uniform with variance 1/fanIn. */
const randomTensor = (shape: number[], fanIn: number, seed: number) => benchTensor(shape, seed, Math.sqrt(3 / fanIn));

const releaseShapedStateDict = () => randomDiffusionStateDict({ width, depth, condWidth }, channels);

/** FLOPs of one network evaluation per token (multiply-adds × 2), and of the condition embedding. */
const stepFlopsPerToken = 2 * (channels * width + depth * 5 * width * width + 2 * width * width + width * 2 * channels);
const condFlopsPerToken = 2 * condWidth * width;

/** Wraps a scheduler to time its (TypeScript) steps. */
function timed(inner: ResidualScheduler, clock: { ms: number }): ResidualScheduler {
  return {
    name: inner.name,
    indices: inner.indices,
    modelTimestep: (i) => inner.modelTimestep(i),
    step(input: SchedulerStepInput) {
      const t0 = performance.now();
      const out = inner.step(input);
      clock.ms += performance.now() - t0;
      return out;
    },
  };
}

const diffusion = ResidualDiffusion.fromStateDict(
  releaseShapedStateDict(),
  { width, depth, condWidth, numSamplingSteps: steps, sampler: "iddpm" },
  { intraOpThreads: threads },
);
const numSteps = diffusion.scheduler.indices.length;
console.log(
  `residual diffusion bench: width ${width}, depth ${depth}, cond ${condWidth}, Cvae ${channels}, ${numSteps} steps, CFG, threads ${threads ?? "default"}`,
);
for (const tokens of tokenList) {
  const n = 2 * tokens;
  const cond = randomTensor([n, condWidth], 1, 11);
  const clock = { ms: 0 };
  const scheduler = timed(diffusion.scheduler, clock);
  // warm-up: builds the sessions; its 8 network runs also warm the arena
  await diffusion.sample(cond, { cfg: 4.5, noise: new ZeroNoise(), scheduler });
  clock.ms = 0;
  const m = await timeIt(async () => {
    for (let r = 0; r < reps; r++) await diffusion.sample(cond, { cfg: 4.5, noise: new ZeroNoise(), scheduler });
  });
  const gflop = (reps * n * (numSteps * stepFlopsPerToken + condFlopsPerToken)) / 1e9;
  const rate = { wall: gflop / m.wall, cpu: gflop / m.cpu };
  const ref = await measureMatMulRate({ rows: n, width, intraOpThreads: threads });
  const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(0)} %`;
  console.log(
    `2 x ${tokens} tokens: ${(m.wall / reps).toFixed(2)} s per sampling run (${(gflop / reps / 1000).toFixed(2)} TFLOP), ` +
      `TS scheduler steps ${(clock.ms / reps).toFixed(1)} ms\n` +
      `  wall: ${rate.wall.toFixed(1)} GFLOP/s = ${pct(rate.wall, ref.wall)} of MatMul ${ref.wall.toFixed(1)} GFLOP/s\n` +
      `  CPU:  ${rate.cpu.toFixed(1)} GFLOP/CPU-s = ${pct(rate.cpu, ref.cpu)} of MatMul ${ref.cpu.toFixed(1)} GFLOP/CPU-s (target ≥ 60 %)`,
  );
}
await diffusion.release();
