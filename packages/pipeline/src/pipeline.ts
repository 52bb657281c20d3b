import {
  emitProgress,
  HartError,
  type ProgressEvent,
  type RgbImage,
  type Tensor,
  tensor,
  tensorToImages,
} from "@hart/core";
import { imageToUnit } from "@hart/tokenizer";
import type {
  ARResult,
  GenerateOptions,
  ImageTokenizer,
  NoiseSource,
  ResidualSampler,
  TextEncoder,
  Transformer,
} from "./components";
import { seededNoise } from "./noise";
import { type FromPretrainedOptions, loadPretrainedComponents, type PretrainedPaths } from "./pretrained";
import { applyPromptFilter, type PromptFilter, type UnsafePromptReplacement } from "./prompts";

/** A pipeline stage, as named in progress events and timings. */
export type PipelineStage = "filter" | "text" | "ar" | "diffusion" | "decode";

/**
 * Progress of {@link HartPipeline.generate} (core's `ProgressEvent`): stage boundaries, and per-step
 * events forwarded from the components (`"ar"`: one per finished scale, `step` of `total`;
 * `"diffusion"`: one per sampler step).
 */
export interface PipelineProgressEvent extends ProgressEvent {
  readonly stage: PipelineStage;
  /** `"start"` / `"end"` of the stage, or `"step"` within it. */
  readonly phase: "start" | "end" | "step";
  /** Seconds since `generate` was called. */
  readonly elapsedSeconds: number;
}

/** Wall-clock time of each stage of one generation, in milliseconds. */
export interface StageTimings {
  /** The prompt-safety hook (0 without a filter). */
  filterMs: number;
  /** Prompt encoding (text encoder). */
  textMs: number;
  /** The whole autoregressive scale loop. */
  arMs: number;
  /** Per scale, from the transformer's progress events (empty when it reports none). */
  arScaleMs: number[];
  /** The residual diffusion (0 when disabled). */
  diffusionMs: number;
  /** Latent → image (decoder). */
  decodeMs: number;
  /** Everything, end to end. */
  totalMs: number;
}

/**
 * One generated image: RGB8 pixels, row-major HWC, as the release writes them (`uint8(x · 255)`,
 * truncating; core's `encodePng`/`writePng` take it as is).
 */
export interface GeneratedImage extends RgbImage {
  /** The prompt it was generated from (after the safety hook). */
  readonly prompt: string;
}

/** What {@link HartPipeline.generate} returns. */
export interface GenerationResult {
  /** One image per prompt, in order. */
  images: GeneratedImage[];
  /** All images as floats `[B, 3, H, W]` in [0, 1] (the release's `(img + 1) * 0.5`). */
  imagesB3HW: Tensor<"float32">;
  /** The prompts generated (after the safety hook). */
  prompts: string[];
  /** Indices of prompts the safety hook replaced. */
  replacedPrompts: number[];
  /** The seed used (drawn at random when none was given, so any run can be repeated). */
  seed: number;
  /** The sampled codes per scale, `[B, pn*pn]` each. */
  indices: Tensor<"int64">[];
  /** Stage timings. */
  timings: StageTimings;
}

/** Options of {@link HartPipeline.generate}. Defaults are the release's (`sample.py`). */
export interface GenerateRequest {
  /** One prompt or a batch; each must be non-empty. */
  prompts: string | readonly string[];
  /** Seed of every random draw (codes and diffusion noise). Default: a random seed, reported in the result. */
  seed?: number;
  /** Classifier-free guidance scale, ≥ 0 (default 4.5). */
  cfg?: number;
  /** Top-k of the token sampler (default: the release's 600, 300 from scale 7 on). */
  topK?: number | ((si: number) => number);
  /** Top-p of the token sampler (default 0 = off). */
  topP?: number;
  /** Gumbel-softmax smoothing of the codes (default true, like the release's scripts). */
  moreSmooth?: boolean;
  /** Prepend the release's system prompt to each prompt for encoding (default true). */
  useSystemPrompt?: boolean;
  /**
   * Prompt tokens after padding/truncation. Default: the pipeline's `maxTokenLength` (the transformer's
   * `context_token` for `fromPretrained`, 300 in the release), else 300. The transformer only accepts
   * its own `context_token`.
   */
  maxTokenLength?: number;
  /** Run the residual diffusion (default true); false decodes the discrete codes only. */
  residualDiffusion?: boolean;
  /** Temperature of the residual diffusion (default 1). */
  diffusionTemperature?: number;
  /** Release the text encoder right after encoding (overrides the pipeline's setting). */
  releaseTextEncoder?: boolean;
  /** Cancels generation between steps; the promise rejects with a `HartError` of code `"aborted"`. */
  signal?: AbortSignal;
  /** Stage and step progress. */
  onProgress?: (event: PipelineProgressEvent) => void;
  /** Extra options for the transformer (e.g. its replay mode); they override the ones above. */
  transformerOptions?: Partial<GenerateOptions>;
  /** The diffusion's noise (e.g. a replay source). Default: seeded from `seed`. */
  diffusionNoise?: NoiseSource;
}

