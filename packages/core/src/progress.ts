/**
 * Progress reporting shared by every hart package: one event shape, one
 * callback type, one helper to call it.
 */

/**
 * One progress report. `stage` names what is happening (e.g. `"download"`,
 * `"load"`, `"encode-text"`, `"ar"`, `"diffusion"`, `"decode"`); the other
 * fields are filled when they mean something for that stage.
 *
 * @example
 * ```ts
 * { stage: "ar", step: 3, total: 10, message: "scale 3/10 (8×8 tokens)" }
 * { stage: "download", file: "llm/model.safetensors", loadedBytes: 1_048_576, totalBytes: 2_946_000_000 }
 * ```
 */
export interface ProgressEvent {
  /** What is happening (a short stable identifier, not prose). */
  readonly stage: string;
  /** Steps done so far in this stage (1-based when reported after a step). */
  readonly step?: number;
  /** Number of steps of this stage, when known. */
  readonly total?: number;
  /** A human-readable line. */
  readonly message?: string;
  /** The file being downloaded or read. */
  readonly file?: string;
  /** Bytes of `file` done so far. */
  readonly loadedBytes?: number;
  /** Size of `file` in bytes, when known. */
  readonly totalBytes?: number;
  /** Seconds spent in this stage so far, or in the step just finished. */
  readonly elapsedSeconds?: number;
}

/** The callback every loader and generator accepts as `onProgress`. */
export type OnProgress = (event: ProgressEvent) => void;

const warned = new WeakSet<OnProgress>();

/**
 * Calls `onProgress` (if given) with `event`. A callback that throws must not
 * break a generation that is otherwise fine, so its error is reported once per
 * callback with `console.warn` and otherwise ignored (cancel with an
 * `AbortSignal`, not by throwing from a progress callback).
 */
export function emitProgress(onProgress: OnProgress | undefined, event: ProgressEvent): void {
  if (!onProgress) return;
  try {
    onProgress(event);
  } catch (err) {
    if (!warned.has(onProgress)) {
      warned.add(onProgress);
      console.warn(`hart: the onProgress callback threw (ignored from now on): ${(err as Error)?.message ?? err}`);
    }
  }
}
