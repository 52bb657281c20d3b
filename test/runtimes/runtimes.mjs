// The JavaScript runtimes hart is checked under, and how to find and start each one.
// Shared by the core smoke test (test/runtimes/smoke.mjs) and @hart/ar's cross-runtime check.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");

/** How to run `workload` under Node, Bun and Deno (`find`: a binary still to locate with findBinary). */
export function runtimeCommands(workload) {
  return [
    { name: "node", bin: process.execPath, version: process.version, args: [workload] },
    { name: "bun", find: "bun", args: [workload] },
    {
      name: "deno",
      find: "deno",
      // npm compatibility through the existing node_modules; the native addon needs --allow-ffi.
      args: [
        "run",
        "--allow-ffi",
        "--allow-read",
        "--allow-env",
        "--node-modules-dir=manual",
        "--no-lock",
        "--no-prompt",
        workload,
      ],
    },
  ];
}

/** A runtime's binary: the root devDependency's, else one on PATH; null when neither runs. */
export function findBinary(name) {
  const local = join(root, "node_modules/.bin", process.platform === "win32" ? `${name}.cmd` : name);
  for (const bin of existsSync(local) ? [local, name] : [name]) {
    const r = spawnSync(bin, ["--version"], { encoding: "utf8", timeout: 60_000 });
    if (r.status === 0) return { bin, version: r.stdout.trim().split("\n")[0] };
  }
  return null;
}
