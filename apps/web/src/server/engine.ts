import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { GenerateSettings } from "../shared/protocol";
import type { JobRunner, RunnerEvent, RunOutput } from "./queue";
import type { FromWorker, ModelInfo, ToWorker, WorkerConfig } from "./worker-protocol";

/** Where the worker's entry is: the built `worker.js` beside this file, else the TypeScript source run via tsx. */
function workerEntry(): { url: URL; execArgv: string[] } {
  const js = new URL("./worker.js", import.meta.url);
  if (existsSync(fileURLToPath(js))) return { url: js, execArgv: [] };
  return { url: new URL("./worker.ts", import.meta.url), execArgv: ["--import", "tsx"] };
}

interface Pending {
  resolve: (output: RunOutput) => void;
  reject: (error: Error) => void;
  emit: (event: RunnerEvent) => void;
}

/**
 * Runs generations in a worker thread that owns the `HartPipeline`. onnxruntime's `session.run` blocks the
 * thread it runs on, so keeping it off the main thread is what lets the server answer requests and stream
 * progress while an image is being made. Cancelling a job posts a message; the worker aborts the pipeline's
 * `AbortSignal`. If the worker dies, the running job fails and a fresh worker is started for the next one.
 */
export class WorkerRunner implements JobRunner {
  /** Settles when the model is loaded (rejects with the load error). */
  ready!: Promise<ModelInfo>;
  /** The loaded model's description, once ready. */
  info: ModelInfo | undefined;
  /** The load error, if loading failed. */
  loadError: string | undefined;

  private worker!: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;

  /**
   * Starts the worker, which begins loading the model at once. `entry` overrides the worker script (tests run
   * the runner against scripted workers).
   */
  constructor(
    private readonly config: WorkerConfig,
    private readonly log: (message: string) => void = (m) => console.log(m),
    private readonly entry: { url: URL; execArgv: string[] } = workerEntry(),
  ) {
    this.start();
  }

  private start(): void {
    const { url, execArgv } = this.entry;
    const worker = new Worker(url, { workerData: this.config, execArgv });
    this.worker = worker;
    this.ready = new Promise<ModelInfo>((resolve, reject) => {
      const onMessage = (message: FromWorker) => {
        if (message.type === "ready") {
          this.info = message.info;
          resolve(message.info);
        } else if (message.type === "load-failed") {
          this.loadError = message.message;
          reject(new Error(message.message));
        } else if (message.type === "log") {
          this.log(message.message);
        } else {
          this.onJobMessage(message);
        }
      };
      worker.on("message", onMessage);
      worker.on("error", (error) => {
        this.fail(`generation worker crashed: ${error.message}`);
        reject(error);
      });
      worker.on("exit", (code) => {
        reject(new Error(`generation worker exited (code ${code}) before the model was loaded`));
        if (this.closed || worker !== this.worker) return;
        this.fail(`generation worker exited (code ${code})`);
        // Start over for the next job unless the model itself cannot be loaded.
        if (this.loadError === undefined) this.start();
      });
    });
    // Nobody may be waiting yet; the rejection is reported through run() and loadError.
    this.ready.catch(() => {});
  }

  private onJobMessage(message: Exclude<FromWorker, { type: "ready" | "load-failed" | "log" }>): void {
    const job = this.pending.get(message.id);
    if (!job) return;
    if (message.type === "event") {
      job.emit(message.event);
      return;
    }
    this.pending.delete(message.id);
    if (message.type === "done") job.resolve({ images: message.images, promptReplaced: message.promptReplaced });
    else job.reject(new Error(message.message));
  }

  private fail(message: string): void {
    for (const job of this.pending.values()) job.reject(new Error(message));
    this.pending.clear();
  }

  async run(settings: GenerateSettings, signal: AbortSignal, emit: (event: RunnerEvent) => void): Promise<RunOutput> {
    if (signal.aborted) throw new Error("cancelled");
    if (!this.info) emit({ type: "progress", stage: "loading", message: "loading the model" });
    await this.ready;
    signal.throwIfAborted();
    const id = this.nextId++;
    const worker = this.worker;
    const post = (message: ToWorker) => worker.postMessage(message);
    const onAbort = () => post({ type: "cancel", id });
    try {
      return await new Promise<RunOutput>((resolve, reject) => {
        this.pending.set(id, { resolve, reject, emit });
        post({ type: "generate", id, settings });
        signal.addEventListener("abort", onAbort, { once: true });
      });
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** Stops the worker. */
  async close(): Promise<void> {
    this.closed = true;
    this.fail("server is shutting down");
    await this.worker.terminate();
  }
}
