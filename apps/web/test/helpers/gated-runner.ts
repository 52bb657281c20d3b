import { PNG } from "pngjs";
import type { GeneratedImage, JobRunner, RunnerEvent, RunOutput } from "../../src/server/queue";
import type { GenerateSettings } from "../../src/shared/protocol";

/** A solid-colour PNG whose colour encodes the seed, so a test can tell which job's image it received. */
export function seedPng(seed: number, size = 4): GeneratedImage {
  const png = new PNG({ width: size, height: size });
  for (let i = 0; i < size * size; i++) {
    png.data[i * 4] = seed & 255;
    png.data[i * 4 + 1] = (seed >> 8) & 255;
    png.data[i * 4 + 2] = (seed >> 16) & 255;
    png.data[i * 4 + 3] = 255;
  }
  return { png: new Uint8Array(PNG.sync.write(png)), width: size, height: size };
}

interface Running {
  settings: GenerateSettings;
  emit: (event: RunnerEvent) => void;
  finish: (error?: Error) => void;
}

/**
 * A runner the test drives by hand: each job stays "running" until the test calls {@link finishNext}, so queue
 * states (waiting positions, a full line, cancelling mid-run) can be produced without racing a real model.
 * Its images are `numImages` PNGs coloured by the seed.
 */
export class GatedRunner implements JobRunner {
  readonly started: GenerateSettings[] = [];
  readonly aborted: GenerateSettings[] = [];
  private current: Running | undefined;
  private waiters: (() => void)[] = [];

  run(settings: GenerateSettings, signal: AbortSignal, emit: (event: RunnerEvent) => void): Promise<RunOutput> {
    this.started.push(settings);
    return new Promise<RunOutput>((resolve, reject) => {
      const finish = (error?: Error) => {
        this.current = undefined;
        if (error) reject(error);
        else
          resolve({
            images: Array.from({ length: settings.numImages }, () => seedPng(settings.seed)),
            promptReplaced: false,
          });
      };
      this.current = { settings, emit, finish };
      signal.addEventListener("abort", () => {
        this.aborted.push(settings);
        finish(new Error("aborted by the test"));
      });
      emit({ type: "progress", stage: "transformer", step: 1, steps: 3 });
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Sends an event from the running job. */
  emit(event: RunnerEvent): void {
    this.current?.emit(event);
  }

  /** Ends the running job, successfully or with `error`. */
  finishNext(error?: Error): void {
    if (!this.current) throw new Error("no job is running");
    this.current.finish(error);
  }

  /** Resolves once a job runs (at once if one does). */
  async whenRunning(): Promise<void> {
    // The queue starts runs on a microtask, so give it one before looking.
    await Promise.resolve();
    await Promise.resolve();
    if (this.current) return;
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }
}
