import { randomUUID } from "node:crypto";
import type { GenerateSettings, ImageInfo, JobEvent, JobSnapshot, JobState } from "../shared/protocol";

/** The events a runner reports while it works; the queue adds the lifecycle ones. */
export type RunnerEvent = Extract<JobEvent, { type: "progress" | "preview" }>;

/** One generated image as PNG bytes. */
export interface GeneratedImage {
  png: Uint8Array;
  width: number;
  height: number;
}

/** What a finished run returns. */
export interface RunOutput {
  images: GeneratedImage[];
  /** True when the safety check replaced the prompt. */
  promptReplaced: boolean;
}

/** Does the work of one job; the queue calls it for one job at a time. It must settle soon after `signal` aborts. */
export interface JobRunner {
  run(settings: GenerateSettings, signal: AbortSignal, emit: (event: RunnerEvent) => void): Promise<RunOutput>;
}

/** Thrown by {@link JobQueue.submit} when the waiting line is full (the server answers 429). */
export class QueueFullError extends Error {
  constructor(readonly maxWaiting: number) {
    super(`the queue is full (${maxWaiting} jobs waiting); try again later`);
    this.name = "QueueFullError";
  }
}

/** Options of {@link JobQueue}. */
export interface JobQueueOptions {
  /** Jobs that may wait behind the running one (default 20, the release demo's bound). */
  maxWaiting?: number;
  /** Finished jobs whose images and events are kept for late readers and downloads (default 16). */
  keepFinished?: number;
  /** URL of image `index` of job `id`. */
  imageUrl?: (id: string, index: number) => string;
}

/** A job held by the queue. */
export interface Job {
  readonly id: string;
  readonly settings: GenerateSettings;
  state: JobState;
  /** Set when done. */
  output?: RunOutput;
}

/** What {@link JobQueue.cancel} did. */
export type CancelOutcome = "cancelled" | "cancelling" | "finished" | "not-found";

type Listener = (event: JobEvent) => void;

interface JobRecord extends Job {
  controller: AbortController;
  /** Everything that happened, for late subscribers (superseded queue positions and the oldest previews dropped). */
  history: JobEvent[];
  /** Characters of preview data URLs in `history`. */
  previewChars: number;
  listeners: Set<Listener>;
  startedAt: number;
}

/**
 * A first-in, first-out generation queue: one job runs at a time, at most `maxWaiting` wait. Each job has an
 * event stream (queued position updates, runner progress, done/failed/cancelled) that late subscribers replay
 * from the start.
 * Cancelling a waiting job removes it at once; cancelling the running one aborts its signal, and the next job
 * starts only once the runner has settled, so two runs never overlap.
 */
export class JobQueue {
  readonly maxWaiting: number;
  private readonly keepFinished: number;
  private readonly imageUrl: (id: string, index: number) => string;
  private readonly jobs = new Map<string, JobRecord>();
  private readonly waiting: JobRecord[] = [];
  private readonly finished: string[] = [];
  private running: JobRecord | null = null;

  constructor(
    private readonly runner: JobRunner,
    options: JobQueueOptions = {},
  ) {
    this.maxWaiting = options.maxWaiting ?? 20;
    this.keepFinished = options.keepFinished ?? 16;
    this.imageUrl = options.imageUrl ?? ((id, index) => `/api/jobs/${id}/images/${index}.png`);
  }

  /** Adds a job; it starts at once when nothing runs. Throws {@link QueueFullError} when the line is full. */
  submit(settings: GenerateSettings): Job {
    if (this.running !== null && this.waiting.length >= this.maxWaiting) throw new QueueFullError(this.maxWaiting);
    const job: JobRecord = {
      id: randomUUID(),
      settings,
      state: "queued",
      controller: new AbortController(),
      history: [],
      previewChars: 0,
      listeners: new Set(),
      startedAt: 0,
    };
    this.jobs.set(job.id, job);
    this.waiting.push(job);
    this.emit(job, { type: "queued", position: this.waiting.length });
    this.pump();
    return job;
  }

  /** The job with this id, while it is kept. */
  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  /** 0 for the running job (or one about to start), 1 for the next waiting one, …; -1 when not waiting/running. */
  position(id: string): number {
    if (this.running?.id === id) return 0;
    const i = this.waiting.findIndex((j) => j.id === id);
    return i < 0 ? -1 : i + 1;
  }

  /** A job's state for `GET /api/jobs/:id`. */
  snapshot(id: string): JobSnapshot | undefined {
    const job = this.jobs.get(id);
    if (!job) return undefined;
    return { id, state: job.state, position: this.position(id), settings: job.settings, last: job.history.at(-1) };
  }

