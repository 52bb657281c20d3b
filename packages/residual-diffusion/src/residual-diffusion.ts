/**
 * HART's residual diffusion head (`DiffLoss.sample`): the sampling loop that
 * ties the {@link DiffusionMLP} to a {@link ResidualScheduler}, with
 * classifier-free guidance on ε and the `vae_scale` output scaling.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  createRng,
  type Device,
  emitProgress,
  HartError,
  loadStateDict,
  type ModelConfig,
  type OnProgress,
  readConfig,
  type StateDict,
  type Tensor,
  tensor,
} from "@hart/core";
import { type DiffusionHeadConfig, diffusionHeadConfig } from "./config";
import { DiffusionMLP } from "./network";
import { DDIMScheduler } from "./schedulers/ddim";
import { IDDPMScheduler } from "./schedulers/iddpm";
import type {
  NoiseSource,
  ResidualSampleOptions,
  ResidualSampler,
  ResidualScheduler,
  SchedulerStepOutput,
} from "./types";

const f32 = Math.fround;

/** `DiffLoss.vae_scale`: the sampled residual is multiplied by this (a constant of the reference). */
export const VAE_SCALE = 0.6;

/** Key prefix of the diffusion head in the llm checkpoint. */
export const DIFFUSION_PREFIX = "diffloss.net.";

/** Built-in scheduler names. */
export type SchedulerName = "iddpm" | "ddim";

/** Options of {@link ResidualDiffusion.fromPretrained} / {@link ResidualDiffusion.fromStateDict}. */
export interface ResidualDiffusionOptions {
  /** Execution device (default `"cpu"`). */
  device?: Device;
  /** Weight precision; only `"float32"` is supported by this head. */
  dtype?: "float32" | "float16";
  /** Load `ema_model.bin` over the base weights, like the official sampler (default true). */
  useEma?: boolean;
  /**
   * The sampler: a name (default: the config's `sampler`, `"iddpm"` in the release)
   * or your own {@link ResidualScheduler}.
   */
  scheduler?: SchedulerName | ResidualScheduler;
  /** Overrides the config's `num_sampling_steps` for the built-in schedulers (`"8"`, `"4,4"`, `"ddim16"`). */
  numSamplingSteps?: string;
  /**
   * Seed of the default noise source (default 0): a `createRng(seed)` stream
   * owned by this instance, advancing from call to call. Pass `noise` to
   * {@link ResidualDiffusion.sample} to control draws per call.
   */
  seed?: number;
  /** Reports loading (`stage: "load"`). */
  onProgress?: OnProgress;
  /** onnxruntime intra-op threads (default: `HART_NUM_THREADS`, else all cores). */
  intraOpThreads?: number;
}

/** One step of a sampling run, as passed to {@link ResidualDiffusionSampleOptions.onStep}. */
export interface SampleStep {
  /** Step number in execution order (0 first). */
  step: number;
  /** Respaced index i. */
  index: number;
  /** Timestep the network saw (`timestep_map[i]`). */
  timestep: number;
  /** `x_t` entering the step `[N, Cvae]`. */
  xIn: Tensor<"float32">;
  /** What the network got (with cfg: the conditional half twice) `[N, Cvae]`. */
  netX: Tensor<"float32">;
  /** Raw network output `[N, 2·Cvae]`. */
  netOut: Tensor<"float32">;
  /** Network output after guidance `[N, 2·Cvae]`. */
  modelOut: Tensor<"float32">;
  /** The scheduler's result (sample, x₀ prediction, mean, log variance). */
  result: SchedulerStepOutput;
}

/** {@link ResidualSampleOptions} plus per-call extras of {@link ResidualDiffusion}. */
export interface ResidualDiffusionSampleOptions extends ResidualSampleOptions {
  /** A scheduler for this call only. */
  scheduler?: ResidualScheduler;
  /** Called after every step with its tensors (tracing, debugging). */
  onStep?: (step: SampleStep) => void;
  /** Reports each finished step (`stage: "diffusion"`, `step`/`total`). */
  onProgress?: OnProgress;
}

/**
 * The default {@link ResidualSampler}: SimpleMLPAdaLN + iDDPM (or any
 * {@link ResidualScheduler}), batched over all tokens of all images — one
 * network run per step.
 *
 * @example
 * ```ts
 * const diffusion = await ResidualDiffusion.fromPretrained("hart-0.7b-1024px/llm");
 * const residualND = await diffusion.sample(condND, { cfg: 4.5 }); // [N, Cvae], × 0.6
 * ```
 */
export class ResidualDiffusion implements ResidualSampler {
  /** The scheduler used when a call names none. */
  scheduler: ResidualScheduler;
  /** Output scaling (`vae_scale`). */
  readonly vaeScale = VAE_SCALE;
  private readonly rng: NoiseSource;

