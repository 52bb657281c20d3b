/** Where the CLI writes: injectable so the commands can run in-process in tests. */
export interface CliStreams {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown; isTTY?: boolean; columns?: number };
}

/**
 * A one-line progress bar on stderr, drawn only when stderr is a terminal (and not in --json mode);
 * otherwise it stays silent, so logs and pipes get clean output.
 */
export class ProgressBar {
  private lastDraw = 0;
  private drawn = false;
  private readonly enabled: boolean;

  constructor(
    private readonly stream: CliStreams["stderr"],
    enabled = true,
  ) {
    this.enabled = enabled && !!stream.isTTY;
  }

  /** Redraws the bar: `label [████░░░░] 42% detail` (`fraction` undefined draws no bar). Throttled to 20 Hz. */
  update(label: string, fraction?: number, detail = "", force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.lastDraw < 50) return;
    this.lastDraw = now;
    const width = Math.max(10, Math.min(30, (this.stream.columns ?? 80) - label.length - detail.length - 12));
    let bar = "";
    if (fraction !== undefined && Number.isFinite(fraction)) {
      const f = Math.min(1, Math.max(0, fraction));
      const full = Math.round(f * width);
      bar = ` [${"█".repeat(full)}${"░".repeat(width - full)}] ${String(Math.floor(f * 100)).padStart(3)}%`;
    }
    const line = `${label}${bar}${detail ? ` ${detail}` : ""}`;
    this.stream.write(`\r\x1b[2K${line.slice(0, (this.stream.columns ?? 120) - 1)}`);
    this.drawn = true;
  }

  /** Removes the bar (before printing ordinary output). */
  clear(): void {
    if (this.enabled && this.drawn) this.stream.write("\r\x1b[2K");
    this.drawn = false;
  }
}

/** `1536` → `"1.5 KiB"`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

/** `1234567` → `"1.23 M"`. */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}

/** Milliseconds as `"812 ms"` or `"3.41 s"`. */
export function formatMs(ms: number): string {
  return ms < 1000 ? `${ms.toFixed(ms < 10 ? 2 : 0)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
