/**
 * SimpleMLPAdaLN, the per-token denoiser of HART's residual diffusion head
 * (`hart/modules/diffusion/diffloss.py`), as two onnxruntime graphs with a
 * dynamic token count N:
 *
 * - `cond`: `condEmbNW = cond_embed(cND)`. The condition is the same at every
 *   sampling step, so it is embedded once per `sample` call.
 * - `step`: `y = time_embed(tFreq) + condEmb`, `x = input_proj(x)`, the
 *   adaLN residual blocks and the final layer → `[N, 2·Cvae]` (ε | v).
 *
 * The width-sized GEMMs (adaLN modulations and block MLPs, ≈ 32·w² FLOPs
 * per token and step) are all of the cost; everything else is N×Cvae or one
 * row per timestep.
 */
import {
  createSession,
  type Device,
  GraphBuilder,
  HartError,
  layerNorm,
  linear,
  type Session,
  type StateDict,
  silu,
  type Tensor,
  takeTensor,
  tensor,
  toFloat32,
  transpose2d,
  type Value,
} from "@hart/core";
import { timestepEmbedding } from "./timestep-embedding";

/** Size of the sinusoidal timestep embedding fed to `time_embed` (fixed in the reference). */
export const TIMESTEP_FREQUENCIES = 256;
const LN_EPS = 1e-6;

/** Sizes of a {@link DiffusionMLP}. */
export interface DiffusionMLPConfig {
  /** Hidden width w (`diff_width`). */
  readonly width: number;
  /** Number of residual blocks (`diff_depth`). */
  readonly depth: number;
  /** Width C of the condition rows (the transformer's `embed_dim`). */
  readonly condWidth: number;
}

/** Session options of a {@link DiffusionMLP}. */
export interface DiffusionMLPOptions {
  /** Key prefix of the network in the state dict (default `"diffloss.net."`). */
  prefix?: string;
  /** Named in error messages (a file or folder). */
  source?: string;
  /** Execution device (default `"cpu"`). */
  device?: Device;
  /** onnxruntime intra-op threads (default: `HART_NUM_THREADS`, else all cores). */
  intraOpThreads?: number;
}

interface Linear {
  wIO: Tensor<"float32">;
  b: Tensor<"float32">;
}
interface ResBlockWeights {
  lnW: Tensor<"float32">;
  lnB: Tensor<"float32">;
  shift: Linear;
  scale: Linear;
  gate: Linear;
  fc1: Linear;
  fc2: Linear;
}
interface Weights {
  inputProj: Linear;
  condEmbed: Linear;
  time1: Linear;
  time2: Linear;
  blocks: ResBlockWeights[];
  finalShift: Linear;
  finalScale: Linear;
  finalLinear: Linear;
}

/**
 * The diffusion MLP with its weights loaded once (transposed to `[in, out]`
 * at load) and shared by its two graphs.
 *
 * @example
 * ```ts
 * const net = DiffusionMLP.fromStateDict(sd, { width: 1024, depth: 6, condWidth: 1536 });
 * const out = await net.forward(xNC, [999, 999], cND); // [N, 2·Cvae]
 * ```
 */
export class DiffusionMLP {
  /** Latent channels Cvae (from the checkpoint: `input_proj.weight` is `[w, Cvae]`). */
  readonly channels: number;
  private condSession?: Promise<Session>;
  private stepSession?: Promise<Session>;

  private constructor(
    /** Width, depth and condition width. */
    readonly config: DiffusionMLPConfig,
    private readonly weights: Weights,
    private readonly options: DiffusionMLPOptions,
  ) {
    this.channels = weights.inputProj.wIO.shape[0];
  }

