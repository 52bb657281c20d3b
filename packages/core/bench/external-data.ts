/**
 * Does onnxruntime-node copy in-memory external data, and what does a graph
 * whose initializers total > 2 GB cost in peak memory under each session
 * config? Each configuration runs in a fresh child process (peak RSS is per
 * process), prints one JSON line; the parent prints a table.
 *
 *   npm run bench -w @hart/core                      # 3 × 800 MB MatMul weights, then --speed at 3 × 64 MB
 *   npx tsx bench/external-data.ts --mb 16 --rows 1  # quick check (--only file: some configs)
 *   npx tsx bench/external-data.ts --speed --mb 16   # prepacked vs. not: run time by batch rows
 *
 * Weights come either from JS buffers (in-memory external data, `GraphBuilder.weight`) or from a
 * file (`GraphBuilder.fileWeight`, memory-mapped by onnxruntime). Per configuration:
 * - `session anon +MB`: private memory growth while creating the session(s) (weights already resident);
 * - `end anon +MB`: the same after three runs;
 * - `peak RSS +MB`: peak RSS (VmHWM) above the RSS before the sessions were created;
 * - `reads caller buffer`: after two runs the caller's last weight is zeroed; if the next run's
 *   output becomes 0, the session reads the caller's memory (no copy).
 */
import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { benchArgs, createSession, GraphBuilder, memoryStats, type SessionOptions, tensor } from "../src/index";

const { args, arg } = benchArgs();
const mb = Number(arg("mb", "800"));
const count = Number(arg("count", "3"));
const rows = Number(arg("rows", "1"));
const threads = Number(arg("threads", "2"));

interface Config {
  /** `memory`: weights are JS buffers passed as in-memory external data; `file`: fileWeight() references into a file. */
  source: "memory" | "file";
  /** Sessions created from the same weights (does each one hold its own copy?). */
  sessions: number;
  options: SessionOptions;
}
const CONFIGS: Record<string, Config> = {
  "memory default": { source: "memory", sessions: 1, options: {} },
  "memory noprepack": { source: "memory", sessions: 1, options: { disablePrepacking: true } },
  "memory envalloc": { source: "memory", sessions: 1, options: { useEnvAllocators: true } },
  "memory both": { source: "memory", sessions: 1, options: { disablePrepacking: true, useEnvAllocators: true } },
  "memory 2 sessions": { source: "memory", sessions: 2, options: { disablePrepacking: true } },
  "file default": { source: "file", sessions: 1, options: {} },
  "file noprepack": { source: "file", sessions: 1, options: { disablePrepacking: true } },
  "file 2 sessions": { source: "file", sessions: 2, options: { disablePrepacking: true } },
};

/** Resident set size, its anonymous (private) part and the peak RSS, in MB. */
function memory(): { rss: number; anon: number; peak: number } {
  const m = memoryStats();
  return { rss: m.rss / 2 ** 20, anon: m.anon / 2 ** 20, peak: m.peak / 2 ** 20 };
}

async function child(configName: string): Promise<void> {
  const config = CONFIGS[configName];
  // Alternate [K, N] / [N, K] so the MatMuls chain: x[rows, K] → [rows, N] → [rows, K] → …
  const floats = Math.floor((mb * 2 ** 20) / 4);
  const K = Math.floor(Math.sqrt(floats / 2));
  const N = Math.floor(floats / K);
  const shapes = Array.from({ length: count }, (_, i) => (i % 2 === 0 ? [K, N] : [N, K]));
  const fill = (data: Float32Array, i: number) => {
    for (let j = 0; j < data.length; j++) data[j] = ((j % 97) - 48) * 1e-4 + i * 1e-5;
  };
  const g = new GraphBuilder("external-data-bench");
  let h = g.input("x", "float32", [rows, K]);
  let weights: Float32Array[] = [];
  let dir = "";
  if (config.source === "memory") {
    // Every page is touched, so the weights are resident before any session exists.
    weights = shapes.map((shape, i) => {
      const data = new Float32Array(shape[0] * shape[1]);
      fill(data, i);
      return data;
    });
    for (const [i, w] of weights.entries()) h = g.op("MatMul", [h, g.weight(tensor("float32", shapes[i], w))]);
  } else {
    // One file with a 100-byte "header", like a checkpoint; the JS buffers are dropped after writing.
    dir = mkdtempSync(join(tmpdir(), "hart-bench-"));
    const file = join(dir, "weights.bin");
    const fd = openSync(file, "w");
    let offset = 100;
    writeSync(fd, new Uint8Array(100), 0, 100, 0);
    for (const [i, shape] of shapes.entries()) {
      const data = new Float32Array(shape[0] * shape[1]);
      fill(data, i);
      const bytes = new Uint8Array(data.buffer);
      for (let o = 0; o < bytes.length; o += 1 << 30)
        writeSync(fd, bytes, o, Math.min(1 << 30, bytes.length - o), offset + o);
      h = g.op("MatMul", [h, g.fileWeight({ file, offset, dtype: "float32", shape })]);
      offset += bytes.length;
    }
    closeSync(fd);
  }
  g.output(h, "y");
  const built = g.build();
  const base = memory();

  let t = performance.now();
  const sessions = [];
  for (let i = 0; i < config.sessions; i++) {
    sessions.push(await createSession(built, { ...config.options, intraOpThreads: threads }));
  }
  const createMs = performance.now() - t;
  const afterCreate = memory();
  const x = tensor("float32", [rows, K], new Float32Array(rows * K).fill(0.01));
  t = performance.now();
  const y1 = (await sessions[0].run({ x })).y.data as Float32Array;
  const runMs = performance.now() - t;
  t = performance.now();
  await sessions[0].run({ x });
  const run2Ms = performance.now() - t;
  let readsCallerBuffer: boolean | string = "n/a";
  if (config.source === "memory") {
    weights[weights.length - 1].fill(0);
    const y2 = (await sessions[0].run({ x })).y.data as Float32Array;
    readsCallerBuffer = y2.every((v) => v === 0) && y1.some((v) => v !== 0);
  }
  const end = memory();
  for (const s of sessions) await s.release();
  if (dir) rmSync(dir, { recursive: true, force: true });
  console.log(
    JSON.stringify({
      config: configName,
      weightsMB: Math.round((count * K * N * 4) / 2 ** 20),
      baseRssMB: Math.round(base.rss),
      sessionAnonMB: Math.round(afterCreate.anon - base.anon),
      endAnonMB: Math.round(end.anon - base.anon),
      peakMB: Math.round(end.peak - base.rss),
      createMs: Math.round(createMs),
      runMs: Math.round(runMs),
      run2Ms: Math.round(run2Ms),
      readsCallerBuffer,
    }),
  );
}

