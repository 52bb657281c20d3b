import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { encodePng, HartError } from "@hart/core";
import { type GenerationResult, type PipelineProgressEvent, sampleDefaultPrompts } from "@hart/pipeline";
import { Command, Option } from "commander";
import { addModelOptions, addSamplingOptions, type CliContext, intArg, numberArg } from "../cli";
import { releaseGrid } from "../grid";
import { loadPipeline, type ModelOptions } from "../load";
import { OutputFiles } from "../output";
import { formatMs, ProgressBar } from "../progress";

interface GenerateCliOptions extends ModelOptions {
  prompt: string[];
  promptFile?: string;
  seed: number;
  cfg: number;
  topK?: number;
  topP?: number;
  moreSmooth?: boolean;
  systemPrompt: boolean;
  maxTokenLength?: number;
  residualDiffusion: boolean;
  out: string;
  grid?: boolean;
  separate?: boolean;
  lowMemory?: boolean;
  json?: boolean;
}

/** `hart generate`: the release's `sample.py`. */
export function generateCommand(ctx: CliContext): Command {
  const cmd = new Command("generate")
    .description("generate images from text prompts (the release's sample.py)")
    .option("-p, --prompt <text>", "a prompt; repeat for a batch", (v: string, all: string[]) => [...all, v], [])
    .addOption(new Option("--prompt-file <file>", "read prompts from a file, one per line").conflicts("prompt"))
    .option(
      "--top-k <k>",
      "top-k of the token sampler (default: the release's 600, 300 from scale 7)",
      intArg("--top-k", 1),
    )
    .option(
      "--top-p <p>",
      "top-p of the token sampler (default: off)",
      numberArg("--top-p", (v) => (v < 0 || v > 1 ? "--top-p must be in [0, 1]." : undefined)),
    )
    .option("--no-system-prompt", "do not prepend the release's system prompt when encoding")
    .option("--no-residual-diffusion", "decode the discrete codes only (skip the residual diffusion)")
    .option("-o, --out <dir>", "output folder", "samples/")
    .addOption(new Option("--grid", "save one grid image (default with several prompts)").conflicts("separate"))
    .option("--separate", "save one PNG per prompt")
    .option("--low-memory", "release the text encoder after encoding (the transformer and decoder stay)")
    .option("--json", "print a JSON summary on stdout (no progress bar)");
  return addModelOptions(addSamplingOptions(cmd)).action((opts: GenerateCliOptions) => runGenerate(opts, ctx));
}

/** Reads the prompts the options ask for; without any, samples 4 of the release's default prompts. */
function collectPrompts(opts: GenerateCliOptions, ctx: CliContext): string[] {
  if (opts.promptFile) {
    let text: string;
    try {
      text = readFileSync(opts.promptFile, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new HartError("argument", `cannot read the prompt file ${opts.promptFile} (${code ?? error})`);
    }
    const prompts = text.split(/\r?\n/).filter((line) => line.trim() !== "");
    if (prompts.length === 0) throw new HartError("argument", `the prompt file ${opts.promptFile} has no prompts`);
    return prompts;
  }
  if (opts.prompt.length > 0) {
    opts.prompt.forEach((p, i) => {
      if (p.trim() === "") throw new HartError("argument", `--prompt ${i + 1} is empty`);
    });
    return opts.prompt;
  }
  if (!opts.json) ctx.stderr.write("No prompt given: sampling 4 of the release's default prompts.\n");
  return sampleDefaultPrompts(4, opts.seed);
}

async function runGenerate(opts: GenerateCliOptions, ctx: CliContext): Promise<void> {
  const prompts = collectPrompts(opts, ctx);
  const outInfo = statSync(opts.out, { throwIfNoEntry: false });
  if (outInfo && !outInfo.isDirectory()) throw new HartError("argument", `--out ${opts.out} is a file, not a folder`);
  const bar = new ProgressBar(ctx.stderr, !opts.json);
  const out = new OutputFiles();
  try {
    const pipeline = await loadPipeline(opts, ctx, bar, { releaseTextEncoder: opts.lowMemory });
    const result = await pipeline.generate({
      prompts,
      seed: opts.seed,
      cfg: opts.cfg,
      topK: opts.topK,
      topP: opts.topP,
      moreSmooth: opts.moreSmooth ?? true,
      useSystemPrompt: opts.systemPrompt,
      maxTokenLength: opts.maxTokenLength,
      residualDiffusion: opts.residualDiffusion,
      signal: ctx.signal,
      onProgress: generationProgress(bar),
    });
    bar.clear();
    for (const i of result.replacedPrompts) {
      ctx.stderr.write(`Prompt ${i + 1} was flagged as unsafe and replaced by a default prompt.\n`);
    }
    const grid = opts.grid || (!opts.separate && result.images.length > 1);
    if (grid) {
      out.stage(join(opts.out, "sample_images.png"), encodePng(releaseGrid(result.imagesB3HW)));
    } else {
      result.images.forEach((img, i) => {
        out.stage(join(opts.out, `${String(i).padStart(6, "0")}.png`), encodePng(img));
      });
    }
    out.stage(join(opts.out, "prompt.txt"), result.prompts.join("\n"));
    ctx.signal.throwIfAborted();
    const files = out.commit();
    report(result, files, opts, ctx);
  } finally {
    bar.clear();
    out.rollback();
  }
}

/** Progress of one generation on the bar: stages, AR scales, diffusion steps. */
function generationProgress(bar: ProgressBar): (event: PipelineProgressEvent) => void {
  const names = {
    filter: "Checking prompts",
    text: "Encoding prompts",
    ar: "Transformer",
    diffusion: "Residual diffusion",
    decode: "Decoding",
  };
  return (event) => {
    if (event.phase === "end") return;
    if (event.phase === "step" && event.step !== undefined && event.total) {
      bar.update(names[event.stage], event.step / event.total, event.message ?? `${event.step}/${event.total}`);
    } else {
      bar.update(`${names[event.stage]}…`, undefined, "", event.phase === "start");
    }
  };
}

function report(result: GenerationResult, files: string[], opts: GenerateCliOptions, ctx: CliContext): void {
  const t = result.timings;
  const img = result.images[0];
  if (opts.json) {
    ctx.stdout.write(
      `${JSON.stringify(
        {
          files,
          prompts: result.prompts,
          replacedPrompts: result.replacedPrompts,
          seed: result.seed,
          cfg: opts.cfg,
          width: img.width,
          height: img.height,
          timingsMs: t,
        },
        null,
        2,
      )}\n`,
    );
    return;
  }
  const n = result.images.length;
  ctx.stdout.write(
    `Generated ${n} image${n > 1 ? "s" : ""} (${img.width}×${img.height}, seed ${result.seed}) in ${formatMs(t.totalMs)}: ` +
      `text ${formatMs(t.textMs)}, transformer ${formatMs(t.arMs)}, diffusion ${formatMs(t.diffusionMs)}, decode ${formatMs(t.decodeMs)}\n`,
  );
  for (const f of files) ctx.stdout.write(`  ${f}\n`);
}
