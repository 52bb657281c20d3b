import { existsSync } from "node:fs";
import { join } from "node:path";
import { HartTransformer } from "@hart/ar";
import { type Device, emitProgress, HartError, loadStateDict, type ProgressEvent, readConfig } from "@hart/core";
import { DIFFUSION_PREFIX, ResidualDiffusion } from "@hart/residual-diffusion";
import { Qwen2TextEncoder } from "@hart/text-encoder";
import { HartTokenizer } from "@hart/tokenizer";
import type { DownloadProgressEvent, HubOptions } from "./hub";
import { DEFAULT_MODEL, DEFAULT_TEXT_MODEL, type HartModelFolders, locateModelFolders, resolveSource } from "./layout";
import type { HartPipelineOptions } from "./pipeline";

/** A component being loaded (core's `ProgressEvent`; `"step"` events carry the component's own `step`/`total`). */
export interface LoadProgressEvent extends ProgressEvent {
  readonly stage: "load";
  /** The component. */
  readonly component: "tokenizer" | "transformer" | "diffusion" | "text encoder";
  /** `start` before the component loads, `step` for its own progress (with `step`/`total`), `end` once loaded. */
  readonly phase: "start" | "step" | "end";
  /** The folder it is loaded from. */
  readonly path: string;
}

/** Progress of {@link HartPipeline.fromPretrained}: downloads, then component loading. */
export type PretrainedProgressEvent = DownloadProgressEvent | LoadProgressEvent;

/** Options of {@link HartPipeline.fromPretrained}. */
export interface FromPretrainedOptions
  extends Omit<HubOptions, "onProgress" | "allowPatterns">,
    Pick<HartPipelineOptions, "promptFilter" | "unsafePromptReplacement" | "releaseTextEncoder" | "noiseForSeed"> {
  /**
   * The HART model: a folder in the official layout (`<model>/llm`, `<model>/tokenizer`, or the `llm`
   * folder itself) or a hub repo id (default `mit-han-lab/hart-0.7b-1024px`).
   */
  model?: string;
  /**
   * The Qwen2 text encoder: a folder or a hub repo id. Default: `<model>/text_model` when the model has
   * one (tiny test models do), else `mit-han-lab/Qwen2-VL-1.5B-Instruct`.
   */
  textModel?: string;
  /** Hub revision of the text model (default `"main"`; `revision` applies to `model`). */
  textModelRevision?: string;
  /** Where the graphs run (default `"cpu"`). */
  device?: Device;
  /**
   * Weight precision of the two large models, transformer and text encoder (default `"float32"`); one
   * that runs in float32 only rejects `"float16"` with a clear error. `"int8"` (CPU) quantizes the transformer
   * blocks' and the text encoder's linear layers (`DynamicQuantizeMatMul`: faster, not exact). The tokenizer and the
   * diffusion head always run in float32.
   */
  dtype?: "float32" | "float16" | "int8";
  /** Use the EMA weights (`ema_model.bin`, or `ema_model.safetensors`) like the release (default true). */
  useEma?: boolean;
  /** Threads per onnxruntime op (default: onnxruntime's choice). */
  intraOpThreads?: number;
  /** Download and load progress. */
  onProgress?: (event: PretrainedProgressEvent) => void;
}

/** Where a pretrained pipeline's parts came from. */
export interface PretrainedPaths extends Omit<HartModelFolders, "textModelDir"> {
  /** The text encoder folder used. */
  textModelDir: string;
}

/** The EMA checkpoint files accepted in an `llm/` folder, in order of preference. */
export const EMA_FILES = ["ema_model.bin", "ema_model.safetensors"] as const;

/** Resolves model and text model (downloading when needed) and loads the four components. */
export async function loadPretrainedComponents(options: FromPretrainedOptions): Promise<
  HartPipelineOptions & {
    /** The folders the components were loaded from (after any download). */
    paths: PretrainedPaths;
  }
