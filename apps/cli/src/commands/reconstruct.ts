import { readFileSync } from "node:fs";
import { basename, extname, join } from "node:path";
import {
  decodePng,
  encodePng,
  HartError,
  imagesToTensor,
  type RgbImage,
  type Tensor,
  tensorToImages,
} from "@hart/core";
import { DEFAULT_MODEL, loadImageTokenizer } from "@hart/pipeline";
import { Command, Option } from "commander";
import type { CliContext } from "../cli";
import { OutputFiles } from "../output";
import { ProgressBar } from "../progress";

interface ReconstructOptions {
  model: string;
  device: "cpu" | "cuda" | "webgpu";
  revision: string;
  cacheDir?: string;
  localFilesOnly?: boolean;
  out?: string;
  json?: boolean;
}

/** `hart reconstruct IMAGE`: the tokenizer's round trip, with PSNR for hybrid and discrete-only codes. */
export function reconstructCommand(ctx: CliContext): Command {
  return new Command("reconstruct")
    .description(
      "encode and decode an image with the tokenizer; print PSNR of the hybrid and discrete-only reconstructions",
    )
    .argument("<image>", "a PNG of the tokenizer's resolution (e.g. 1024×1024 for the release)")
    .option("--model <dir|repo>", "HART model (only its tokenizer is loaded)", DEFAULT_MODEL)
    .addOption(
      new Option("--device <device>", "where the graphs run").choices(["cpu", "cuda", "webgpu"]).default("cpu"),
    )
    .option("--revision <rev>", "hub branch, tag or commit", "main")
    .option("--cache-dir <dir>", "Hugging Face cache")
    .option("--local-files-only", "never download")
    .option("-o, --out <dir>", "also write <name>.hybrid.png and <name>.discrete.png here")
    .option("--json", "print JSON")
    .action(async (image: string, opts: ReconstructOptions) => {
      let bytes: Uint8Array;
      try {
        bytes = readFileSync(image);
      } catch (error) {
        throw new HartError("argument", `cannot read ${image} (${(error as NodeJS.ErrnoException).code ?? error})`);
      }
      const input = decodePng(bytes, image);
      const bar = new ProgressBar(ctx.stderr, !opts.json);
      const out = new OutputFiles();
      try {
        bar.update("Loading tokenizer…", undefined, "", true);
        const tokenizer = await loadImageTokenizer({
          model: opts.model,
          device: opts.device,
          revision: opts.revision,
          cacheDir: opts.cacheDir,
          localFilesOnly: opts.localFilesOnly,
          signal: ctx.signal,
        });
        const size = tokenizer.imageSize;
        if (input.width !== size || input.height !== size) {
          throw new HartError(
            "argument",
            `${image} is ${input.width}×${input.height}; this tokenizer takes ${size}×${size} images (resize or crop it first)`,
          );
        }
        const x = imagesToTensor([input]);
        bar.update("Reconstructing (hybrid)…", undefined, "", true);
        const hybrid = rgb8Of(await tokenizer.reconstruct(x));
        ctx.signal.throwIfAborted();
        bar.update("Reconstructing (discrete only)…", undefined, "", true);
        const discrete = rgb8Of(await tokenizer.reconstruct(x, { discreteOnly: true }));
        bar.clear();
        const result = {
          image,
          width: size,
          height: size,
          psnrHybridDb: psnr(input.data, hybrid.data),
          psnrDiscreteDb: psnr(input.data, discrete.data),
          files: [] as string[],
        };
        if (opts.out) {
          const stem = basename(image, extname(image));
          out.stage(join(opts.out, `${stem}.hybrid.png`), encodePng(hybrid));
          out.stage(join(opts.out, `${stem}.discrete.png`), encodePng(discrete));
          result.files = out.commit();
        }
        if (opts.json) ctx.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        else {
          ctx.stdout.write(
            `PSNR hybrid (discrete codes + residual): ${result.psnrHybridDb.toFixed(2)} dB\n` +
              `PSNR discrete only:                      ${result.psnrDiscreteDb.toFixed(2)} dB\n`,
          );
          for (const f of result.files) ctx.stdout.write(`  ${f}\n`);
        }
      } finally {
        bar.clear();
        out.rollback();
      }
    });
}

function rgb8Of(imageM11: Tensor<"float32">): RgbImage {
  return tensorToImages(imageM11)[0];
}

/** PSNR of two RGB8 images in dB (peak 255); Infinity when identical. */
export function psnr(a: Uint8Array, b: Uint8Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i] - b[i]) ** 2;
  const mse = se / a.length;
  return mse === 0 ? Number.POSITIVE_INFINITY : 10 * Math.log10((255 * 255) / mse);
}