/** The components of a pipeline; any object implementing the interfaces will do. */
export interface HartComponents {
  /** Prompt encoder (optional when `loadTextEncoder` is given; then it is loaded on first use). */
  textEncoder?: TextEncoder;
  /** The autoregressive transformer. */
  transformer: Transformer;
  /** The residual diffusion sampler. */
  diffusion: ResidualSampler;
  /** The image tokenizer (its decoder makes the image). */
  tokenizer: ImageTokenizer;
}

/** Options of the {@link HartPipeline} constructor beyond the components. */
export interface HartPipelineOptions extends HartComponents {
  /** Loads the text encoder again after a release (what `fromPretrained` passes). */
  loadTextEncoder?: () => Promise<TextEncoder>;
  /** Release the text encoder after each encoding to save memory (the transformer and decoder stay). */
  releaseTextEncoder?: boolean;
  /** Safety check on every prompt (none by default). */
  promptFilter?: PromptFilter;
  /** What replaces a flagged prompt (default `"default-prompt"`, as the release's `sample.py`). */
  unsafePromptReplacement?: UnsafePromptReplacement;
  /** The diffusion's noise for a generation seed (default {@link seededNoise}: core's seeded RNG). */
  noiseForSeed?: (seed: number) => NoiseSource | undefined;
  /** Where the components were loaded from (set by `fromPretrained`). */
  paths?: PretrainedPaths;
  /**
   * Default prompt length. Default: the transformer's `config.contextToken` when it has one (the
   * default transformer does; it only accepts that length), else 300 (the release's).
   */
  maxTokenLength?: number;
}

/**
 * Text → image with HART: prompt safety hook → text encoder → autoregressive transformer → residual
 * diffusion → tokenizer decoder. It only wires the components together; each box is an interface, so
 * any of them can be swapped for your own object.
 */
export class HartPipeline {
  /** The transformer. */
  readonly transformer: Transformer;
  /** The residual diffusion sampler. */
  readonly diffusion: ResidualSampler;
  /** The image tokenizer. */
  readonly tokenizer: ImageTokenizer;
  private textEncoder: TextEncoder | undefined;
  private released = false;
  private readonly options: HartPipelineOptions;
  private readonly defaultMaxTokenLength: number;

  /** Builds a pipeline from components (see `HartPipeline.fromPretrained` to load the official ones). */
  constructor(options: HartPipelineOptions) {
    for (const key of ["transformer", "diffusion", "tokenizer"] as const) {
      if (!options[key]) throw new HartError("argument", `HartPipeline: the ${key} component is missing`);
    }
    if (!options.textEncoder && !options.loadTextEncoder) {
      throw new HartError("argument", "HartPipeline: give a textEncoder (or a loadTextEncoder function)");
    }
    this.options = options;
    this.transformer = options.transformer;
    this.diffusion = options.diffusion;
    this.tokenizer = options.tokenizer;
    this.textEncoder = options.textEncoder;
    const contextToken = (options.transformer as { config?: { contextToken?: unknown } }).config?.contextToken;
    this.defaultMaxTokenLength =
      options.maxTokenLength ?? (typeof contextToken === "number" && contextToken > 0 ? contextToken : 300);
  }

  /**
   * Loads the official components from model folders or hub repo ids (downloading into the Hugging Face
   * cache when needed) and wires them into a pipeline.
   *
   * @example
   * ```ts
   * const pipe = await HartPipeline.fromPretrained({ model: "mit-han-lab/hart-0.7b-1024px" });
   * const { images } = await pipe.generate({ prompts: ["a red heart"], seed: 1 });
   * ```
   */
  static async fromPretrained(options: FromPretrainedOptions = {}): Promise<HartPipeline> {
    return new HartPipeline(await loadPretrainedComponents(options));
  }

