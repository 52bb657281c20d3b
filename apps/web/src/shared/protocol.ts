/**
 * What the server and the page agree on: the release demo's defaults and ranges, the request body of
 * `POST /api/jobs`, and the events of a job's `GET /api/jobs/:id/events` stream.
 * Imported by both sides (the page through Vite), so it holds types and plain data only.
 */

/** Largest seed the release demo offers (`np.iinfo(np.int32).max` in the official app.py). */
export const MAX_SEED = 2_147_483_647;

/** Defaults of the official Gradio demo (app.py): seed 42 with "randomize" on, guidance 4.5, more-smooth on. */
export const RELEASE_DEFAULTS = {
  seed: 42,
  randomizeSeed: true,
  cfg: 4.5,
  moreSmooth: true,
  numImages: 1,
} as const;

/** Guidance slider range and step of the official demo. */
export const CFG_RANGE = { min: 0.1, max: 20, step: 0.1 } as const;

/** Most images one job may ask for. */
export const MAX_IMAGES = 4;

/** The release demo's queue bound (`demo.queue(max_size=20)`): jobs that may wait behind the running one. */
export const DEFAULT_MAX_QUEUE = 20;

/** The release demo's prompt-token limit (`--max_token_length 300`). */
export const DEFAULT_MAX_TOKEN_LENGTH = 300;

/**
 * Characters allowed per prompt token. BPE tokens of English text average about four characters, so
 * `maxTokenLength × 4` characters is roughly what fills the text encoder's token budget; longer prompts
 * would be truncated by the encoder anyway.
 */
export const CHARS_PER_TOKEN = 4;

/** The example prompts of the official demo, in its order. */
export const EXAMPLE_PROMPTS: readonly string[] = [
  "melting apple",
  "neon holography crystal cat",
  "A dog that has been meditating all the time",
  "An astronaut riding a horse on the moon, oil painting by Van Gogh.",
  "8k uhd A man looks up at the starry sky, lonely and ethereal, Minimalism, Chaotic composition Op Art",
  "Full body shot, a French woman, Photography, French Streets background, backlighting, rim light, Fujifilm.",
  "Steampunk makeup, in the style of vray tracing, colorful impasto, uhd image, indonesian art, fine feather details with bright red and yellow and green and pink and orange colours, intricate patterns and details, dark cyan and amber makeup. Rich colourful plumes. Victorian style.",
];

/** Body of `POST /api/jobs`. Only `prompt` is required; `seed` is ignored when `randomizeSeed` is true. */
export interface GenerateBody {
  prompt: string;
  seed?: number;
  randomizeSeed?: boolean;
  cfg?: number;
  moreSmooth?: boolean;
  numImages?: number;
}

/** A validated request with every setting resolved (the seed already drawn when it was randomized). */
export interface GenerateSettings {
  prompt: string;
  seed: number;
  cfg: number;
  moreSmooth: boolean;
  numImages: number;
}

/** `GET /api/config`: limits and defaults the page builds its form from. */
export interface ServerConfig {
  /** Whether the model finished loading (jobs submitted before wait in the queue). */
  ready: boolean;
  /** Load failure, when loading failed. */
  loadError?: string;
  model: string;
  /** Output image side in pixels, once known. */
  imageSize?: number;
  maxPromptChars: number;
  maxImages: number;
  maxQueue: number;
  maxSeed: number;
  cfg: { min: number; max: number; step: number; default: number };
  defaults: { seed: number; randomizeSeed: boolean; moreSmooth: boolean; numImages: number };
  examples: readonly string[];
  /** Whether a prompt-safety check is configured (unsafe prompts are then replaced, like the release does). */
  safetyCheck: boolean;
}

/** `POST /api/jobs` answer (202). */
export interface SubmitResponse {
  id: string;
  /** 0 when it starts at once, else its place in the waiting line (1 = next). */
  position: number;
  settings: GenerateSettings;
}

/** One image of a finished job. */
export interface ImageInfo {
  /** Where the PNG is served; add `?download=1` for an attachment. */
  url: string;
  /** Suggested file name. */
  fileName: string;
  width: number;
  height: number;
}

/** Lifecycle of a job. */
export type JobState = "queued" | "running" | "done" | "failed" | "cancelled";

/** Events of `GET /api/jobs/:id/events` (each SSE message's `event` is the `type`, `data` the JSON). */
export type JobEvent =
  | { type: "queued"; position: number }
  | { type: "started" }
  /** A pipeline stage began or advanced; `step`/`steps` count scales in "transformer", steps in "diffusion". */
  | { type: "progress"; stage: string; step?: number; steps?: number; message?: string }
  /** A small picture of the image so far, after transformer scale `scale` (1-based) of `scales`. */
  | { type: "preview"; scale: number; scales: number; width: number; height: number; dataUrl: string }
  | { type: "cancelling" }
  | {
      type: "done";
      images: ImageInfo[];
      settings: GenerateSettings;
      /** True when the safety check replaced the prompt. */
      promptReplaced: boolean;
      elapsedMs: number;
    }
  | { type: "failed"; message: string }
  | { type: "cancelled" };

/** The events after which a job's stream ends. */
export const TERMINAL_EVENTS: ReadonlySet<JobEvent["type"]> = new Set(["done", "failed", "cancelled"]);

/** `GET /api/jobs/:id`: a job's current state. */
export interface JobSnapshot {
  id: string;
  state: JobState;
  position: number;
  settings: GenerateSettings;
  /** The last event, if any. */
  last?: JobEvent;
}

/** Error answers of the API: `{ error }` with a human-readable message. */
export interface ErrorResponse {
  error: string;
}