  /**
   * Takes the network's tensors (`<prefix>input_proj.*`, `time_embed.mlp.{0,2}.*`,
   * `cond_embed.*`, `res_blocks.{i}.*`, `final_layer.*`) from a state dict,
   * checking every shape against `config`.
   */
  static fromStateDict(sd: StateDict, config: DiffusionMLPConfig, options: DiffusionMLPOptions = {}): DiffusionMLP {
    const { width: w, depth, condWidth } = config;
    for (const [name, v] of Object.entries({ width: w, depth, condWidth })) {
      if (!Number.isInteger(v) || v <= 0) {
        throw new HartError("config", `DiffusionMLP: ${name} must be a positive integer, got ${v}`);
      }
    }
    const prefix = options.prefix ?? "diffloss.net.";
    const source = options.source;
    // Half-precision checkpoints are widened once here; the graphs run in float32.
    const take = (key: string, shape: number[]) =>
      toFloat32(takeTensor(sd, prefix + key, { shape, dtype: ["float32", "float16", "bfloat16"], source }));
    const inW = sd.get(`${prefix}input_proj.weight`);
    if (!inW || inW.shape.length !== 2) {
      throw new HartError(
        "missing-weight",
        `missing 2-D weight "${prefix}input_proj.weight"${source ? ` in ${source}` : ""} (the diffusion head)`,
      );
    }
    const c = inW.shape[1];
    const lin = (key: string, outF: number, inF: number): Linear => ({
      wIO: transpose2d(take(`${key}.weight`, [outF, inF])),
      b: take(`${key}.bias`, [outF]),
    });
    // adaLN_modulation emits [shift | scale | gate] (chunk order); split the rows once so that
    // each part is its own GEMM and no Split copies N×3w per block.
    const chunks = (key: string, n: number): Linear[] => {
      const wt = take(`${key}.weight`, [n * w, w]);
      const bt = take(`${key}.bias`, [n * w]);
      return Array.from({ length: n }, (_, k) => ({
        wIO: transpose2d(tensor("float32", [w, w], wt.data.subarray(k * w * w, (k + 1) * w * w))),
        b: tensor("float32", [w], bt.data.slice(k * w, (k + 1) * w)),
      }));
    };
    const blocks = Array.from({ length: depth }, (_, i) => {
      const p = `res_blocks.${i}`;
      const [shift, scale, gate] = chunks(`${p}.adaLN_modulation.1`, 3);
      return {
        lnW: take(`${p}.in_ln.weight`, [w]),
        lnB: take(`${p}.in_ln.bias`, [w]),
        shift,
        scale,
        gate,
        fc1: lin(`${p}.mlp.0`, w, w),
        fc2: lin(`${p}.mlp.2`, w, w),
      };
    });
    if (sd.has(`${prefix}res_blocks.${depth}.in_ln.weight`)) {
      throw new HartError(
        "config",
        `the diffusion head${source ? ` in ${source}` : ""} has more than diff_depth = ${depth} residual blocks`,
      );
    }
    const [finalShift, finalScale] = chunks("final_layer.adaLN_modulation.1", 2);
    const weights: Weights = {
      inputProj: lin("input_proj", w, c),
      condEmbed: lin("cond_embed", w, condWidth),
      time1: lin("time_embed.mlp.0", w, TIMESTEP_FREQUENCIES),
      time2: lin("time_embed.mlp.2", w, w),
      blocks,
      finalShift,
      finalScale,
      finalLinear: lin("final_layer.linear", 2 * c, w),
    };
    return new DiffusionMLP({ width: w, depth, condWidth }, weights, options);
  }

  /** `cond_embed(cND)`: `[N, C]` → `[N, w]`. Computed once per sampling run. */
  async embedCondition(condND: Tensor<"float32">): Promise<Tensor<"float32">> {
    this.checkRows("condND", condND, this.config.condWidth, "condition width (embed_dim)");
    if (!this.condSession) this.condSession = this.compile(this.buildCondGraph());
    const session = await this.condSession;
    return (await session.run({ cond: condND })).condEmb as Tensor<"float32">;
  }

