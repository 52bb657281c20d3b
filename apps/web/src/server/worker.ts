/**
 * The generation worker thread: owns the one `HartPipeline`, runs one job at a time, streams progress and
 * previews to the main thread, and aborts a job when told to. onnxruntime blocks the thread it runs on, which is
 * why this lives off the server's main thread.
 */
import { pathToFileURL } from "node:url";
import { parentPort, workerData } from "node:worker_threads";
import { encodePng, HartError, type Tensor, tensorToImages } from "@hart/core";
import {
  blocklistFilter,
  DEMO_SAFE_PROMPT,
  HartPipeline,
  type PipelineProgressEvent,
  type PromptFilter,
} from "@hart/pipeline";
import { DEFAULT_MAX_TOKEN_LENGTH, type GenerateSettings } from "../shared/protocol";
import { imageLatent, LatentPreviewer } from "./preview";
import { errorMessage, type RunnerEvent } from "./queue";
import type { FromWorker, ToWorker, WorkerConfig } from "./worker-protocol";

const port = parentPort;
if (!port) throw new Error("worker.ts must run in a worker thread");
const config = workerData as WorkerConfig;
const post = (message: FromWorker) => port.postMessage(message);
const controllers = new Map<number, AbortController>();

/** The prompt-safety hook from the command line: a blocklist, a module's filter, or both (either flags). */
async function loadPromptFilter(): Promise<PromptFilter | undefined> {
  const filters: PromptFilter[] = [];
  if (config.blocklist?.length) filters.push(blocklistFilter(config.blocklist));
  if (config.promptFilterModule) {
    const mod = (await import(pathToFileURL(config.promptFilterModule).href)) as { default?: unknown };
    let filter = mod.default;
    if (typeof filter === "function") filter = await (filter as () => unknown)();
    if (!filter || typeof (filter as PromptFilter).isUnsafe !== "function") {
      throw new HartError(
        "argument",
        `--prompt-filter ${config.promptFilterModule}: the default export must be a PromptFilter ({ isUnsafe(prompt) }) ` +
          "or a function returning one",
      );
    }
    filters.push(filter as PromptFilter);
  }
  if (filters.length <= 1) return filters[0];
  return {
    async isUnsafe(prompt, options) {
      for (const f of filters) if (await f.isUnsafe(prompt, options)) return true;
      return false;
    },
  };
}

interface Loaded {
  pipeline: HartPipeline;
  previewer: LatentPreviewer;
  /** The transformer's prompt length: prompts are padded or truncated to it. */
  maxTokenLength: number;
}

async function load(): Promise<Loaded> {
  const promptFilter = await loadPromptFilter();
  const pipeline = await HartPipeline.fromPretrained({
    model: config.model,
    textModel: config.textModel,
    intraOpThreads: config.threads,
    localFilesOnly: config.localFilesOnly,
    promptFilter,
    // The release demo shows a red heart instead of an unsafe prompt.
    unsafePromptReplacement: DEMO_SAFE_PROMPT,
    onProgress: (e) => {
      if (e.stage === "load" && e.phase === "start")
        post({ type: "log", message: `hart web: loading ${e.component} (${e.path})` });
      if (e.stage === "download" && e.phase === "start")
        post({ type: "log", message: `hart web: downloading ${e.repo}/${e.file}` });
    },
  });
  const previewer = await LatentPreviewer.fit(pipeline.tokenizer);
  const contextTokens = pipeline.paths?.llmConfig.context_token;
  const maxTokenLength = typeof contextTokens === "number" ? contextTokens : DEFAULT_MAX_TOKEN_LENGTH;
  post({
    type: "ready",
    info: {
      model: pipeline.paths?.root ?? config.model,
      imageSize: previewer.imageSize,
      maxTokenLength,
      safetyCheck: !!promptFilter,
    },
  });
  return { pipeline, previewer, maxTokenLength };
}

