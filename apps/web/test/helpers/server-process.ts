import { type ChildProcess, execFile, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { ServerConfig } from "../../src/shared/protocol";

/** apps/web. */
export const APP_DIR = fileURLToPath(new URL("../../", import.meta.url));
/** The repository root. */
export const REPO_ROOT = fileURLToPath(new URL("../../../../", import.meta.url));

/**
 * Builds the app and the packages it uses (turbo: cached when nothing changed), i.e. what `npm run start`
 * runs first, so the tests drive exactly what users run.
 */
export async function buildApp(): Promise<void> {
  // Asynchronous: a long synchronous call would stall the test worker's messages to vitest.
  const args = ["turbo", "run", "build", "--filter=@hart/web...", "--output-logs=errors-only"];
  try {
    await promisify(execFile)("npx", args, { cwd: REPO_ROOT, timeout: 600_000, maxBuffer: 64 << 20 });
  } catch (error) {
    const { stdout = "", stderr = "" } = error as { stdout?: string; stderr?: string };
    const lines = `${stdout}\n${stderr}`.split("\n").filter((l) => l.trim() && !/npm warn/i.test(l));
    throw new Error(`npx ${args.join(" ")} failed:\n${lines.slice(-40).join("\n")}`);
  }
}

/** A running `node dist/server/main.js`. */
export interface ServerProcess {
  base: string;
  config: ServerConfig;
  /** Everything it printed so far. */
  output: () => string;
  stop: () => Promise<void>;
}

/** Starts the built server on 127.0.0.1 at an ephemeral port and waits until the model is loaded. */
export async function startServerProcess(args: string[], timeoutMs = 180_000): Promise<ServerProcess> {
  const proc: ChildProcess = spawn(process.execPath, ["dist/server/main.js", "--port", "0", ...args], {
    cwd: APP_DIR,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  proc.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  proc.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      if (proc.exitCode !== null) return resolve();
      proc.once("exit", () => resolve());
      proc.kill("SIGTERM");
      setTimeout(() => proc.kill("SIGKILL"), 5000).unref();
    });
  const deadline = Date.now() + timeoutMs;
  try {
    let base: string | undefined;
    while (!base) {
      if (proc.exitCode !== null) throw new Error(`server exited (${proc.exitCode}):\n${output}`);
      if (Date.now() > deadline) throw new Error(`server did not start in time:\n${output}`);
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(output);
      if (m) base = m[1];
      else await new Promise((r) => setTimeout(r, 100));
    }
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`server exited (${proc.exitCode}):\n${output}`);
      if (Date.now() > deadline) throw new Error(`model not loaded in time:\n${output}`);
      const config = (await (await fetch(`${base}/api/config`)).json()) as ServerConfig;
      if (config.loadError) throw new Error(`model failed to load: ${config.loadError}\n${output}`);
      if (config.ready) return { base, config, output: () => output, stop };
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (error) {
    await stop();
    throw error;
  }
}