  /**
   * One network evaluation with a precomputed condition embedding.
   *
   * @param xNC - `[N, Cvae]` noisy latents.
   * @param timesteps - one timestep for all rows, or one per row.
   * @param condEmbNW - `[N, w]` from {@link embedCondition}.
   * @returns `[N, 2·Cvae]`: ε, then the variance interpolation values.
   */
  async predict(
    xNC: Tensor<"float32">,
    timesteps: number | readonly number[],
    condEmbNW: Tensor<"float32">,
  ): Promise<Tensor<"float32">> {
    const n = this.checkRows("xNC", xNC, this.channels, "latent channels Cvae");
    this.checkRows("condEmbNW", condEmbNW, this.config.width, "width w");
    if (condEmbNW.shape[0] !== n) {
      throw new HartError("shape", `DiffusionMLP.predict: xNC has ${n} rows but condEmbNW has ${condEmbNW.shape[0]}`);
    }
    const ts = typeof timesteps === "number" ? [timesteps] : [...timesteps];
    if (ts.length !== 1 && ts.length !== n) {
      throw new HartError("shape", `DiffusionMLP.predict: got ${ts.length} timesteps for ${n} rows (give 1 or ${n})`);
    }
    if (!this.stepSession) this.stepSession = this.compile(this.buildStepGraph());
    const session = await this.stepSession;
    const out = await session.run({ x: xNC, tFreq: timestepEmbedding(ts, TIMESTEP_FREQUENCIES), condEmb: condEmbNW });
    return out.out as Tensor<"float32">;
  }

  /** `SimpleMLPAdaLN.forward(x, t, c)`: {@link embedCondition} then {@link predict}. */
  async forward(
    xNC: Tensor<"float32">,
    timesteps: number | readonly number[],
    condND: Tensor<"float32">,
  ): Promise<Tensor<"float32">> {
    return this.predict(xNC, timesteps, await this.embedCondition(condND));
  }

  /** Frees the onnxruntime sessions (they are rebuilt on next use). */
  async release(): Promise<void> {
    const sessions = [this.condSession, this.stepSession];
    this.condSession = this.stepSession = undefined;
    await Promise.all(sessions.map(async (s) => (await s)?.release()));
  }

  private checkRows(name: string, t: Tensor<"float32">, width: number, what: string): number {
    if (t.dtype !== "float32" || t.shape.length !== 2 || t.shape[1] !== width) {
      throw new HartError(
        "shape",
        `DiffusionMLP: ${name} must be float32 [N, ${width}] (${what}), got ${t.dtype} [${t.shape}]`,
      );
    }
    return t.shape[0];
  }

  private compile(g: GraphBuilder): Promise<Session> {
    return createSession(g.build(), {
      device: this.options.device,
      intraOpThreads: this.options.intraOpThreads,
      label: g.name,
    });
  }

  private buildCondGraph(): GraphBuilder {
    const g = new GraphBuilder("diffusion_cond_embed");
    const c = g.input("cond", "float32", ["N", this.config.condWidth]);
    g.output(lin(g, c, this.weights.condEmbed), "condEmb", "float32", ["N", this.config.width]);
    return g;
  }

  private buildStepGraph(): GraphBuilder {
    const { width: w } = this.config;
    const W = this.weights;
    const g = new GraphBuilder("diffusion_mlp_step");
    const x = g.input("x", "float32", ["N", this.channels]);
    const tFreq = g.input("tFreq", "float32", ["T", TIMESTEP_FREQUENCIES]);
    const condEmb = g.input("condEmb", "float32", ["N", w]);

    const tEmb = lin(g, silu(g, lin(g, tFreq, W.time1)), W.time2);
    // y is shared by every adaLN modulation; silu(y) is computed once.
    const sy = silu(g, g.op("Add", [tEmb, condEmb]));
    let h = lin(g, x, W.inputProj);
    for (const blk of W.blocks) {
      const normed = layerNorm(g, h, LN_EPS, w, blk.lnW, blk.lnB);
      const m = modulate(g, normed, lin(g, sy, blk.shift), lin(g, sy, blk.scale));
      const mlp = lin(g, silu(g, lin(g, m, blk.fc1)), blk.fc2);
      h = g.op("Add", [h, g.op("Mul", [lin(g, sy, blk.gate), mlp])]);
    }
    const normed = layerNorm(g, h, LN_EPS, w);
    const m = modulate(g, normed, lin(g, sy, W.finalShift), lin(g, sy, W.finalScale));
    g.output(lin(g, m, W.finalLinear), "out", "float32", ["N", 2 * this.channels]);
    return g;
  }
}

function lin(g: GraphBuilder, x: Value, l: Linear): Value {
  return linear(g, x, l.wIO, l.b);
}

/** `x · (1 + scale) + shift` (DiT's modulate). */
function modulate(g: GraphBuilder, x: Value, shift: Value, scale: Value): Value {
  return g.op("Add", [g.op("Mul", [x, g.op("Add", [scale, g.scalar(1)])]), shift]);
}
