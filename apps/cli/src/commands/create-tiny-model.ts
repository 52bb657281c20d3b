import { Command } from "commander";
import { type CliContext, intArg } from "../cli";
import { createTinyModel, tinyConfigs } from "../model/tiny-model";

interface TinyOptions {
  seed: number;
  force?: boolean;
  json?: boolean;
}

/** `hart create-tiny-model DIR`: a random-weight HART in the official layout, for trying the tools. */
export function createTinyModelCommand(ctx: CliContext): Command {
  return new Command("create-tiny-model")
    .description(
      "write a tiny random-weight HART (llm/, tokenizer/, text_model/) that runs in seconds; its pictures are noise",
    )
    .argument("<dir>", "folder to create")
    .option("--seed <n>", "seed of the random weights", intArg("--seed", 0), 0)
    .option("--force", "replace the folder if it exists")
    .option("--json", "print JSON")
    .action((dir: string, opts: TinyOptions) => {
      const path = createTinyModel(dir, { seed: opts.seed, force: opts.force });
      const { tokenizer } = tinyConfigs();
      const side = tokenizer.v_patch_nums.at(-1)! * 2 ** (tokenizer.ch_mult.length - 1);
      if (opts.json) ctx.stdout.write(`${JSON.stringify({ path, imageSize: side, seed: opts.seed }, null, 2)}\n`);
      else {
        ctx.stdout.write(
          `Wrote a tiny random HART (${side}×${side} images; its pictures are noise) to ${path}\n` +
            `Try: hart generate --model ${dir} --prompt "a red heart" --out samples/\n`,
        );
      }
    });
}
