import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/** Where Debian's `chromium` package puts the browser. */
export const CHROMIUM_PATH = process.env.HART_CHROMIUM ?? "/usr/bin/chromium";

/** The browser to drive, or why there is none. */
export type ChromiumLookup = { path: string } | { skipReason: string };

function canRun(path: string): boolean {
  return spawnSync(path, ["--version"], { stdio: "ignore", timeout: 30_000 }).status === 0;
}

/**
 * Finds Chromium, installing Debian's `chromium` package with apt when it is missing (as root: `apt-get update`,
 * then `apt-get install -y chromium`). Never throws: when it cannot get a browser it says why, and the browser
 * test reports that reason as its skip.
 */
export function ensureChromium(log: (m: string) => void = (m) => console.log(m)): ChromiumLookup {
  if (existsSync(CHROMIUM_PATH) && canRun(CHROMIUM_PATH)) return { path: CHROMIUM_PATH };
  if (process.platform !== "linux") return { skipReason: `no Chromium at ${CHROMIUM_PATH} (set HART_CHROMIUM)` };
  const aptGet = ["/usr/bin/apt-get", "/bin/apt-get"].find((p) => existsSync(p));
  if (!aptGet) return { skipReason: `no Chromium at ${CHROMIUM_PATH} and no apt-get to install it` };
  if (process.getuid?.() !== 0) {
    return { skipReason: `no Chromium at ${CHROMIUM_PATH}; installing it needs root (apt-get install -y chromium)` };
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  try {
    log("browser test setup: installing Chromium (apt-get update && apt-get install -y chromium) …");
    execFileSync(aptGet, ["update"], { stdio: "ignore", env, timeout: 300_000 });
    execFileSync(aptGet, ["install", "-y", "chromium"], {
      stdio: "ignore",
      env,
      timeout: 900_000,
    });
  } catch (error) {
    return { skipReason: `installing Chromium with apt-get failed: ${(error as Error).message.split("\n")[0]}` };
  }
  if (!existsSync(CHROMIUM_PATH) || !canRun(CHROMIUM_PATH)) {
    return { skipReason: `apt-get installed chromium but ${CHROMIUM_PATH} does not run` };
  }
  log(`browser test setup: ${execFileSync(CHROMIUM_PATH, ["--version"]).toString().trim()}`);
  return { path: CHROMIUM_PATH };
}
