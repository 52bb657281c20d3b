import { DEFAULT_MODEL, DEFAULT_TEXT_MODEL, downloadSnapshot, hubCacheDir } from "@hart/pipeline";
import { Command } from "commander";
import type { CliContext } from "../cli";
import { loadProgress } from "../load";
import { ProgressBar } from "../progress";

interface DownloadOptions {
  revision: string;
  cacheDir?: string;
  include: string[];
  localFilesOnly?: boolean;
  json?: boolean;
}

/** `hart download`: fetch hub repositories into the Hugging Face cache (resumable). */
export function downloadCommand(ctx: CliContext): Command {
  return new Command("download")
    .description(
      `download models into the Hugging Face cache (default: ${DEFAULT_MODEL} and ${DEFAULT_TEXT_MODEL}); ` +
        "interrupted downloads resume",
    )
    .argument("[repos...]", "hub repo ids (org/name)")
    .option("--revision <rev>", "branch, tag or commit", "main")
    .option("--cache-dir <dir>", "Hugging Face cache (default: $HF_HUB_CACHE or ~/.cache/huggingface/hub)")
    .option(
      "--include <glob>",
      "only files matching this pattern (repeatable)",
      (v: string, all: string[]) => [...all, v],
      [],
    )
    .option("--local-files-only", "only check that the snapshot is in the cache (also HF_HUB_OFFLINE=1)")
    .option("--json", "print a JSON summary on stdout")
    .action(async (repos: string[], opts: DownloadOptions) => {
      const list = repos.length > 0 ? repos : [DEFAULT_MODEL, DEFAULT_TEXT_MODEL];
      const bar = new ProgressBar(ctx.stderr, !opts.json);
      const snapshots: Record<string, string> = {};
      try {
        for (const repo of list) {
          snapshots[repo] = await downloadSnapshot(repo, {
            revision: opts.revision,
            cacheDir: opts.cacheDir,
            allowPatterns: opts.include.length > 0 ? opts.include : undefined,
            localFilesOnly: opts.localFilesOnly,
            signal: ctx.signal,
            onProgress: loadProgress(bar),
          });
          bar.clear();
          if (!opts.json) ctx.stdout.write(`${repo}: ${snapshots[repo]}\n`);
        }
      } finally {
        bar.clear();
      }
      if (opts.json) {
        ctx.stdout.write(`${JSON.stringify({ cacheDir: opts.cacheDir ?? hubCacheDir(), snapshots }, null, 2)}\n`);
      }
    });
}
