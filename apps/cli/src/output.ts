import { mkdirSync, renameSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";

/**
 * A set of output files written all-or-nothing: each file is staged as a hidden temporary file beside
 * its destination and renamed into place only by {@link OutputFiles.commit}, after every file has been
 * staged. On failure (or Ctrl-C) {@link OutputFiles.rollback} removes the temporaries and any folder
 * this set created, so a failed command leaves nothing partial behind.
 */
export class OutputFiles {
  private staged: { temp: string; final: string }[] = [];
  private createdDirs: string[] = [];
  private done = false;

  /** Stages `data` for `path` (its folder is created if needed, and removed again on rollback). */
  stage(path: string, data: Uint8Array | string): string {
    const final = resolve(path);
    this.ensureDir(dirname(final));
    const temp = join(dirname(final), `.${basename(final)}.${process.pid}.${this.staged.length}.tmp`);
    this.staged.push({ temp, final });
    writeFileSync(temp, data);
    return final;
  }

  /** Renames every staged file into place; returns the final paths. */
  commit(): string[] {
    const out = this.staged.map(({ temp, final }) => {
      renameSync(temp, final);
      return final;
    });
    this.staged = [];
    this.done = true;
    return out;
  }

  /** Removes staged temporaries and the folders this set created (when empty). Safe to call twice. */
  rollback(): void {
    if (this.done) return;
    for (const { temp } of this.staged) rmSync(temp, { force: true });
    this.staged = [];
    for (const dir of this.createdDirs.reverse()) {
      try {
        rmdirSync(dir);
      } catch {}
    }
    this.createdDirs = [];
    this.done = true;
  }

  private ensureDir(dir: string): void {
    const missing: string[] = [];
    for (let d = dir; !exists(d); d = dirname(d)) {
      missing.push(d);
      if (dirname(d) === d) break;
    }
    mkdirSync(dir, { recursive: true });
    this.createdDirs.push(...missing.reverse());
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}
