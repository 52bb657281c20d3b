// Shows that the built @hart/core loads and runs a graph under Node, Bun and Deno.
//
//   npm run test:runtimes
//
// Builds packages/core first if dist/ is missing or older than src/. Each runtime runs
// workload.mjs; its numbers must match a float64 reference (relative error ≤ 1e-5), its RNG
// bits must equal Node's, and a PNG must round-trip. A runtime that is not installed, or that
// cannot load onnxruntime-node's native addon, is reported as `skip: <runtime>: <reason>` and
// does not fail the run; wrong numbers from a runtime that runs do. Bun and Deno come from the
// root devDependencies (npm packages `bun` and `deno`), or from PATH.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { findBinary, runtimeCommands } from "./runtimes.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const coreDir = join(root, "packages/core");
const dist = join(coreDir, "dist/index.js");
const workload = join(root, "test/runtimes/workload.mjs");
const TOLERANCE = 1e-5;

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

if (!existsSync(dist) || statSync(dist).mtimeMs < newestMtime(join(coreDir, "src"))) {
  console.log("building @hart/core (dist missing or older than src) …");
  const build = spawnSync("npx", ["tsup"], { cwd: coreDir, stdio: "inherit", shell: process.platform === "win32" });
  if (build.status !== 0) {
    console.error("runtimes: could not build @hart/core");
    process.exit(1);
  }
}

const runtimes = runtimeCommands(workload);

/** The first line that looks like an error, without colours, shortened; else the last line. */
function firstError(text) {
  const lines = text
    // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes
    .replace(/\x1b\[[0-9;]*m/g, "")
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  return (lines.find((l) => /error/i.test(l)) ?? lines.at(-1) ?? "no output").slice(0, 300);
}

let passed = 0;
let failed = 0;
let nodeHash;
for (const rt of runtimes) {
  if (rt.find) {
    const found = findBinary(rt.find);
    if (!found) {
      console.log(`skip: ${rt.name}: not installed (npm i -D ${rt.find} at the repository root, or put it on PATH)`);
      continue;
    }
    rt.bin = found.bin;
    rt.version = found.version;
  }
  const r = spawnSync(rt.bin, rt.args, {
    cwd: root,
    encoding: "utf8",
    timeout: 180_000,
    env: { ...process.env, HART_NUM_THREADS: "1", NO_COLOR: "1" },
  });
  const output = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  const lines = (r.stdout ?? "").split("\n");
  const reachedSession = lines.includes("stage: session");
  const resultLine = lines.find((l) => l.startsWith("{"));
  if (!reachedSession) {
    const reason = firstError(r.error?.message ?? output);
    if (rt.name !== "node" && /onnxruntime|\.node\b|napi|dlopen|ffi|NotCapable|native|addon|symbol/i.test(output)) {
      console.log(`skip: ${rt.name}: cannot run onnxruntime-node's native addon (${reason})`);
    } else {
      console.log(`FAIL: ${rt.name} ${rt.version}: did not get to a session (exit ${r.status}): ${reason}`);
      failed++;
    }
    continue;
  }
  if (r.status !== 0 || !resultLine) {
    console.log(
      `FAIL: ${rt.name} ${rt.version}: exit ${r.status}${r.signal ? ` (${r.signal})` : ""}: ${output.trim().slice(-400)}`,
    );
    failed++;
    continue;
  }
  const res = JSON.parse(resultLine);
  if (rt.name === "node") nodeHash = res.rngHash;
  const problems = [];
  if (!(res.relErrProbs <= TOLERANCE)) problems.push(`probs relative error ${res.relErrProbs}`);
  if (!(res.relErrAtt <= TOLERANCE)) problems.push(`attention relative error ${res.relErrAtt}`);
  if (nodeHash !== undefined && res.rngHash !== nodeHash) problems.push(`RNG bits ${res.rngHash} ≠ node's ${nodeHash}`);
  if (!res.pngOk) problems.push("PNG round trip changed the pixels");
  const summary = `${rt.name} ${res.version}: rel err probs ${res.relErrProbs.toExponential(2)}, attention ${res.relErrAtt.toExponential(2)}, rng ${res.rngHash}, png ${res.pngOk ? "ok" : "bad"}`;
  if (problems.length) {
    console.log(`FAIL: ${summary}: ${problems.join("; ")}`);
    failed++;
  } else {
    console.log(`ok: ${summary}`);
    passed++;
  }
}
console.log(`runtimes: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