function parent(): void {
  const self = fileURLToPath(import.meta.url);
  const only = arg("only", "");
  console.log(`external data bench: ${count} MatMul weights × ${mb} MB, x rows ${rows}, ${threads} threads`);
  const rowsOut: Record<string, unknown>[] = [];
  for (const name of Object.keys(CONFIGS)) {
    if (only && !name.includes(only)) continue;
    const out = execFileSync(process.execPath, ["--import", "tsx", self, ...args, "--child", name], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
    const line = out.trim().split("\n").pop()!;
    rowsOut.push(JSON.parse(line));
    console.log(line);
  }
  const cols: [string, string, number][] = [
    ["config", "config", 18],
    ["weights MB", "weightsMB", 10],
    ["session anon +MB", "sessionAnonMB", 16],
    ["end anon +MB", "endAnonMB", 12],
    ["peak RSS +MB", "peakMB", 12],
    ["create ms", "createMs", 9],
    ["run1 ms", "runMs", 7],
    ["run2 ms", "run2Ms", 7],
    ["reads caller buffer", "readsCallerBuffer", 19],
  ];
  console.log(`\n${cols.map(([h, , w]) => h.padStart(w)).join("  ")}`);
  for (const r of rowsOut) console.log(cols.map(([, k, w]) => String(r[k]).padStart(w)).join("  "));
  console.log(
    "\nanon = private (not file-backed) memory growth above the state before the sessions were created;" +
      "\npeak RSS includes the weights' pages (JS buffers or the mapped file) and transient buffers.\n",
  );
  // The speed side of disablePrepacking, at a size where runs are quick.
  execFileSync(
    process.execPath,
    ["--import", "tsx", self, "--speed", "--mb", arg("speed-mb", "64"), "--threads", String(threads)],
    {
      stdio: "inherit",
    },
  );
}

/**
 * Speed of prepacked vs. non-prepacked MatMul weights: both sessions in one process, runs
 * interleaved (A, B, A, B, …) so machine load hits both alike; the minimum of 7 runs is reported.
 */
async function speed(): Promise<void> {
  const floats = Math.floor((mb * 2 ** 20) / 4);
  const K = Math.floor(Math.sqrt(floats / 2));
  const N = Math.floor(floats / K);
  const g = new GraphBuilder("prepack-speed");
  let h = g.input("x", "float32", ["rows", K]);
  for (let i = 0; i < count; i++) {
    const shape = i % 2 === 0 ? [K, N] : [N, K];
    const data = new Float32Array(shape[0] * shape[1]);
    for (let j = 0; j < data.length; j++) data[j] = ((j % 97) - 48) * 1e-4;
    h = g.op("MatMul", [h, g.weight(tensor("float32", shape, data))]);
  }
  g.output(h, "y");
  const built = g.build();
  const sessions = {
    prepack: await createSession(built, { intraOpThreads: threads }),
    noprepack: await createSession(built, { intraOpThreads: threads, disablePrepacking: true }),
  };
  console.log(`prepacking speed: ${count} MatMul weights × ${mb} MB ([${K}, ${N}]), ${threads} threads, min of 7 runs`);
  for (const r of [1, 16, 256, 1024]) {
    const x = tensor("float32", [r, K], new Float32Array(r * K).fill(0.01));
    const best: Record<string, number> = { prepack: Infinity, noprepack: Infinity };
    for (let rep = 0; rep < 8; rep++) {
      for (const [name, s] of Object.entries(sessions)) {
        const t = performance.now();
        await s.run({ x });
        if (rep > 0) best[name] = Math.min(best[name], performance.now() - t); // rep 0 warms up
      }
    }
    const gflop = (2 * r * K * N * count) / 1e9;
    console.log(
      `rows ${String(r).padStart(4)}: prepack ${best.prepack.toFixed(1)} ms (${(gflop / (best.prepack / 1e3)).toFixed(0)} GFLOP/s), ` +
        `noprepack ${best.noprepack.toFixed(1)} ms (${(gflop / (best.noprepack / 1e3)).toFixed(0)} GFLOP/s)`,
    );
  }
  for (const s of Object.values(sessions)) await s.release();
}

const childConfig = arg("child", "");
if (childConfig) await child(childConfig);
else if (args.includes("--speed")) await speed();
else parent();