  private constructor(
    /** The denoising network. */
    readonly net: DiffusionMLP,
    /** The head's config (from `llm/config.json`). */
    readonly config: DiffusionHeadConfig,
    options: ResidualDiffusionOptions,
  ) {
    this.scheduler = resolveScheduler(
      options.scheduler ?? config.sampler,
      options.numSamplingSteps ?? config.numSamplingSteps,
    );
    this.rng = createRng(options.seed ?? 0);
  }

  /** Latent channels Cvae (from the checkpoint). */
  get channels(): number {
    return this.net.channels;
  }

  /** Width C of the condition rows (`embed_dim`). */
  get condWidth(): number {
    return this.config.condWidth;
  }

  /**
   * Loads the head from a HART `llm/` folder: `config.json` and the
   * `diffloss.net.*` tensors of its checkpoint (`model.safetensors` or
   * `pytorch_model.bin`), with `ema_model.bin` loaded over them when `useEma`
   * (the default, as in the official sampler). Only the head's tensors are read.
   * Also takes an in-memory `{ stateDict, config }` (see {@link fromStateDict}).
   */
  static async fromPretrained(
    source: string | { stateDict: StateDict; config: ModelConfig | DiffusionHeadConfig },
    options: ResidualDiffusionOptions = {},
  ): Promise<ResidualDiffusion> {
    if (typeof source !== "string") return ResidualDiffusion.fromStateDict(source.stateDict, source.config, options);
    const llmDir = source;
    emitProgress(options.onProgress, { stage: "load", message: "residual diffusion head", file: llmDir });
    const config = readConfig(llmDir);
    const sd = loadStateDict(llmDir, { prefix: DIFFUSION_PREFIX });
    let from = llmDir;
    if (options.useEma ?? true) {
      if (!existsSync(join(llmDir, "ema_model.bin"))) {
        throw new HartError(
          "checkpoint",
          `${llmDir}: ema_model.bin not found; the official sampler uses EMA weights (pass useEma: false to use the base weights)`,
        );
      }
      for (const [k, t] of loadStateDict(llmDir, { file: "ema_model.bin", prefix: DIFFUSION_PREFIX })) sd.set(k, t);
      from = `${llmDir} (ema_model.bin over the base weights)`;
    }
    return ResidualDiffusion.fromStateDict(sd, config, { ...options, source: from });
  }

  /**
   * Builds the head from a state dict holding the `diffloss.net.*` tensors and
   * the llm config (a parsed `config.json` or a {@link DiffusionHeadConfig}).
   */
  static fromStateDict(
    sd: StateDict,
    config: ModelConfig | DiffusionHeadConfig,
    options: ResidualDiffusionOptions & { source?: string } = {},
  ): ResidualDiffusion {
    if (options.dtype !== undefined && options.dtype !== "float32") {
      throw new HartError("unsupported", `ResidualDiffusion: dtype "${options.dtype}" is not supported; use "float32"`);
    }
    const head = isHeadConfig(config)
      ? config
      : diffusionHeadConfig(config, options.source ? `${options.source}/config.json` : undefined);
    const net = DiffusionMLP.fromStateDict(sd, head, {
      prefix: DIFFUSION_PREFIX,
      source: options.source,
      device: options.device,
      intraOpThreads: options.intraOpThreads,
    });
    return new ResidualDiffusion(net, head, options);
  }

