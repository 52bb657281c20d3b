/** Messages between the server (main thread) and the generation worker thread. */
import type { GenerateSettings } from "../shared/protocol";
import type { GeneratedImage, RunnerEvent } from "./queue";

/**
 * Previews after each scale: `"linear"` maps the latent so far to RGB with an affine map fitted to the decoder
 * at load (cheap, approximate, latent resolution); `"decode"` runs the real decoder on it (exact but a full
 * decoder run per scale); `"off"` sends none.
 */
export type PreviewMode = "linear" | "decode" | "off";

/** What the worker loads (passed as `workerData`). */
export interface WorkerConfig {
  /** HART model folder (`llm/` + `tokenizer/`) or hub repo id. */
  model: string;
  /** Text encoder folder or hub repo id; undefined: the model's own `text_model/`, else the release's. */
  textModel?: string;
  /** onnxruntime intra-op threads (undefined: onnxruntime's default). */
  threads?: number;
  /** The preview streamed after each scale (see {@link PreviewMode}). */
  preview: PreviewMode;
  /** Words that make a prompt unsafe (the pipeline's blocklist filter), if any. */
  blocklist?: string[];
  /** An ES module whose default export is a `PromptFilter` (or a function returning one), if any. */
  promptFilterModule?: string;
  /** Never download; use only local folders or the hub cache. */
  localFilesOnly?: boolean;
}

/** What the worker reports once the model is loaded. */
export interface ModelInfo {
  /** Where the model was loaded from. */
  model: string;
  /** Output image side in pixels. */
  imageSize: number;
  /** Prompt tokens the transformer takes (`context_token` of llm/config.json; the release's 300). */
  maxTokenLength: number;
  /** Whether a prompt filter is active. */
  safetyCheck: boolean;
}

/** Main thread → worker. */
export type ToWorker = { type: "generate"; id: number; settings: GenerateSettings } | { type: "cancel"; id: number };

/** Worker → main thread. */
export type FromWorker =
  | { type: "ready"; info: ModelInfo }
  | { type: "load-failed"; message: string }
  | { type: "log"; message: string }
  | { type: "event"; id: number; event: RunnerEvent }
  | { type: "done"; id: number; images: GeneratedImage[]; promptReplaced: boolean }
  | { type: "error"; id: number; message: string; aborted: boolean };
