/**
 * Measuring helpers shared by every package's benchmark script, so that all
 * benches report the same reference rate and the same memory figures.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { GraphBuilder } from "./graph/builder";
import { xorshiftUniform } from "./rng";
import { createSession } from "./session";
import { type Tensor, tensor } from "./tensor";

/** Resident memory in bytes: current RSS, its anonymous (not file-backed) part and the peak RSS. */
export interface MemoryStats {
  /** Current resident set size in bytes (`VmRSS`). */
  rss: number;
  /** Anonymous (not file-backed) part of {@link rss} in bytes (`RssAnon`); equals {@link rss} off Linux. */
  anon: number;
  /** Peak resident set size of the process so far, in bytes (`VmHWM`, or `maxRSS` off Linux). */
  peak: number;
}

/** Reads {@link MemoryStats} from `/proc/self/status` on Linux (elsewhere anon = RSS, peak = maxRSS). */
export function memoryStats(): MemoryStats {
  try {
    const status = readFileSync("/proc/self/status", "utf8");
    const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN) * 1024;
    return { rss: kb("VmRSS"), anon: kb("RssAnon"), peak: kb("VmHWM") };
  } catch {
    const rss = process.memoryUsage().rss;
    return { rss, anon: rss, peak: process.resourceUsage().maxRSS * 1024 };
  }
}

/** Wall and CPU (all threads) seconds of `fn`. CPU time is steadier on a shared machine. */
export async function timeIt(fn: () => Promise<unknown>): Promise<{
  /** Elapsed wall-clock time of `fn`, in seconds. */
  wall: number;
  /** User + system CPU time of the process (all threads) during `fn`, in seconds. */
  cpu: number;
}> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1e6 };
}

/** A float32 tensor of uniform values in [-scale, scale) from a fast, seeded xorshift32 (benchmark data only). */
export function benchTensor(shape: readonly number[], seed = 1, scale = 1): Tensor<"float32"> {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  const next = xorshiftUniform(seed);
  for (let i = 0; i < n; i++) data[i] = next() * scale;
  return tensor("float32", shape, data);
}

/** Options of {@link measureMatMulRate}. */
export interface MatMulRateOptions {
  /** Rows of the left operand (default 2048). */
  rows?: number;
  /** Inner and output width (default 2048). */
  width?: number;
  /** MatMuls chained in the graph, so feeding and copying out are amortised as in a model (default 4). */
  chain?: number;
  /** Timed runs after two warm-ups; the best is kept (default 3). */
  runs?: number;
  /** onnxruntime intra-op threads (default: the session default). */
  intraOpThreads?: number;
}

/**
 * onnxruntime's plain float32 MatMul rate on this machine right now, in
 * GFLOP/s (wall clock, best run, and CPU time): the reference every bench's
 * "achieved rate" target is a fraction of. A chain of square MatMuls with
 * initializer weights (prepacked, as model weights are), so the input feed and
 * output copy weigh on it about as much as on a model layer stack.
 */
export async function measureMatMulRate(options: MatMulRateOptions = {}): Promise<{
  /** MatMul rate in GFLOP/s by wall-clock time of the fastest run. */
  wall: number;
  /** MatMul rate in GFLOP/s by process CPU time (all threads) of that same run. */
  cpu: number;
}> {
  const rows = options.rows ?? 2048;
  const width = options.width ?? 2048;
  const runs = options.runs ?? 3;
  const chain = options.chain ?? 4;
  const g = new GraphBuilder("bench_matmul");
  let y = g.input("x", "float32", [rows, width]);
  for (let i = 0; i < chain; i++)
    y = g.op("MatMul", [y, g.weight(benchTensor([width, width], 2 + i, 1 / Math.sqrt(width)))]);
  g.output(y, "y");
  const session = await createSession(g.build(), { intraOpThreads: options.intraOpThreads, label: "MatMul rate" });
  const feeds = { x: benchTensor([rows, width], 1) };
  for (let i = 0; i < 2; i++) await session.run(feeds);
  let best = { wall: Number.POSITIVE_INFINITY, cpu: Number.POSITIVE_INFINITY };
  for (let i = 0; i < runs; i++) {
    const t = await timeIt(() => session.run(feeds));
    if (t.wall < best.wall) best = t;
  }
  await session.release();
  const gflop = (chain * 2 * rows * width * width) / 1e9;
  return { wall: gflop / best.wall, cpu: gflop / best.cpu };
}

/**
 * Runs this bench script again in a child process (same Node flags and
 * arguments, plus `--child <value>`) and returns the JSON object the child
 * printed on its last stdout line. Benches measure each size in its own
 * process so that its peak RSS is its own.
 */
// biome-ignore lint/suspicious/noExplicitAny: a bench reads its own child's JSON, like JSON.parse
export function runBenchChild<T = any>(scriptUrl: string, args: readonly string[], value: string | number): T {
  const out = execFileSync(
    process.execPath,
    [...process.execArgv, fileURLToPath(scriptUrl), ...args, "--child", String(value)],
    {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
      maxBuffer: 1 << 24,
    },
  );
  return JSON.parse(out.trim().split("\n").pop() ?? "{}") as T;
}

/** A bench script's command line (see {@link benchArgs}). */
export interface BenchArgs {
  /** The raw arguments (pass them on to {@link runBenchChild}). */
  readonly args: readonly string[];
  /** The value after `--name`, else `fallback`. */
  arg(name: string, fallback: string): string;
}

/** Reads a bench script's `--name value` options from `argv` (default: this process's arguments). */
export function benchArgs(argv: readonly string[] = process.argv.slice(2)): BenchArgs {
  return {
    args: argv,
    arg(name, fallback) {
      const i = argv.indexOf(`--${name}`);
      return i >= 0 ? argv[i + 1] : fallback;
    },
  };
}
