// Same seed → same codes on Node, Bun and Deno: runs workload.mjs (the built packages) under each
// runtime and compares the printed codes with Node's. A runtime that is not installed or cannot load
// onnxruntime-node is reported as a skip.
//
//   npx turbo run build --filter=@hart/ar && npm run test:runtimes -w @hart/ar
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { findBinary, runtimeCommands } from "../../../../test/runtimes/runtimes.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const _root = join(here, "../../../..");
const workload = join(here, "workload.mjs");
const runtimes = runtimeCommands(workload).map((rt) => {
  const found = rt.find ? findBinary(rt.find) : null;
  return [rt.name, rt.bin ?? found?.bin ?? rt.find, rt.args];
});
let reference;
let failed = false;
for (const [name, exe, args] of runtimes) {
  const r = spawnSync(exe, args, { encoding: "utf8", cwd: here, timeout: 300_000 });
  const line = r.status === 0 ? r.stdout.trim().split("\n").pop() : undefined;
  if (!line) {
    if (name === "node") {
      console.error(`node: failed\n${r.stderr}`);
      process.exit(1);
    }
    console.log(`skip: ${name}: ${(r.error?.message ?? r.stderr ?? "").trim().split("\n").pop()}`);
    continue;
  }
  reference ??= line;
  const same = line === reference;
  failed ||= !same;
  console.log(`${name}: ${same ? "same codes as node" : `DIFFERENT codes: ${line}`}`);
}
process.exit(failed ? 1 : 0);
