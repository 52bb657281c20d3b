/**
 * `diffusion_sample`: the residual diffusion head alone (EMA weights) —
 * one SimpleMLPAdaLN forward (`mlp.*`), the respaced float64 schedule
 * (`schedule.*`) and two full iDDPM sampling runs with replayed noise, with
 * guidance (`cfg.*`) and without (`nocfg.*`), checked step by step.
 */
import { join } from "node:path";
import { type Tensor, tensor } from "@hart/core";
import {
  type DiffusionSchedule,
  ReplayNoise,
  ResidualDiffusion,
  type SampleStep,
  timestepEmbedding,
} from "@hart/residual-diffusion";
import { type CaseContext, type CaseRunner, targetOptions } from "../harness";

const SCHEDULE_KEYS: Record<string, keyof DiffusionSchedule> = {
  betas: "betas",
  alphas_cumprod: "alphasCumprod",
  alphas_cumprod_prev: "alphasCumprodPrev",
  sqrt_recip_alphas_cumprod: "sqrtRecipAlphasCumprod",
  sqrt_recipm1_alphas_cumprod: "sqrtRecipm1AlphasCumprod",
  posterior_variance: "posteriorVariance",
  posterior_log_variance_clipped: "posteriorLogVarianceClipped",
  posterior_mean_coef1: "posteriorMeanCoef1",
  posterior_mean_coef2: "posteriorMeanCoef2",
};

const ints = (values: readonly number[]) =>
  tensor(
    "int64",
    [values.length],
    BigInt64Array.from(values, (v) => BigInt(v)),
  );

/** Stacks per-step `[N, C]` tensors into `[steps, N, C]`. */
function stack(parts: Tensor<"float32">[]): Tensor<"float32"> {
  const size = parts[0].data.length;
  const out = new Float32Array(parts.length * size);
  for (const [k, p] of parts.entries()) out.set(p.data, k * size);
  return tensor("float32", [parts.length, ...parts[0].shape], out);
}

async function checkRun(ctx: CaseContext, diffusion: ResidualDiffusion, prefix: "cfg" | "nocfg"): Promise<void> {
  const meta = ctx.json[prefix] as { cfg: number; temperature: number; vae_scale: number; N: number };
  if (meta.vae_scale !== diffusion.vaeScale)
    throw new Error(`${prefix}: vae_scale ${meta.vae_scale} ≠ ${diffusion.vaeScale}`);
  const z = ctx.ref(`${prefix}.z`) as Tensor<"float32">;
  const noise = ReplayNoise.fromSteps(ctx.ref(`${prefix}.noise_init`), ctx.ref(`${prefix}.noise`));
  const steps: SampleStep[] = [];
  const out = await diffusion.sample(z, {
    cfg: meta.cfg,
    temperature: meta.temperature,
    noise,
    onStep: (s) => steps.push(s),
  });
  if (noise.remaining !== 0) throw new Error(`${prefix}: ${noise.remaining} recorded draws were not used`);
  ctx.compare(`${prefix}.t`, ints(steps.map((s) => s.index)), `${prefix}.t`);
  ctx.compare(`${prefix}.t_mapped`, ints(steps.map((s) => s.timestep)), `${prefix}.t_mapped`);
  ctx.compare(`${prefix}.x_T`, steps[0].xIn, `${prefix}.x_T`);
  const perStep: [string, (s: SampleStep) => Tensor<"float32"> | undefined][] = [
    ["x_in", (s) => s.xIn],
    ["net_x", (s) => s.netX],
    ["net_out", (s) => s.netOut],
    ["model_out", (s) => s.modelOut],
    ["mean", (s) => s.result.mean],
    ["log_variance", (s) => s.result.logVariance],
    ["pred_xstart", (s) => s.result.predXstart],
    ["sample", (s) => s.result.sample],
  ];
  for (const [name, pick] of perStep) {
    const parts = steps.map(pick);
    if (parts.some((p) => p === undefined)) throw new Error(`${prefix}: the scheduler gave no ${name}`);
    ctx.compare(`${prefix}.${name}`, stack(parts as Tensor<"float32">[]), `${prefix}.${name}`, {
      atol: 1e-4,
      rtolElem: 1e-4,
    });
  }
  ctx.compare(`${prefix}.out`, out, `${prefix}.out`, { atol: 1e-4, rtolElem: 1e-4 });
}

export const diffusionSample: CaseRunner = async (ctx) => {
  const schedule = ctx.json.schedule as Record<string, unknown> & { num_sampling_steps: string; sampler: string };
  const diffusion = await ResidualDiffusion.fromPretrained(join(ctx.set.dir, "llm"), {
    ...targetOptions,
    useEma: true,
    scheduler: schedule.sampler as "iddpm",
    numSamplingSteps: schedule.num_sampling_steps,
  });
  try {
    // One SimpleMLPAdaLN.forward at the recorded timesteps.
    const t = Array.from(ctx.ref("mlp.t").data as BigInt64Array, Number);
    ctx.compare("mlp.t_freq", timestepEmbedding(t), "mlp.t_freq", {
      atol: 1e-4,
      rtolElem: 1e-4,
      host: true,
    });
    const mlpOut = await diffusion.net.forward(
      ctx.ref("mlp.x") as Tensor<"float32">,
      t,
      ctx.ref("mlp.c") as Tensor<"float32">,
    );
    ctx.compare("mlp.out", mlpOut, "mlp.out", { atol: 1e-4, rtolElem: 1e-4 });

    // The respaced float64 schedule: timestep map and betas bit-exact, the rest to float64 rounding.
    const sched = (diffusion.scheduler as unknown as { schedule: DiffusionSchedule }).schedule;
    ctx.compare("schedule.timestep_map", ints(sched.timestepMap), "schedule.timestep_map", {
      exact: true,
      host: true,
    });
    for (const [key, field] of Object.entries(SCHEDULE_KEYS)) {
      const values = sched[field] as Float64Array;
      const exact = key === "betas";
      ctx.compare(`schedule.${key}`, tensor("float64", [values.length], values), `schedule.${key}`, {
        exact,
        rtol: 1e-14,
        host: true,
      });
    }

    await checkRun(ctx, diffusion, "cfg");
    await checkRun(ctx, diffusion, "nocfg");
  } finally {
    await diffusion.release();
  }
};
