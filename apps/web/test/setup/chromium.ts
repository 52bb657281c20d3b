import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Where Debian's `chromium` package puts the browser. */
export const CHROMIUM_PATH = process.env.HART_CHROMIUM ?? "/usr/bin/chromium";

/** The browser to drive, or why there is none. */
export type ChromiumLookup = { path: string } | { skipReason: string };

async function version(path: string): Promise<string | undefined> {
  try {
    return (await run(path, ["--version"], { timeout: 30_000 })).stdout.trim();
  } catch {
    return undefined;
  }
}

/**
 * Finds Chromium, installing Debian's `chromium` package with apt when it is missing (as root: `apt-get update`,
 * then `apt-get install -y chromium`). Never throws: when it cannot get a browser it says why, and the browser
 * test reports that reason as its skip.
 */
export async function ensureChromium(log: (m: string) => void = (m) => console.log(m)): Promise<ChromiumLookup> {
  if (existsSync(CHROMIUM_PATH) && (await version(CHROMIUM_PATH))) return { path: CHROMIUM_PATH };
  if (process.platform !== "linux") return { skipReason: `no Chromium at ${CHROMIUM_PATH} (set HART_CHROMIUM)` };
  const aptGet = ["/usr/bin/apt-get", "/bin/apt-get"].find((p) => existsSync(p));
  if (!aptGet) return { skipReason: `no Chromium at ${CHROMIUM_PATH} and no apt-get to install it` };
  if (process.getuid?.() !== 0) {
    return { skipReason: `no Chromium at ${CHROMIUM_PATH}; installing it needs root (apt-get install -y chromium)` };
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  try {
    log("browser test setup: installing Chromium (apt-get update && apt-get install -y chromium) …");
    await run(aptGet, ["update"], { env, timeout: 300_000, maxBuffer: 64 << 20 });
    await run(aptGet, ["install", "-y", "chromium"], { env, timeout: 900_000, maxBuffer: 64 << 20 });
  } catch (error) {
    return { skipReason: `installing Chromium with apt-get failed: ${(error as Error).message.split("\n")[0]}` };
  }
  const installed = existsSync(CHROMIUM_PATH) ? await version(CHROMIUM_PATH) : undefined;
  if (!installed) return { skipReason: `apt-get installed chromium but ${CHROMIUM_PATH} does not run` };
  log(`browser test setup: ${installed}`);
  return { path: CHROMIUM_PATH };
}
