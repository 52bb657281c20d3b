/**
 * Shared body of the `ar_generate` and `ar_generate_smooth` runners: the
 * official `autoregressive_infer_cfg` with EMA weights, replaying the
 * reference's sampled codes (and Gumbel noise), checked scale by scale, then
 * the residual diffusion (replayed noise) and the decoded image.
 */
import { join } from "node:path";
import { HartTransformer, scalePlan } from "@hart/ar";
import { type Tensor, tensor } from "@hart/core";
import { ReplayNoise, ResidualDiffusion } from "@hart/residual-diffusion";
import { HartTokenizer } from "@hart/tokenizer";
import { type CaseContext, type CompareOptions, TARGET, targetOptions } from "../harness";

interface Stage {
  si: number;
  pn: number;
  top_k: number;
  ratio: number;
  cfg_t: number;
  gumbel_tau?: number;
  gumbel_logit_scale?: number;
}

function scalar(ctx: CaseContext, label: string, actual: number, expected: number): void {
  ctx.compare(
    label,
    tensor("float64", [1], Float64Array.of(actual)),
    tensor("float64", [1], Float64Array.of(expected)),
    { rtol: 1e-12, host: true },
  );
}

/** Runs one AR case; `smooth` selects the Gumbel-softmax variant and its looser tolerance. */
export async function runArCase(ctx: CaseContext, smooth: boolean): Promise<void> {
  const j = ctx.json as {
    B: number;
    cfg: number;
    more_smooth: boolean;
    patch_nums: number[];
    stages: Stage[];
    diffusion: { cfg: number; temperature: number };
  };
  if (j.more_smooth !== smooth) throw new Error(`case says more_smooth=${j.more_smooth}`);
  // float32 noise (README section 6); the Gumbel softmax at small tau amplifies it
  const tol: CompareOptions = smooth
    ? { rtol: 1e-3, atol: 5e-3, rtolElem: 0 }
    : { rtol: 1e-4, atol: 1e-4, rtolElem: 1e-4 };
  const SN = j.patch_nums.length;

  const tokenizer = await HartTokenizer.fromPretrained(join(ctx.set.dir, "tokenizer"), {
    ...targetOptions,
  });
  const transformer = await HartTransformer.fromPretrained(join(ctx.set.dir, "llm"), tokenizer.quantizer, {
    ...targetOptions,
    dtype: TARGET.dtype,
  });
  try {
    // the per-scale scalars (guidance, top-k, Gumbel) against the reference's
    const plan = scalePlan(transformer.patchNums, j.cfg);
    for (const st of j.stages) {
      const p = plan[st.si];
      scalar(ctx, `stages[${st.si}].ratio`, p.ratio, st.ratio);
      scalar(ctx, `stages[${st.si}].cfg_t`, p.t, st.cfg_t);
      scalar(ctx, `stages[${st.si}].top_k`, p.topK, st.top_k);
      if (st.gumbel_tau !== undefined) scalar(ctx, `stages[${st.si}].gumbel_tau`, p.gumbelTau, st.gumbel_tau);
      if (st.gumbel_logit_scale !== undefined) {
        scalar(ctx, `stages[${st.si}].gumbel_logit_scale`, p.gumbelLogitScale, st.gumbel_logit_scale);
      }
    }

    const seen = new Map<string, Tensor>();
    const result = await transformer.generate(
      {
        contextBLD: ctx.ref("context") as Tensor<"float32">,
        mask: ctx.ref("context_mask") as Tensor<"uint8">,
        positionIds: ctx.ref("context_position_ids") as Tensor<"int64">,
      },
      {
        cfg: j.cfg,
        moreSmooth: smooth,
        replay: {
          indices: Array.from({ length: SN }, (_, si) => ctx.ref(`s${si}.idx`) as Tensor<"int64">),
          gumbel: smooth
            ? Array.from({ length: SN }, (_, si) => ctx.ref(`s${si}.gumbel`) as Tensor<"float32">)
            : undefined,
        },
        trace: (name, value) => seen.set(name, value),
      },
    );

    // every intermediate the reference recorded, in the order it was produced
    let checked = 0;
    for (const [name, value] of seen) {
      if (!ctx.tensors.has(name)) continue;
      ctx.compare(name, value, name, tol);
      checked++;
    }
    const recordedScaleKeys = [...ctx.tensors.keys()].filter((k) =>
      /^(s\d+\.|last\.(h|stage_cond|discrete_cond)$|cond_BD|lvl_pos|context_norm_out|cfg_)/.test(k),
    );
    const missing = recordedScaleKeys.filter((k) => !seen.has(k) && !k.endsWith(".gumbel"));
    if (missing.length) throw new Error(`the transformer did not produce ${missing.join(", ")}`);
    if (checked === 0) throw new Error("no intermediate tensor was compared");

    // the result the pipeline consumes
    for (let si = 0; si < SN; si++) ctx.compare(`indices[${si}]`, result.indices[si], `s${si}.idx`);
    ctx.compare("lastHBLC", result.lastHBLC, "last.h", tol);
    const stageCond = ctx.ref("last.stage_cond");
    ctx.compare(
      "diffusionCond",
      result.diffusionCond,
      tensor("float32", [stageCond.shape[0] * stageCond.shape[1], stageCond.shape[2]], stageCond.data as Float32Array),
      tol,
    );
    ctx.compare(`fHatBCHW`, result.fHatBCHW, `s${SN - 2}.f_hat`, tol);
    scalar(ctx, "lastCfg", result.lastCfg, j.diffusion.cfg);

    // residual diffusion with the reference's noise, then the final latent and image
    const diffusion = await ResidualDiffusion.fromPretrained(join(ctx.set.dir, "llm"), targetOptions);
    const out = await diffusion.sample(result.diffusionCond, {
      cfg: result.lastCfg,
      temperature: j.diffusion.temperature,
      noise: ReplayNoise.fromSteps(ctx.ref("diff.noise_init"), ctx.ref("diff.noise")),
    });
    ctx.compare("diff.out", out, "diff.out", tol);
    const [B, HW2, Cvae] = result.lastHBLC.shape;
    const HW = Math.round(Math.sqrt(HW2));
    const hDiff = out.data.subarray(0, B * HW2 * Cvae);
    ctx.compare("last.h_diff", tensor("float32", [B, HW2, Cvae], hDiff.slice()), "last.h_diff", tol);
    const fHat = result.fHatBCHW.data.slice();
    for (let b = 0; b < B; b++) {
      for (let p = 0; p < HW2; p++) {
        for (let c = 0; c < Cvae; c++) {
          const i = (b * HW2 + p) * Cvae + c;
          fHat[(b * Cvae + c) * HW2 + p] += result.lastHBLC.data[i] + hDiff[i];
        }
      }
    }
    const fHatT = tensor("float32", [B, Cvae, HW, HW], fHat);
    ctx.compare("final.f_hat", fHatT, "final.f_hat", tol);
    const image = await tokenizer.decode(fHatT);
    const imageTol: CompareOptions = smooth ? tol : { rtol: 1e-3, atol: 1e-3, rtolElem: 1e-3 };
    ctx.compare("final.image_m11", image, "final.image_m11", imageTol);
    const unit = tensor(
      "float32",
      image.shape,
      Float32Array.from(image.data, (v) => (v + 1) * 0.5),
    );
    ctx.compare("final.image", unit, "final.image", imageTol);
    await diffusion.release();
  } finally {
    await transformer.release();
    await tokenizer.release();
  }
}
