import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_MAX_QUEUE } from "../shared/protocol";
import type { PreviewMode } from "./worker-protocol";

/** Settings of the web server, from its command line. */
export interface ServerArgs {
  model: string;
  textModel?: string;
  host: string;
  port: number;
  maxQueue: number;
  threads?: number;
  preview: PreviewMode;
  blocklist?: string[];
  promptFilterModule?: string;
  localFilesOnly: boolean;
}

/** The `--help` text. */
export const USAGE = `Usage: npm run start -w apps/web -- --model DIR [options]

Serves the HART web demo: one HartPipeline, a generation queue, live progress.

Options:
  --model DIR|REPO        HART model: a folder with llm/ and tokenizer/ (or a hub repo id)   (required)
  --text-model DIR|REPO   text encoder (default: the model's text_model/ folder, else the release's)
  --host HOST             interface to listen on (default 127.0.0.1; anything else exposes the demo)
  --port N                port (default 7860; 0 picks a free one)
  --max-queue N           jobs that may wait behind the running one (default ${DEFAULT_MAX_QUEUE}); more get 429
  --threads N             onnxruntime intra-op threads (default: onnxruntime's choice)
  --preview MODE          picture after each scale: linear (default; a cheap latent→RGB map, approximate),
                          decode (the real decoder on the latent so far: exact, one decoder run per scale), off
  --blocklist FILE        prompt-safety hook: a prompt containing a listed word (one per line) is replaced
                          by "A red heart." like the release demo
  --prompt-filter MODULE  prompt-safety hook: an ES module whose default export is a PromptFilter
                          ({ isUnsafe(prompt) }) or a function returning one
  --offline               never download; use local folders or the Hugging Face cache only
  -h, --help              show this help`;

/** Thrown for a bad command line; main prints it with the usage. */
export class UsageError extends Error {}

function int(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${value}"`);
  }
  return n;
}

/** Parses the command line (without node and script). Returns undefined for `--help`. */
export function parseServerArgs(argv: readonly string[]): ServerArgs | undefined {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        model: { type: "string" },
        "text-model": { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        "max-queue": { type: "string" },
        threads: { type: "string" },
        preview: { type: "string" },
        blocklist: { type: "string" },
        "prompt-filter": { type: "string" },
        offline: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return undefined;
  const str = (k: string) => values[k] as string | undefined;
  const model = str("model");
  if (!model) throw new UsageError("--model is required");
  let blocklist: string[] | undefined;
  const blocklistFile = str("blocklist");
  if (blocklistFile) {
    try {
      blocklist = readFileSync(blocklistFile, "utf8")
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith("#"));
    } catch (error) {
      throw new UsageError(`--blocklist: cannot read ${blocklistFile}: ${(error as Error).message}`);
    }
  }
  const filterModule = str("prompt-filter");
  const preview = (str("preview") ?? "linear") as PreviewMode;
  if (!["linear", "decode", "off"].includes(preview)) {
    throw new UsageError(`--preview must be linear, decode or off, got "${preview}"`);
  }
  return {
    model,
    textModel: str("text-model"),
    host: str("host") ?? "127.0.0.1",
    port: int("port", str("port"), 0, 65535) ?? 7860,
    maxQueue: int("max-queue", str("max-queue"), 0, 10_000) ?? DEFAULT_MAX_QUEUE,
    threads: int("threads", str("threads"), 1, 1024),
    preview,
    blocklist,
    promptFilterModule: filterModule ? resolve(filterModule) : undefined,
    localFilesOnly: values.offline === true,
  };
}