  /** The running job's id and the waiting ones in order. */
  list(): { running: string | null; waiting: string[] } {
    return { running: this.running?.id ?? null, waiting: this.waiting.map((j) => j.id) };
  }

  /** Cancels a waiting job (removed at once) or the running one (its signal aborts). */
  cancel(id: string): CancelOutcome {
    const job = this.jobs.get(id);
    if (!job) return "not-found";
    if (job.state === "queued") {
      this.waiting.splice(this.waiting.indexOf(job), 1);
      this.finish(job, "cancelled", { type: "cancelled" });
      this.announcePositions();
      return "cancelled";
    }
    if (job.state === "running") {
      if (!job.controller.signal.aborted) {
        job.controller.abort();
        this.emit(job, { type: "cancelling" });
      }
      return "cancelling";
    }
    return "finished";
  }

  /**
   * Streams a job's events: first a replay of what happened so far (its current queue position only), then live
   * ones. Returns the unsubscribe function, or undefined for an unknown job.
   */
  subscribe(id: string, listener: Listener): (() => void) | undefined {
    const job = this.jobs.get(id);
    if (!job) return undefined;
    for (const event of [...job.history]) listener(event);
    job.listeners.add(listener);
    return () => job.listeners.delete(listener);
  }

  /** Cancels everything (server shutdown). */
  close(): void {
    for (const job of [...this.waiting]) this.cancel(job.id);
    if (this.running) this.cancel(this.running.id);
  }

  private emit(job: JobRecord, event: JobEvent): void {
    remember(job, event);
    for (const listener of [...job.listeners]) {
      try {
        listener(event);
      } catch {
        // A broken subscriber (e.g. a closed connection) must not stop the queue.
        job.listeners.delete(listener);
      }
    }
  }

  private announcePositions(): void {
    this.waiting.forEach((job, i) => {
      this.emit(job, { type: "queued", position: i + 1 });
    });
  }

  private finish(job: JobRecord, state: JobState, event: JobEvent): void {
    job.state = state;
    this.emit(job, event);
    job.listeners.clear();
    this.finished.push(job.id);
    while (this.finished.length > this.keepFinished) this.jobs.delete(this.finished.shift()!);
  }

  private pump(): void {
    if (this.running !== null) return;
    const job = this.waiting.shift();
    if (!job) return;
    this.running = job;
    job.state = "running";
    job.startedAt = Date.now();
    this.emit(job, { type: "started" });
    this.announcePositions();
    const signal = job.controller.signal;
    // Once cancelling, the page wants the end, not the last scales the runner gets through before it stops.
    const emit = (event: RunnerEvent) => {
      if (job.state === "running" && !signal.aborted) this.emit(job, event);
    };
    Promise.resolve()
      .then(() => this.runner.run(job.settings, signal, emit))
      .then(
        (output) => {
          job.output = output;
          const images: ImageInfo[] = output.images.map((img, i) => ({
            url: this.imageUrl(job.id, i),
            fileName: `hart-${job.settings.seed}-${i + 1}.png`,
            width: img.width,
            height: img.height,
          }));
          this.finish(job, "done", {
            type: "done",
            images,
            settings: job.settings,
            promptReplaced: output.promptReplaced,
            elapsedMs: Date.now() - job.startedAt,
          });
        },
        (error: unknown) => {
          if (signal.aborted) this.finish(job, "cancelled", { type: "cancelled" });
          else this.finish(job, "failed", { type: "failed", message: errorMessage(error) });
        },
      )
      .finally(() => {
        this.running = null;
        this.pump();
      });
  }
}

/** Preview data kept per job for late subscribers; older previews beyond it are dropped (newer ones supersede them). */
const PREVIEW_HISTORY_CHARS = 4 << 20;

function remember(job: JobRecord, event: JobEvent): void {
  const h = job.history;
  // Only the current place in the line matters.
  if (event.type === "queued") {
    const i = h.findIndex((e) => e.type === "queued");
    if (i >= 0) h.splice(i, 1);
  }
  h.push(event);
  if (event.type !== "preview") return;
  job.previewChars += event.dataUrl.length;
  while (job.previewChars > PREVIEW_HISTORY_CHARS) {
    const i = h.findIndex((e) => e.type === "preview");
    if (i === h.length - 1) break;
    const dropped = h.splice(i, 1)[0] as Extract<JobEvent, { type: "preview" }>;
    job.previewChars -= dropped.dataUrl.length;
  }
}

/** A one-line message for any thrown value. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