  /** Where the components came from, for a pipeline made by {@link HartPipeline.fromPretrained}. */
  get paths(): PretrainedPaths | undefined {
    return this.options.paths;
  }

  /** The text encoder if it is loaded (undefined after a release). */
  get loadedTextEncoder(): TextEncoder | undefined {
    return this.textEncoder;
  }

  /** Frees the text encoder's memory now; with `loadTextEncoder` it is reloaded when next needed. */
  async releaseTextEncoder(): Promise<void> {
    const encoder = this.textEncoder;
    this.textEncoder = undefined;
    await encoder?.release();
  }

  /**
   * Frees the native memory of every component that has a `release()` (text encoder, transformer, diffusion,
   * tokenizer: all of the official ones), also components shared with another pipeline. The pipeline cannot
   * generate afterwards.
   */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.releaseTextEncoder();
    for (const component of [this.transformer, this.diffusion, this.tokenizer] as { release?: () => Promise<void> }[])
      await component.release?.();
  }

  /** Generates one image per prompt. */
  async generate(request: GenerateRequest): Promise<GenerationResult> {
    if (this.released) throw new HartError("released", "HartPipeline: generate() after release()");
    const t0 = performance.now();
    const prompts = validatePrompts(request.prompts);
    const cfg = request.cfg ?? 4.5;
    if (typeof cfg !== "number" || !Number.isFinite(cfg) || cfg < 0) {
      throw new HartError("argument", `cfg must be a finite number ≥ 0, got ${cfg}`);
    }
    const maxTokenLength = request.maxTokenLength ?? this.defaultMaxTokenLength;
    if (!Number.isInteger(maxTokenLength) || maxTokenLength < 1) {
      throw new HartError("argument", `maxTokenLength must be a positive integer, got ${maxTokenLength}`);
    }
    const seed = request.seed ?? randomSeed();
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new HartError("argument", `seed must be a non-negative integer, got ${seed}`);
    }
    const { signal, onProgress } = request;
    const emit = (
      stage: PipelineStage,
      phase: PipelineProgressEvent["phase"],
      extra: Pick<ProgressEvent, "step" | "total" | "message"> = {},
    ) => {
      const event: PipelineProgressEvent = { ...extra, stage, phase, elapsedSeconds: (performance.now() - t0) / 1000 };
      emitProgress(onProgress as ((e: ProgressEvent) => void) | undefined, event);
    };
    const stage = async <T>(name: PipelineStage, run: () => Promise<T>): Promise<[T, number]> => {
      throwIfAborted(signal);
      emit(name, "start");
      const start = performance.now();
      const value = await run();
      const ms = performance.now() - start;
      emit(name, "end");
      throwIfAborted(signal);
      return [value, ms];
    };

    try {
      const [filtered, filterMs] = await stage("filter", () =>
        applyPromptFilter(
          prompts,
          this.options.promptFilter,
          this.options.unsafePromptReplacement ?? "default-prompt",
          seed,
          signal,
        ),
      );

      const [encoded, textMs] = await stage("text", async () => {
        const encoder = await this.ensureTextEncoder();
        const out = await encoder.encode(filtered.prompts, {
          useSystemPrompt: request.useSystemPrompt ?? true,
          maxTokenLength,
        });
        if (request.releaseTextEncoder ?? this.options.releaseTextEncoder) await this.releaseTextEncoder();
        return out;
      });

      const scaleMs: number[] = [];
      const [ar, arMs] = await stage("ar", () =>
        this.transformer.generate(encoded, {
          cfg,
          seed,
          topK: request.topK,
          topP: request.topP,
          moreSmooth: request.moreSmooth ?? true,
          signal,
          onProgress: (event) => {
            if (typeof event.elapsedSeconds === "number") scaleMs[event.scale] = event.elapsedSeconds * 1000;
            emit("ar", "step", {
              step: event.scale + 1,
              total: event.scales,
              message: `scale ${event.scale + 1}/${event.scales} (${event.tokens} tokens)`,
            });
          },
          ...request.transformerOptions,
        }),
      );
      checkARResult(ar, filtered.prompts.length);

      const [residual, diffusionMs] =
        request.residualDiffusion === false
          ? [undefined, 0]
          : await stage("diffusion", () =>
              this.diffusion.sample(ar.diffusionCond, {
                cfg: ar.lastCfg,
                temperature: request.diffusionTemperature,
                noise: request.diffusionNoise ?? (this.options.noiseForSeed ?? seededNoise)(seed),
                signal,
                // Samplers that report steps (the default one does) drive the progress events.
                ...{
                  onProgress: (e: ProgressEvent) =>
                    emit("diffusion", "step", { step: e.step, total: e.total, message: e.message }),
                },
              }),
            );

      const fHatBCHW = addLastScale(ar, residual);
      const [imageM11, decodeMs] = await stage("decode", () => this.tokenizer.decode(fHatBCHW));
      if (imageM11.shape.length !== 4 || imageM11.shape[0] !== filtered.prompts.length || imageM11.shape[1] !== 3) {
        throw new HartError(
          "shape",
          `the decoder returned [${imageM11.shape}], expected [${filtered.prompts.length}, 3, H, W]`,
        );
      }
      const imagesB3HW = imageToUnit(imageM11);
      return {
        images: tensorToImages(imageM11).map((image, b) => ({ ...image, prompt: filtered.prompts[b] })),
        imagesB3HW,
        prompts: filtered.prompts,
        replacedPrompts: filtered.replaced,
        seed,
        indices: ar.indices,
        timings: {
          filterMs,
          textMs,
          arMs,
          arScaleMs: Array.from(scaleMs, (ms) => ms ?? 0),
          diffusionMs,
          decodeMs,
          totalMs: performance.now() - t0,
        },
      };
    } catch (error) {
      if (signal?.aborted && !(error instanceof HartError && error.code === "aborted")) {
        throw new HartError("aborted", "generation was cancelled", { cause: error });
      }
      throw error;
    }
  }

  private async ensureTextEncoder(): Promise<TextEncoder> {
    if (!this.textEncoder) {
      if (!this.options.loadTextEncoder) {
        throw new HartError("released", "the text encoder was released and this pipeline has no way to reload it");
      }
      this.textEncoder = await this.options.loadTextEncoder();
    }
    return this.textEncoder;
  }
}