/**
 * Pipeline progress → the page's progress events: each stage's start, and its steps (the transformer's scales,
 * counted from 1, and any steps other stages report). The transformer is called "transformer" on the page.
 */
export function toRunnerEvent(e: PipelineProgressEvent, scales: number): RunnerEvent | undefined {
  const stage = e.stage === "ar" ? "transformer" : e.stage;
  if (e.phase === "start")
    return e.stage === "ar" ? { type: "progress", stage, step: 0, steps: scales } : { type: "progress", stage };
  if (e.phase === "step" && e.step !== undefined) return { type: "progress", stage, step: e.step, steps: e.total };
  return undefined;
}

async function generate(
  { pipeline, previewer, maxTokenLength }: Loaded,
  id: number,
  settings: GenerateSettings,
  signal: AbortSignal,
): Promise<void> {
  const emit = (event: RunnerEvent) => post({ type: "event", id, event });
  const scales = pipeline.tokenizer.quantizer.patchNums.length;
  // Previews of the first image: the cheap latent→RGB map, or a real decode of the latent so far.
  const render =
    config.preview === "decode"
      ? async (latent: Tensor<"float32">) => tensorToImages(await pipeline.tokenizer.decode(latent))[0]
      : async (latent: Tensor<"float32">) => previewer.render(latent);
  let previews = Promise.resolve();
  let failedPreview = false;
  const preview = (scale: number, latent: Tensor<"float32">) => {
    previews = previews
      .then(() => (signal.aborted ? undefined : render(latent)))
      .then((img) => {
        if (!img) return;
        const dataUrl = `data:image/png;base64,${Buffer.from(encodePng(img)).toString("base64")}`;
        emit({ type: "preview", scale, scales, width: img.width, height: img.height, dataUrl });
      })
      .catch((error: unknown) => {
        // A preview is a nicety: report the first failure, never fail the job for it.
        if (!failedPreview) post({ type: "log", message: `hart web: preview failed: ${errorMessage(error)}` });
        failedPreview = true;
      });
  };
  let fHat: Tensor<"float32"> | undefined;
  // The transformer's trace hook hands over f_hat after each scale and the last scale's codes (it is only
  // installed when previews are on).
  const trace = (name: string, value: Tensor) => {
    const scale = /^s(\d+)\.f_hat$/.exec(name);
    if (scale) {
      fHat = value as Tensor<"float32">;
      preview(Number(scale[1]) + 1, imageLatent(fHat));
    } else if (name === "last.h" && fHat) {
      preview(scales, imageLatent(fHat, value as Tensor<"float32">));
    }
  };
  const result = await pipeline.generate({
    prompts: Array.from({ length: settings.numImages }, () => settings.prompt),
    seed: settings.seed,
    cfg: settings.cfg,
    moreSmooth: settings.moreSmooth,
    maxTokenLength,
    signal,
    onProgress: (e) => {
      const event = toRunnerEvent(e, scales);
      if (event) emit(event);
    },
    transformerOptions: config.preview === "off" ? undefined : { trace },
  });
  await previews;
  post({
    type: "done",
    id,
    images: result.images.map((img) => ({ png: encodePng(img), width: img.width, height: img.height })),
    promptReplaced: result.replacedPrompts.length > 0,
  });
}

const loaded = load();
loaded.catch((error) => post({ type: "load-failed", message: errorMessage(error) }));

port.on("message", (message: ToWorker) => {
  if (message.type === "cancel") {
    controllers.get(message.id)?.abort();
    return;
  }
  const controller = new AbortController();
  controllers.set(message.id, controller);
  loaded
    .then((model) => generate(model, message.id, message.settings, controller.signal))
    .catch((error: unknown) => {
      const aborted = controller.signal.aborted || (error instanceof HartError && error.code === "aborted");
      post({ type: "error", id: message.id, message: errorMessage(error), aborted });
    })
    .finally(() => controllers.delete(message.id));
});
