/**
 * `tokenizer_encode`: image → encoder → quant_conv → multi-scale residual
 * quantisation, loaded from both checkpoint formats of the set's tokenizer.
 * The cumulative `fhat_s{si}` are rebuilt through the AR-facing interface
 * (`lookup` + `nextScaleInput`), which also checks Phi on the last scale.
 */
import { join } from "node:path";
import { type Tensor, tensor, zeros } from "@hart/core";
import { HartTokenizer, phiTicks } from "@hart/tokenizer";
import { type CaseContext, type CaseRunner, targetOptions } from "../harness";

/** Both official weight files: every case must pass from each. */
export const TOKENIZER_WEIGHT_FILES = ["model.safetensors", "pytorch_model.bin"] as const;

/** The README's suggested float check: ‖Δ‖/‖ref‖ ≤ 1e-4 and |a−b| ≤ 1e-4 + 1e-4·|b|. */
export const FLOAT_TOL = { rtol: 1e-4, atol: 1e-4, rtolElem: 1e-4 };

const ints = (xs: readonly number[]) =>
  tensor(
    "int64",
    [xs.length],
    BigInt64Array.from(xs, (x) => BigInt(x)),
  );

/** NCHW → the official `(B, H·W, C)` layout. */
function toBLC(t: Tensor<"float32">): Tensor<"float32"> {
  const [B, C, H, W] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++)
      for (let p = 0; p < H * W; p++) out[(b * H * W + p) * C + c] = t.data[(b * C + c) * H * W + p];
  return tensor("float32", [B, H * W, C], out);
}

async function runFrom(ctx: CaseContext, file: string): Promise<void> {
  const tag = file.endsWith(".bin") ? "bin" : "st";
  const tok = await HartTokenizer.fromPretrained(join(ctx.set.dir, "tokenizer"), {
    weightsFile: file,
    ...targetOptions,
  });
  try {
    const q = tok.quantizer;
    const SN = q.patchNums.length;
    ctx.compare(`[${tag}] v_patch_nums`, ints(q.patchNums), ints(ctx.json.v_patch_nums));
    ctx.compare(
      `[${tag}] phi_index_per_scale`,
      ints(q.patchNums.map((_, si) => q.phiIndex(si))),
      ints(ctx.json.phi_index_per_scale),
    );
    const ticks = phiTicks(tok.config.shareQuantResi);
    ctx.compare(
      `[${tag}] phi_ticks`,
      tensor("float64", [ticks.length], Float64Array.from(ticks)),
      tensor("float64", [ctx.json.phi_ticks.length], Float64Array.from(ctx.json.phi_ticks)),
      { exact: true, host: true },
    );

    const enc = await tok.encode(ctx.ref("image") as Tensor<"float32">);
    ctx.compare(`[${tag}] encoder_out`, enc.encoderOutBCHW, "encoder_out", FLOAT_TOL);
    ctx.compare(`[${tag}] f`, enc.fBCHW, "f", FLOAT_TOL);
    for (let si = 0; si < SN; si++) ctx.compare(`[${tag}] idx_s${si}`, enc.indices[si], `idx_s${si}`);
    ctx.compare(`[${tag}] frest_wo_last_discrete`, toBLC(enc.restBeforeLastBCHW), "frest_wo_last_discrete", FLOAT_TOL);

    // residual + E[idx_last] is the official frest_wo_last_discrete too (no Phi on the last scale).
    const lastCodes = await q.lookup(enc.indices[SN - 1]);
    const withLast = await q.addResidual(lastCodes, enc.residualBCHW);
    ctx.compare(`[${tag}] residual + E[idx_last]`, toBLC(withLast), "frest_wo_last_discrete", FLOAT_TOL);

    let fHat = zeros("float32", enc.fBCHW.shape);
    for (let si = 0; si < SN; si++) {
      const step = await q.nextScaleInput(si, fHat, await q.lookup(enc.indices[si]));
      fHat = step.fHatBCHW;
      ctx.compare(`[${tag}] fhat_s${si} (nextScaleInput)`, fHat, `fhat_s${si}`, FLOAT_TOL);
    }
  } finally {
    await tok.release();
  }
}

/** Runs the case from `model.safetensors` and from `pytorch_model.bin`. */
export const tokenizerEncode: CaseRunner = async (ctx) => {
  for (const file of TOKENIZER_WEIGHT_FILES) await runFrom(ctx, file);
};