function validatePrompts(prompts: string | readonly string[] | undefined): string[] {
  const list = typeof prompts === "string" ? [prompts] : prompts;
  if (!Array.isArray(list) || list.length === 0) {
    throw new HartError("argument", "prompts: give at least one prompt");
  }
  list.forEach((p, i) => {
    if (typeof p !== "string" || p.trim() === "") {
      throw new HartError("argument", `prompt ${i + 1} of ${list.length} is empty`);
    }
  });
  return [...list];
}

/**
 * `f_hat + (h_last + h_diff)` as `[B, Cvae, HW, HW]`: the official last step, which adds the last
 * scale's code embeddings and the diffusion residual without Phi. Each value is a float32 sum in the
 * reference's order.
 */
function addLastScale(ar: ARResult, residualNC: Tensor<"float32"> | undefined): Tensor<"float32"> {
  const [B, C, H, W] = ar.fHatBCHW.shape;
  const P = H * W;
  const fHat = ar.fHatBCHW.data;
  const h = ar.lastHBLC.data;
  const diff = residualNC?.data;
  if (residualNC && (residualNC.shape[0] < B * P || residualNC.shape[1] !== C)) {
    throw new HartError(
      "shape",
      `residual diffusion returned [${residualNC.shape}], expected at least [${B * P}, ${C}] (B·HW·HW rows, Cvae)`,
    );
  }
  const out = new Float32Array(fHat.length);
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < P; p++) {
      const row = (b * P + p) * C;
      for (let c = 0; c < C; c++) {
        const i = (b * C + c) * P + p;
        const add = diff ? Math.fround(h[row + c] + diff[row + c]) : h[row + c];
        out[i] = Math.fround(fHat[i] + add);
      }
    }
  }
  return tensor("float32", [B, C, H, W], out);
}

function checkARResult(ar: ARResult, batch: number): void {
  const f = ar.fHatBCHW.shape;
  const h = ar.lastHBLC.shape;
  if (f.length !== 4 || f[0] !== batch || f[2] !== f[3] || h.length !== 3 || h[0] !== batch) {
    throw new HartError("shape", `transformer returned fHat [${f}] and lastH [${h}] for ${batch} prompts`);
  }
  if (h[1] !== f[2] * f[3] || h[2] !== f[1]) {
    throw new HartError("shape", `transformer's lastH [${h}] does not match fHat [${f}] (expected [B, HW*HW, Cvae])`);
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new HartError("aborted", "generation was cancelled", { cause: signal.reason });
}

function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}
