/**
 * `tokenizer_decode`: hybrid decode of the exact latent, discrete-only decode,
 * indices → f_hat and indices → image, from both checkpoint formats.
 */
import { join } from "node:path";
import type { Tensor } from "@hart/core";
import { HartTokenizer } from "@hart/tokenizer";
import { type CaseRunner, targetOptions } from "../harness";
import { FLOAT_TOL, TOKENIZER_WEIGHT_FILES } from "./tokenizer_encode";

/** Runs the case from `model.safetensors` and from `pytorch_model.bin`. */
export const tokenizerDecode: CaseRunner = async (ctx) => {
  for (const file of TOKENIZER_WEIGHT_FILES) {
    const tag = file.endsWith(".bin") ? "bin" : "st";
    const tok = await HartTokenizer.fromPretrained(join(ctx.set.dir, "tokenizer"), {
      weightsFile: file,
      ...targetOptions,
    });
    try {
      const SN = tok.quantizer.patchNums.length;
      const indices = Array.from({ length: SN }, (_, si) => ctx.ref(`idx_s${si}`) as Tensor<"int64">);
      ctx.compare(
        `[${tag}] image_hybrid`,
        await tok.decode(ctx.ref("f") as Tensor<"float32">),
        "image_hybrid",
        FLOAT_TOL,
      );
      const discrete = ctx.ref("fhat_discrete") as Tensor<"float32">;
      ctx.compare(`[${tag}] image_discrete`, await tok.decode(discrete), "image_discrete", FLOAT_TOL);
      ctx.compare(`[${tag}] fhat_from_idx`, await tok.quantizer.indicesToFHat(indices), "fhat_from_idx", FLOAT_TOL);
      ctx.compare(`[${tag}] image_from_idx`, await tok.indicesToImage(indices), "image_from_idx", FLOAT_TOL);
    } finally {
      await tok.release();
    }
  }
};