> {
  const onProgress = (event: PretrainedProgressEvent) =>
    emitProgress(options.onProgress as ((e: ProgressEvent) => void) | undefined, event);
  const hub: HubOptions = {
    revision: options.revision,
    cacheDir: options.cacheDir,
    localFilesOnly: options.localFilesOnly,
    token: options.token,
    hubUrl: options.hubUrl,
    maxRetries: options.maxRetries,
    signal: options.signal,
    fetch: options.fetch,
    onProgress: options.onProgress,
  };
  const folders = await locateModelFolders(await resolveSource(options.model ?? DEFAULT_MODEL, "model", hub));
  const textModelDir =
    options.textModel !== undefined
      ? await resolveSource(options.textModel, "text model", { ...hub, revision: options.textModelRevision })
      : (folders.textModelDir ??
        (await resolveSource(DEFAULT_TEXT_MODEL, "text model", { ...hub, revision: options.textModelRevision })));
  // The small tokenizer and diffusion head always run in float32; `dtype` goes to the two large models.
  const common = { device: options.device, intraOpThreads: options.intraOpThreads };
  const large = { ...common, dtype: options.dtype };
  const useEma = options.useEma ?? true;
  const emaFile = useEma ? EMA_FILES.find((f) => existsSync(join(folders.llmDir, f))) : undefined;
  if (useEma && !emaFile) {
    throw new HartError(
      "missing-file",
      `${folders.llmDir}: no ${EMA_FILES.join(" or ")} (the EMA weights the release samples with); ` +
        "use the base weights with useEma: false (hart: --no-ema)",
    );
  }

  const step =
    <T>(component: LoadProgressEvent["component"], path: string, load: () => Promise<T>) =>
    async () => {
      options.signal?.throwIfAborted();
      onProgress?.({ stage: "load", component, phase: "start", path });
      const value = await load();
      onProgress?.({ stage: "load", component, phase: "end", path });
      return value;
    };
  const stepProgress =
    (component: LoadProgressEvent["component"], path: string) => (e: { done?: unknown; total?: unknown }) => {
      if (typeof e.done === "number" && typeof e.total === "number") {
        onProgress({ stage: "load", component, phase: "step", path, step: e.done, total: e.total });
      }
    };

  const tokenizer = await step("tokenizer", folders.tokenizerDir, () =>
    HartTokenizer.fromPretrained(folders.tokenizerDir, { ...common, onProgress: () => {} }),
  )();
  const transformer = await step("transformer", folders.llmDir, () =>
    HartTransformer.fromPretrained(folders.llmDir, tokenizer.quantizer, {
      ...large,
      useEma,
      emaFile,
      onProgress: stepProgress("transformer", folders.llmDir),
    }),
  )();
  const diffusion = await step("diffusion", folders.llmDir, () => loadDiffusion(folders.llmDir, emaFile, common))();
  const loadTextEncoder = step("text encoder", textModelDir, () =>
    Qwen2TextEncoder.fromPretrained(textModelDir, {
      ...large,
      onProgress: stepProgress("text encoder", textModelDir),
    }),
  );
  const textEncoder = await loadTextEncoder();
  return {
    textEncoder,
    loadTextEncoder,
    transformer,
    diffusion,
    tokenizer,
    promptFilter: options.promptFilter,
    unsafePromptReplacement: options.unsafePromptReplacement,
    releaseTextEncoder: options.releaseTextEncoder,
    noiseForSeed: options.noiseForSeed,
    paths: { ...folders, textModelDir },
  };
}

/**
 * The diffusion head with the chosen EMA file over the base weights. `ema_model.bin` (the release's
 * file) goes through the package's own loader; another EMA file is overlaid here the same way.
 */
async function loadDiffusion(
  llmDir: string,
  emaFile: string | undefined,
  common: { device?: Device; intraOpThreads?: number },
): Promise<ResidualDiffusion> {
  if (emaFile === undefined || emaFile === "ema_model.bin") {
    return ResidualDiffusion.fromPretrained(llmDir, { ...common, useEma: emaFile !== undefined });
  }
  const sd = loadStateDict(llmDir, { prefix: DIFFUSION_PREFIX });
  for (const [k, t] of loadStateDict(llmDir, { file: emaFile, prefix: DIFFUSION_PREFIX })) sd.set(k, t);
  return ResidualDiffusion.fromStateDict(sd, readConfig(llmDir), { ...common, source: `${llmDir} (${emaFile})` });
}

/** Loads only the image tokenizer of a model (folder or hub repo), e.g. for reconstruction. */
export async function loadImageTokenizer(
  options: Pick<FromPretrainedOptions, "model" | "device" | "intraOpThreads" | "onProgress"> &
    Omit<HubOptions, "onProgress" | "allowPatterns">,
): Promise<HartTokenizer> {
  const folders = await locateModelFolders(
    await resolveSource(options.model ?? DEFAULT_MODEL, "model", {
      ...options,
      allowPatterns: ["llm/config.json", "tokenizer/*"],
    }),
  );
  return HartTokenizer.fromPretrained(folders.tokenizerDir, {
    device: options.device,
    intraOpThreads: options.intraOpThreads,
  });
}