  /**
   * `DiffLoss.sample(condND, temperature, cfg)`: draws `x_T`, runs the
   * scheduler's steps and returns `x₀ · 0.6` for all N rows.
   *
   * With `cfg ≠ 1` the rows are `[conditional; unconditional]` (N even): the
   * initial noise is drawn for N/2 rows and duplicated, the network sees the
   * conditional half of x twice, and both halves get
   * `ε = (1+cfg)·ε_cond − cfg·ε_uncond` (variance values stay per row).
   */
  async sample(condND: Tensor<"float32">, options: ResidualDiffusionSampleOptions): Promise<Tensor<"float32">> {
    const { cfg, signal, onStep, onProgress } = options;
    const temperature = options.temperature ?? 1;
    const scheduler = options.scheduler ?? this.scheduler;
    const c = this.channels;
    if (condND?.dtype !== "float32" || condND.shape.length !== 2 || condND.shape[1] !== this.condWidth) {
      throw new HartError(
        "shape",
        `ResidualDiffusion.sample: condND must be float32 [N, ${this.condWidth}] (embed_dim of the llm config), got ${condND?.dtype} [${condND?.shape}]`,
      );
    }
    const n = condND.shape[0];
    if (typeof cfg !== "number" || !Number.isFinite(cfg)) {
      throw new HartError("argument", `ResidualDiffusion.sample: cfg must be a finite number, got ${cfg}`);
    }
    if (typeof temperature !== "number" || !Number.isFinite(temperature)) {
      throw new HartError(
        "argument",
        `ResidualDiffusion.sample: temperature must be a finite number, got ${temperature}`,
      );
    }
    const guided = cfg !== 1;
    if (n === 0 || (guided && n % 2 !== 0)) {
      throw new HartError(
        "shape",
        `ResidualDiffusion.sample: condND has ${n} rows; ${guided ? "with cfg ≠ 1 it needs an even, non-zero number (conditional rows, then unconditional)" : "it needs at least one"}`,
      );
    }
    const noise = options.noise ?? this.rng;
    const half = guided ? n / 2 : n;

    const init = noise.normal([half, c]);
    if (init.dtype !== "float32" || init.shape.length !== 2 || init.shape[0] !== half || init.shape[1] !== c) {
      throw new HartError(
        "noise",
        `ResidualDiffusion.sample: the noise source returned ${init.dtype} [${init.shape}] for [${half}, ${c}]`,
      );
    }
    let x = guided ? duplicateRows(init.data, half, c) : tensor("float32", [n, c], Float32Array.from(init.data));
    const condEmb = await this.net.embedCondition(condND);
    const total = scheduler.indices.length;
    const started = performance.now();
    for (const [step, index] of scheduler.indices.entries()) {
      throwIfAborted(signal);
      const timestep = scheduler.modelTimestep(index);
      const netX = guided ? duplicateRows(x.data, half, c) : x;
      const netOut = await this.net.predict(netX, timestep, condEmb);
      const modelOut = guided ? guideEps(netOut, cfg, c) : netOut;
      const result = scheduler.step({ index, x, modelOut, noise, temperature });
      onStep?.({ step, index, timestep, xIn: x, netX, netOut, modelOut, result });
      emitProgress(onProgress, {
        stage: "diffusion",
        step: step + 1,
        total,
        elapsedSeconds: (performance.now() - started) / 1000,
      });
      x = result.sample;
    }
    const scale = f32(this.vaeScale);
    return tensor(
      "float32",
      [n, c],
      x.data.map((v) => f32(v * scale)),
    );
  }

  /** Frees the network's onnxruntime sessions. */
  release(): Promise<void> {
    return this.net.release();
  }
}

/** The built-in scheduler for `name`, or `scheduler` itself. */
export function resolveScheduler(
  scheduler: SchedulerName | string | ResidualScheduler,
  numSamplingSteps: string,
): ResidualScheduler {
  if (typeof scheduler !== "string") return scheduler;
  if (scheduler === "iddpm") return new IDDPMScheduler({ numSamplingSteps });
  if (scheduler === "ddim") return new DDIMScheduler({ numSamplingSteps });
  throw new HartError(
    "config",
    `unknown diffusion sampler "${scheduler}"; expected "iddpm" or "ddim" (or pass a ResidualScheduler)`,
  );
}

function isHeadConfig(c: ModelConfig | DiffusionHeadConfig): c is DiffusionHeadConfig {
  return (
    typeof (c as DiffusionHeadConfig).width === "number" && typeof (c as DiffusionHeadConfig).condWidth === "number"
  );
}

/** `cat([rows, rows])` of the first `half` rows of a `[·, c]` buffer. */
function duplicateRows(rows: Float32Array, half: number, c: number): Tensor<"float32"> {
  const len = half * c;
  const out = new Float32Array(2 * len);
  out.set(rows.subarray(0, len));
  out.set(rows.subarray(0, len), len);
  return tensor("float32", [2 * half, c], out);
}

/**
 * `forward_with_cfg`: `e = f32(1+cfg)·ε_cond − f32(cfg)·ε_uncond` (float32, as
 * the reference), written to both halves; the variance columns are untouched.
 */
function guideEps(outN2C: Tensor<"float32">, cfg: number, c: number): Tensor<"float32"> {
  const [n, width] = outN2C.shape;
  const half = n / 2;
  const src = outN2C.data;
  const out = Float32Array.from(src);
  const wCond = f32(1 + cfg);
  const wUncond = f32(cfg);
  for (let r = 0; r < half; r++) {
    for (let k = 0; k < c; k++) {
      const e = f32(f32(src[r * width + k] * wCond) - f32(wUncond * src[(r + half) * width + k]));
      out[r * width + k] = e;
      out[(r + half) * width + k] = e;
    }
  }
  return tensor("float32", [n, width], out);
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  throw signal.reason instanceof Error
    ? signal.reason
    : new HartError("aborted", "residual diffusion sampling was aborted");
}
