import { readFileSync } from "node:fs";
import { HartError } from "@hart/core";
import { registerGpuProviders } from "@hart/kernels-cuda";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { benchCommand } from "./commands/bench";
import { createTinyModelCommand } from "./commands/create-tiny-model";
import { downloadCommand } from "./commands/download";
import { generateCommand } from "./commands/generate";
import { infoCommand } from "./commands/info";
import { reconstructCommand } from "./commands/reconstruct";
import type { CliStreams } from "./progress";

/** What a command runs with: output streams and a signal that Ctrl-C aborts. */
export interface CliContext extends CliStreams {
  signal: AbortSignal;
}

/** Exit codes of `hart`. */
export const EXIT = { ok: 0, error: 1, usage: 2, interrupted: 130 } as const;

/** Parses a number option, rejecting anything that is not a finite number. */
export function numberArg(name: string, check?: (v: number) => string | undefined) {
  return (value: string): number => {
    const v = Number(value);
    if (value.trim() === "" || !Number.isFinite(v)) throw new InvalidArgumentError(`${name} must be a number.`);
    const problem = check?.(v);
    if (problem) throw new InvalidArgumentError(problem);
    return v;
  };
}

/** Parses an integer option (optionally with a minimum). */
export function intArg(name: string, min = Number.NEGATIVE_INFINITY) {
  return numberArg(name, (v) =>
    !Number.isInteger(v) ? `${name} must be an integer.` : v < min ? `${name} must be ≥ ${min}.` : undefined,
  );
}

/** The options every model-loading command shares. */
export function addModelOptions(cmd: Command, withText = true): Command {
  cmd
    .option(
      "--model <dir|repo>",
      "HART model: a folder with llm/ and tokenizer/, or a hub repo id",
      "mit-han-lab/hart-0.7b-1024px",
    )
    .addOption(
      new Option("--device <device>", "where the graphs run").choices(["cpu", "cuda", "webgpu"]).default("cpu"),
    )
    .addOption(
      new Option(
        "--dtype <dtype>",
        "weight precision of the transformer and text encoder (int8: their linear layers quantized, CPU only, faster and not exact)",
      )
        .choices(["float32", "float16", "int8"])
        .default("float32"),
    )
    .option("--no-ema", "use the base weights instead of ema_model.bin (the release uses EMA)")
    .option("--revision <rev>", "hub branch, tag or commit", "main")
    .option("--cache-dir <dir>", "Hugging Face cache (default: $HF_HUB_CACHE or ~/.cache/huggingface/hub)")
    .option("--local-files-only", "never download; use only what is in the cache (also HF_HUB_OFFLINE=1)");
  if (withText) {
    cmd.option(
      "--text-model <dir|repo>",
      "Qwen2 text encoder (default: <model>/text_model if present, else mit-han-lab/Qwen2-VL-1.5B-Instruct)",
    );
  }
  return cmd;
}

/** The sampling options `generate` and `bench` share (the release's defaults). */
export function addSamplingOptions(cmd: Command): Command {
  return cmd
    .option("--seed <n>", "random seed", intArg("--seed", 0), 1)
    .option(
      "--cfg <scale>",
      "classifier-free guidance scale",
      numberArg("--cfg", (v) => (v < 0 ? "--cfg must be ≥ 0." : undefined)),
      4.5,
    )
    .option("--more-smooth", "Gumbel-softmax smoothing of the codes (the release's default)")
    .option("--no-more-smooth", "sample hard codes instead")
    .option(
      "--max-token-length <n>",
      "prompt tokens after padding/truncation (default: the model's context_token, 300 for the release)",
      intArg("--max-token-length", 1),
    );
}

/** Builds the `hart` program (one per run, so tests can run it in-process). */
export function createProgram(ctx: CliContext): Command {
  const program = new Command("hart")
    .description("HART text-to-image (Hybrid Autoregressive Transformer) on onnxruntime, from the terminal")
    .version(VERSION, "-v, --version")
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    })
    .exitOverride();
  for (const make of [
    generateCommand,
    reconstructCommand,
    downloadCommand,
    infoCommand,
    benchCommand,
    createTinyModelCommand,
  ]) {
    const cmd = make(ctx);
    cmd.exitOverride();
    cmd.configureOutput({ writeOut: (s) => ctx.stdout.write(s), writeErr: (s) => ctx.stderr.write(s) });
    program.addCommand(cmd);
  }
  return program;
}

/** Runs `hart` with `argv` (without the node and script entries); resolves to the exit code. */
export async function runCli(argv: readonly string[], ctx: CliContext): Promise<number> {
  // `--device cuda`/`webgpu` then works, or fails at once saying what is missing (provider libraries, driver)
  registerGpuProviders();
  const program = createProgram(ctx);
  try {
    await program.parseAsync([...argv], { from: "user" });
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are "errors" to commander; usage problems were already printed by it.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (ctx.signal.aborted || (error instanceof HartError && error.code === "aborted")) {
      ctx.stderr.write("\nhart: interrupted; nothing was written\n");
      return EXIT.interrupted;
    }
    if (error instanceof HartError) {
      ctx.stderr.write(`hart: error: ${error.message}\n`);
      return error.code === "argument" || error.code === "usage" ? EXIT.usage : EXIT.error;
    }
    ctx.stderr.write(`hart: unexpected error: ${(error as Error)?.stack ?? error}\n`);
    return EXIT.error;
  }
}

/** The CLI's version, from its package.json (one folder above both src/ and dist/). */
const VERSION: string = (() => {
  try {
    return JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version;
  } catch {
    return "unknown";
  }
})();
