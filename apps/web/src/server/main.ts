import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { serve } from "@hono/node-server";
import {
  CFG_RANGE,
  CHARS_PER_TOKEN,
  DEFAULT_MAX_TOKEN_LENGTH,
  EXAMPLE_PROMPTS,
  MAX_IMAGES,
  MAX_SEED,
  RELEASE_DEFAULTS,
  type ServerConfig,
} from "../shared/protocol";
import { createApp } from "./app";
import { parseServerArgs, USAGE, UsageError } from "./args";
import { loadAssets } from "./assets";
import { WorkerRunner } from "./engine";
import { JobQueue } from "./queue";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

async function main(): Promise<void> {
  let args: ReturnType<typeof parseServerArgs>;
  try {
    args = parseServerArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`error: ${error.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (!args) {
    console.log(USAGE);
    return;
  }

  const clientDir = fileURLToPath(new URL("../client", import.meta.url));
  if (!existsSync(`${clientDir}/index.html`)) {
    console.error(`error: the page is not built (${clientDir}); run: npm run build -w @hart/web`);
    process.exit(1);
  }
  const assets = loadAssets(clientDir);

  const runner = new WorkerRunner({
    model: args.model,
    textModel: args.textModel,
    threads: args.threads,
    preview: args.preview,
    blocklist: args.blocklist,
    promptFilterModule: args.promptFilterModule,
    localFilesOnly: args.localFilesOnly,
  });
  const queue = new JobQueue(runner, { maxWaiting: args.maxQueue });
  // The prompt budget is the transformer's context length, known once the model is loaded; until then the
  // release's 300 tokens (the text encoder truncates anything longer anyway).
  const maxPromptChars = () => (runner.info?.maxTokenLength ?? DEFAULT_MAX_TOKEN_LENGTH) * CHARS_PER_TOKEN;
  const config = (): ServerConfig => ({
    ready: runner.info !== undefined,
    loadError: runner.loadError,
    model: runner.info?.model ?? args.model,
    imageSize: runner.info?.imageSize,
    maxPromptChars: maxPromptChars(),
    maxImages: MAX_IMAGES,
    maxQueue: args.maxQueue,
    maxSeed: MAX_SEED,
    cfg: { ...CFG_RANGE, default: RELEASE_DEFAULTS.cfg },
    defaults: {
      seed: RELEASE_DEFAULTS.seed,
      randomizeSeed: RELEASE_DEFAULTS.randomizeSeed,
      moreSmooth: RELEASE_DEFAULTS.moreSmooth,
      numImages: RELEASE_DEFAULTS.numImages,
    },
    examples: EXAMPLE_PROMPTS,
    safetyCheck: runner.info?.safetyCheck ?? Boolean(args.blocklist || args.promptFilterModule),
  });
  const app = createApp({
    queue,
    config,
    assets,
    limits: () => ({ maxPromptChars: maxPromptChars() }),
    allowedHosts: LOOPBACK.has(args.host) ? new Set(["127.0.0.1", "localhost", "[::1]"]) : undefined,
  });

  const server = serve({ fetch: app.fetch, hostname: args.host, port: args.port }, (info) => {
    const host = info.family === "IPv6" ? `[${info.address}]` : info.address;
    console.log(`hart web: listening on http://${host}:${info.port}/`);
    if (!LOOPBACK.has(args.host)) console.log("hart web: warning: reachable from other machines (--host)");
  });
  server.on("error", (error) => {
    console.error(`error: cannot listen on ${args.host}:${args.port}: ${error.message}`);
    process.exit(1);
  });

  console.log(`hart web: loading ${args.model} …`);
  const t0 = performance.now();
  runner.ready.then(
    (info) =>
      console.log(`hart web: model ready (${info.imageSize}px) in ${((performance.now() - t0) / 1000).toFixed(1)} s`),
    (error: Error) => {
      console.error(`error: cannot load the model: ${error.message}`);
      process.exit(1);
    },
  );

  const shutdown = () => {
    queue.close();
    server.close();
    runner.close().finally(() => process.exit(0));
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
}

main().catch((error) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exit(1);
});
