import { assertDeviceUsable } from "@hart/core";
import { HartPipeline, type PretrainedProgressEvent } from "@hart/pipeline";
import type { CliContext } from "./cli";
import { formatBytes, type ProgressBar } from "./progress";

/** The model options of {@link addModelOptions}, as commander parses them. */
export interface ModelOptions {
  model: string;
  textModel?: string;
  device: "cpu" | "cuda" | "webgpu";
  dtype: "float32" | "float16" | "int8";
  ema: boolean;
  revision: string;
  cacheDir?: string;
  localFilesOnly?: boolean;
}

/** Shows downloads and component loading on the progress bar. */
export function loadProgress(bar: ProgressBar): (event: PretrainedProgressEvent) => void {
  return (event) => {
    if (event.stage === "download") {
      const name = event.file.length > 32 ? `…${event.file.slice(-31)}` : event.file;
      const { snapshotLoadedBytes: done, snapshotTotalBytes: total } = event;
      bar.update(
        `Downloading ${name}`,
        total > 0 ? done / total : undefined,
        `${formatBytes(done)} / ${formatBytes(total)}`,
        event.phase !== "progress",
      );
    } else if (event.stage === "load") {
      const fraction = event.phase === "step" && event.total ? (event.step ?? 0) / event.total : undefined;
      bar.update(
        `Loading ${event.component}${event.phase === "end" ? " ✓" : "…"}`,
        fraction,
        "",
        event.phase !== "step",
      );
    }
  };
}

/** Loads the pipeline the command's options describe. */
export async function loadPipeline(
  opts: ModelOptions,
  ctx: CliContext,
  bar: ProgressBar,
  extra: { releaseTextEncoder?: boolean } = {},
): Promise<HartPipeline> {
  // before any download: an unusable GPU device fails now, with what is missing
  assertDeviceUsable(opts.device);
  const pipeline = await HartPipeline.fromPretrained({
    model: opts.model,
    textModel: opts.textModel,
    device: opts.device,
    dtype: opts.dtype,
    useEma: opts.ema,
    revision: opts.revision,
    cacheDir: opts.cacheDir,
    localFilesOnly: opts.localFilesOnly,
    signal: ctx.signal,
    onProgress: loadProgress(bar),
    releaseTextEncoder: extra.releaseTextEncoder,
  });
  bar.clear();
  return pipeline;
}
