/**
 * `HartTransformer`: HART's text-to-image transformer (`HARTForT2I`) for
 * inference. Graphs hold the arithmetic (one session per block plus small
 * ones around them); this file loads them and runs the scale loop of
 * `autoregressive_infer_cfg`: KV cache, guidance, sampling, the quantizer's
 * next-scale input, and the last scale's conditioning for the residual diffusion.
 */
import {
  type BuiltModel,
  createSession,
  type Device,
  emitProgress,
  HartError,
  type OnProgress,
  type ProgressEvent,
  readConfig,
  type Session,
  type SessionOptions,
  type StateDict,
  type Tensor,
  tensor,
  zeros,
} from "@hart/core";
import type { ScaleQuantizer } from "@hart/tokenizer";
import { blocksAreModulated, type HartTransformerConfig, headDim, mlpHidden, parseConfig } from "./config";
import { type BlockWeights, buildBlockGraph, type FfnWeights } from "./graphs/block";
import { buildLevelGraph, buildRopeGraph } from "./graphs/encodings";
import { buildCondGraph, buildEmbedGraph, buildHeadGraph } from "./graphs/head";
import { buildPrologueGraph, type PrologueWeights } from "./graphs/prologue";
import { buildFilterGraph, buildGumbelGraph } from "./graphs/sampling";
import { KVCache } from "./kv-cache";
import { type ScaleStep, scalePlan } from "./plan";
import { contextPositions, imagePositions, ropeExponents } from "./positions";
import {
  filterLogits,
  multinomialSampler,
  type RandomSource,
  replayRandom,
  replaySampler,
  seededRandom,
  type TokenSampler,
} from "./sampling";
import type { ARProgressEvent, ARResult, GenerateOptions, TextContext, Transformer } from "./types";
import { type LoadWeightsOptions, loadTransformerStateDict, WeightReader } from "./weights";

/** Load-time progress: one event per compiled graph. */
export interface ARLoadProgressEvent extends ProgressEvent {
  readonly stage: "ar:load";
  /** Graphs compiled so far. */
  readonly step: number;
  /** Graphs to compile. */
  readonly total: number;
  /** Same as `step` (for callers that read `done`). */
  readonly done: number;
  /** The graph just compiled (`prologue`, `block 3`, …). */
  readonly graph: string;
}

/** Options of {@link HartTransformer.fromStateDict}. */
export interface HartTransformerOptions {
  /** Where the graphs run (default `"cpu"`). */
  device?: Device;
  /** Weight precision; only `"float32"` is supported. */
  dtype?: "float32" | "float16";
  /** Threads per onnxruntime op (default: onnxruntime's choice). */
  intraOpThreads?: number;
  /** Overrides the scale schedule `patch_nums` (research, e.g. a shorter one); the quantizer must use the same. */
  patchNums?: readonly number[];
  /** Extra onnxruntime session options for every graph. */
  sessionOptions?: SessionOptions;
  /** Remove tensors from the given state dict as they are compiled, so only one copy of the weights is alive (default false). */
  consumeWeights?: boolean;
  /** Load progress. */
  onProgress?: (event: ARLoadProgressEvent) => void;
  /** Name of the weights' origin used in error messages. */
  source?: string;
}

/** Options of {@link HartTransformer.fromPretrained}. */
export interface HartTransformerLoadOptions
  extends Omit<HartTransformerOptions, "consumeWeights" | "source">,
    LoadWeightsOptions {}

/** Row-major grid positions `0..n-1`, one array per batch row. */
function allPositions(B: number, n: number): Int32Array[] {
  const row = Int32Array.from({ length: n }, (_, i) => i);
  return Array.from({ length: B }, () => row);
}

function sameSchedule(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** HART's text-to-image transformer, ready to generate. */
export class HartTransformer implements Transformer {
  /** The model's configuration (from config.json). */
  readonly config: HartTransformerConfig;
  /** The scale schedule in use. */
  readonly patchNums: readonly number[];
  /** Codebook size V. */
  readonly vocabSize: number;
  /** Latent channels Cvae. */
  readonly latentChannels: number;

  private constructor(
    config: HartTransformerConfig,
    patchNums: number[],
    private readonly quantizer: ScaleQuantizer,
    private readonly sessions: {
      prologue: Session;
      rope?: Session;
      blocks: Session[];
      head: Session;
      embed: Session;
      cond: Session;
    },
    /** Level embedding per scale `[S, C]` (+ absolute positions per token for gpt2 attention). */
    private readonly levels: Float32Array,
    private readonly posEmbed: Tensor<"float32"> | undefined,
    private readonly sessionDefaults: SessionOptions,
  ) {
    this.config = config;
    this.patchNums = patchNums;
    this.vocabSize = quantizer.vocabSize;
    this.latentChannels = quantizer.latentChannels;
  }

  private lazy = new Map<string, Promise<Session>>();

  /**
   * Loads the transformer from an official `llm/` folder: `config.json`, the
   * weights (`model.safetensors` or `pytorch_model.bin`, sharded or not) and,
   * by default, `ema_model.bin` over them as the official sampler does.
   * `quantizer` is the tokenizer's (codebook and next-scale input).
   */
  static async fromPretrained(
    llmDir: string,
    quantizer: ScaleQuantizer,
    options: HartTransformerLoadOptions = {},
  ): Promise<HartTransformer> {
    const raw = readConfig(llmDir, { modelType: "hart_transformer_t2i" });
    const cfg = parseConfig(raw, `${llmDir}/config.json`);
    const sd = loadTransformerStateDict(llmDir, options);
    return HartTransformer.fromStateDict(cfg, sd, quantizer, { ...options, consumeWeights: true, source: llmDir });
  }

  /**
   * Builds the transformer from a parsed config (or a raw config.json object)
   * and a `HARTForT2I` state dict (PyTorch key names).
   */
  static async fromStateDict(
    config: HartTransformerConfig | Record<string, unknown>,
    stateDict: StateDict,
    quantizer: ScaleQuantizer,
    options: HartTransformerOptions = {},
  ): Promise<HartTransformer> {
    const cfg = "embedDim" in config ? (config as HartTransformerConfig) : parseConfig(config);
    if (options.dtype && options.dtype !== "float32") {
      throw new HartError("unsupported", `unsupported: dtype=${options.dtype} (the transformer graphs run in float32)`);
    }
    const source = options.source ?? "the transformer state dict";
    const w = new WeightReader(stateDict, source, options.consumeWeights ?? false);
    const C = cfg.embedDim;
    const hd = headDim(cfg);
    const patchNums = [...(options.patchNums ?? cfg.patchNums)];
    if (patchNums.length < 2 || !patchNums.every((p) => Number.isInteger(p) && p > 0)) {
      throw new HartError("argument", `patchNums must list at least 2 positive integers, got [${patchNums}]`);
    }
    if (!sameSchedule(quantizer.patchNums, patchNums)) {
      throw new HartError(
        "argument",
        `the quantizer's schedule [${quantizer.patchNums}] differs from the transformer's [${patchNums}]; load the tokenizer with the same patchNums`,
      );
    }
    const headW = stateDict.get("head.weight");
    if (!headW) throw new HartError("missing-weight", `missing weight "head.weight" in ${source}`);
    const V = headW.shape[0];
    const wordW = stateDict.get("word_embed.weight");
    if (!wordW) throw new HartError("missing-weight", `missing weight "word_embed.weight" in ${source}`);
    const Cvae = wordW.shape[1];
    if (quantizer.vocabSize !== V || quantizer.latentChannels !== Cvae) {
      throw new HartError(
        "shape",
        `the quantizer has V=${quantizer.vocabSize}, Cvae=${quantizer.latentChannels} but ${source} has V=${V} (head.weight), Cvae=${Cvae} (word_embed.weight)`,
      );
    }
    if (quantizer.codebook.shape[0] !== V || quantizer.codebook.shape[1] !== Cvae) {
      throw new HartError(
        "shape",
        `the quantizer's codebook is [${quantizer.codebook.shape}], expected [${V}, ${Cvae}]`,
      );
    }
    if (cfg.attnType === "gpt2" && !sameSchedule(patchNums, cfg.patchNums)) {
      throw new HartError(
        "unsupported",
        `unsupported: patchNums override with attn_type=gpt2 (its absolute position embeddings follow patch_nums)`,
      );
    }

    const sessionDefaults: SessionOptions = {
      device: options.device,
      intraOpThreads: options.intraOpThreads,
      // Every graph runs at a new shape per scale; per-session arenas would each keep the largest
      // scale's activations (one arena per block), so allocations go straight to the system.
      enableCpuMemArena: false,
      ...options.sessionOptions,
    };
    const modulated = blocksAreModulated(cfg);
    const total = cfg.depth + 5 + (cfg.useTimestepEmbed ? 1 : 0);
    let done = 0;
    const compile = async (graph: string, build: () => BuiltModel) => {
      const session = await createSession(build(), { ...sessionDefaults, label: `hart transformer ${graph}` });
      const step = ++done;
      const event: ARLoadProgressEvent = {
        stage: "ar:load",
        step,
        done: step,
        total,
        graph,
        message: `compiled ${graph}`,
      };
      emitProgress(options.onProgress as OnProgress | undefined, event);
      return session;
    };
    const lin = (key: string, out: number, inp: number) => w.take(`${key}.weight`, [out, inp]);
    const vec = (key: string, n: number) => w.take(key, [n]);

    // level embeddings per scale (and gpt2's absolute positions)
    const S = patchNums.length;
    let levels: Float32Array;
    if (cfg.useTimestepEmbed) {
      const session = await compile("level embedding", () =>
        buildLevelGraph(cfg, {
          fc1OI: lin("lvl_embed.mlp.0", C, 256),
          fc1B: vec("lvl_embed.mlp.0.bias", C),
          fc2OI: lin("lvl_embed.mlp.2", C, C),
          fc2B: vec("lvl_embed.mlp.2.bias", C),
        }),
      );
      const steps = tensor(
        "float32",
        [S, 1],
        Float32Array.from({ length: S }, (_, i) => i),
      );
      levels = (await session.run({ level: steps })).lvl.data as Float32Array;
      await session.release();
    } else {
      const table = w.take("lvl_embed.weight", [cfg.patchNums.length, C]);
      if (S > cfg.patchNums.length) {
        throw new HartError(
          "argument",
          `patchNums has ${S} scales but the learned level embedding has ${cfg.patchNums.length}`,
        );
      }
      levels = table.data.slice(0, S * C);
    }
    const L = cfg.contextToken + patchNums.slice(1).reduce((a, p) => a + p * p, 0);
    const posEmbed = cfg.attnType === "gpt2" ? w.take("pos_1LC", [1, L, C]) : undefined;

    const prologueW: PrologueWeights = {
      contextNormW: cfg.useContextNorm ? vec("context_norm.weight", cfg.contextDim) : undefined,
      contextEmbedOI: lin("context_embed", C, cfg.contextDim),
      contextEmbedB: vec("context_embed.bias", C),
      posStart: cfg.attnType === "gpt2" ? w.take("pos_start", [1, cfg.contextToken, C]) : undefined,
      headAdaOI: lin("head_nm.ada_lin.1", 2 * C, C),
      headAdaB: vec("head_nm.ada_lin.1.bias", 2 * C),
    };
    if (!cfg.disableAln) {
      prologueW.blocks = Array.from({ length: cfg.depth }, (_, i) => ({
        adaOI: lin(`blocks.${i}.ada_lin.1`, 6 * C, C),
        adaB: vec(`blocks.${i}.ada_lin.1.bias`, 6 * C),
      }));
    } else if (cfg.sharedAln) {
      prologueW.blocks = Array.from({ length: cfg.depth }, (_, i) => ({
        table: w.take(`blocks.${i}.scale_shift_table`, [6, C]),
      }));
    }
    const prologue = await compile("prologue", () => buildPrologueGraph(cfg, prologueW));
    const rope = cfg.attnType === "llama" ? await compile("rope", () => buildRopeGraph(hd)) : undefined;

    const hidden = mlpHidden(cfg);
    const blocks: Session[] = [];
    for (let i = 0; i < cfg.depth; i++) {
      const p = `blocks.${i}`;
      const attn = cfg.attnType === "llama" ? `${p}.attn.qkv_proj` : `${p}.attn.mat_qkv`;
      const kBias = w.maybe(`${p}.attn.zero_k_bias`, [C]);
      const qkvBias = new Float32Array(3 * C);
      qkvBias.set(vec(`${p}.attn.q_bias`, C).data, 0);
      if (kBias) qkvBias.set(kBias.data, C);
      qkvBias.set(vec(`${p}.attn.v_bias`, C).data, 2 * C);
      let ffn: FfnWeights;
      if (cfg.mlpType === "llama") {
        const gate = lin(`${p}.ffn.gate_proj`, hidden, C);
        const up = lin(`${p}.ffn.up_proj`, hidden, C);
        // one [2·hidden, C] product instead of two
        const gateUp = new Float32Array(2 * hidden * C);
        gateUp.set(gate.data, 0);
        gateUp.set(up.data, hidden * C);
        ffn = {
          kind: "llama",
          gateUpOI: tensor("float32", [2 * hidden, C], gateUp),
          downOI: lin(`${p}.ffn.down_proj`, C, hidden),
        };
      } else {
        ffn = {
          kind: "gpt2",
          fc1OI: lin(`${p}.ffn.fc1`, hidden, C),
          fc1B: vec(`${p}.ffn.fc1.bias`, hidden),
          fc2OI: lin(`${p}.ffn.fc2`, C, hidden),
          fc2B: vec(`${p}.ffn.fc2.bias`, C),
        };
      }
      let l2Scale: Tensor<"float32"> | undefined;
      if (cfg.attnL2Norm) {
        const raw = w.take(`${p}.attn.scale_mul_1H11`, [1, cfg.numHeads, 1, 1]).data;
        const cap = Math.fround(Math.log(100));
        l2Scale = tensor(
          "float32",
          [cfg.numHeads, 1],
          Float32Array.from(raw, (s) => Math.exp(Math.min(s, cap))),
        );
      }
      const bw: BlockWeights = {
        qkvOI: lin(attn, 3 * C, C),
        qkvBias: tensor("float32", [3 * C], qkvBias),
        projOI: lin(`${p}.attn.proj`, C, C),
        projB: vec(`${p}.attn.proj.bias`, C),
        normW: cfg.attnType === "llama" ? vec(`${p}.ln_wo_grad.weight`, C) : undefined,
        ffn,
        l2Scale,
      };
      blocks.push(await compile(`block ${i}`, () => buildBlockGraph(cfg, i, bw, modulated)));
    }
    const head = await compile("head", () =>
      buildHeadGraph(cfg, {
        normW: cfg.attnType === "llama" ? vec("head_nm.ln_wo_grad.weight", C) : undefined,
        headOI: lin("head", V, C),
        headB: vec("head.bias", V),
      }),
    );
    const wordOI = lin("word_embed", C, Cvae);
    const wordB = vec("word_embed.bias", C);
    const embed = await compile("embed", () => buildEmbedGraph(cfg, wordOI, wordB));
    const cond = await compile("diffusion condition", () =>
      buildCondGraph(cfg, {
        wordOI,
        wordB,
        normW: vec("decoder_norm.weight", C),
        normB: cfg.attnType === "gpt2" ? vec("decoder_norm.bias", C) : undefined,
      }),
    );
    return new HartTransformer(
      cfg,
      patchNums,
      quantizer,
      { prologue, rope, blocks, head, embed, cond },
      levels,
      posEmbed,
      sessionDefaults,
    );
  }

  /** A graph without weights of its own, compiled on first use. */
  private lazySession(key: string, build: () => BuiltModel): Promise<Session> {
    let s = this.lazy.get(key);
    if (!s) {
      s = createSession(build(), { ...this.sessionDefaults, label: `hart transformer ${key}` });
      this.lazy.set(key, s);
    }
    return s;
  }

  /** The level (+ absolute position) embedding added to scale `si`'s tokens, `[1, 1|l, C]`. */
  private levelInput(si: number, begin: number, count: number): Tensor<"float32"> {
    const C = this.config.embedDim;
    const lvl = this.levels.subarray(si * C, (si + 1) * C);
    if (!this.posEmbed) return tensor("float32", [1, 1, C], lvl);
    const out = new Float32Array(count * C);
    const pos = this.posEmbed.data;
    for (let t = 0; t < count; t++) {
      for (let c = 0; c < C; c++) out[t * C + c] = lvl[c] + pos[(begin + t) * C + c];
    }
    return tensor("float32", [1, count, C], out);
  }

  private checkContext(context: TextContext): number {
    const cfg = this.config;
    const ctx = context?.contextBLD;
    if (!ctx || ctx.dtype !== "float32" || ctx.shape.length !== 3) {
      throw new HartError(
        "argument",
        `generate: context.contextBLD must be a float32 [B, ${cfg.contextToken}, ${cfg.contextDim}] tensor, got ${ctx ? `${ctx.dtype} [${ctx.shape}]` : "nothing"}`,
      );
    }
    const [B, T, D] = ctx.shape;
    if (B < 1) throw new HartError("argument", "generate: empty batch (context.contextBLD has B = 0)");
    if (T !== cfg.contextToken) {
      throw new HartError(
        "shape",
        `generate: context.contextBLD is [${ctx.shape}] but the model takes context_token = ${cfg.contextToken} tokens (pad or truncate the prompts to ${cfg.contextToken})`,
      );
    }
    if (D !== cfg.contextDim) {
      throw new HartError(
        "shape",
        `generate: context.contextBLD is [${ctx.shape}] but config.json has context_dim = ${cfg.contextDim} (is the text encoder the one this model was trained with?)`,
      );
    }
    for (const [name, t, dtypes] of [
      ["mask", context.mask, ["bool", "uint8"]],
      ["positionIds", context.positionIds, ["int64"]],
    ] as const) {
      if (
        !t ||
        !(dtypes as readonly string[]).includes(t.dtype) ||
        t.shape.length !== 2 ||
        t.shape[0] !== B ||
        t.shape[1] !== T
      ) {
        throw new HartError(
          "argument",
          `generate: context.${name} must be ${dtypes.join("/")} [${B}, ${T}], got ${t ? `${t.dtype} [${t.shape}]` : "nothing"}`,
        );
      }
    }
    return B;
  }

  /** Runs scale `si`'s tokens through every block; caches their keys/values when `store`. */
  private async runBlocks(
    x: Tensor<"float32">,
    rope: { cos: Tensor; sin: Tensor } | undefined,
    blockMods: Tensor<"float32"> | undefined,
    cache: KVCache,
    store: boolean,
    signal: AbortSignal | undefined,
    trace: ((name: string, value: Tensor) => void) | undefined,
    si: number,
  ): Promise<Tensor<"float32">> {
    const N = x.shape[0];
    const C = this.config.embedDim;
    for (let i = 0; i < this.sessions.blocks.length; i++) {
      signal?.throwIfAborted();
      const past = cache.past(i);
      const feeds: Record<string, Tensor> = { x, pastK: past.k, pastV: past.v };
      if (rope) {
        feeds.cos = rope.cos;
        feeds.sin = rope.sin;
      }
      if (blockMods) {
        const n = N * 6 * C;
        feeds.mod = tensor("float32", [N, 6, C], blockMods.data.subarray(i * n, (i + 1) * n));
      }
      const out = await this.sessions.blocks[i].run(feeds, store ? ["y", "k", "v"] : ["y"]);
      if (store) cache.append(i, out.k as Tensor<"float32">, out.v as Tensor<"float32">);
      x = out.y as Tensor<"float32">;
      trace?.(`s${si}.block${i}_out`, x);
    }
    return x;
  }

  /**
   * Generates the codes of every scale for a batch of prompts and the last
   * scale's conditioning for the residual diffusion
   * (`autoregressive_infer_cfg`). The result's `fHatBCHW + lastHBLC + residual`
   * is the latent to decode.
   */
  async generate(context: TextContext, options: GenerateOptions): Promise<ARResult> {
    const cfg = this.config;
    const B = this.checkContext(context);
    const guidance = options?.cfg;
    if (typeof guidance !== "number" || !Number.isFinite(guidance)) {
      throw new HartError("argument", `generate: options.cfg must be a finite number, got ${guidance}`);
    }
    const topP = options.topP ?? 0;
    if (!(topP >= 0 && topP < 1))
      throw new HartError("argument", `generate: options.topP must be in [0, 1), got ${topP}`);
    const iters = options.numMaskgitIters ?? 1;
    if (!Number.isInteger(iters) || iters < 1) {
      throw new HartError("argument", `generate: options.numMaskgitIters must be a positive integer, got ${iters}`);
    }
    if (!sameSchedule(this.quantizer.patchNums, this.patchNums)) {
      throw new HartError(
        "argument",
        `the quantizer's schedule [${this.quantizer.patchNums}] differs from the transformer's [${this.patchNums}]`,
      );
    }
    const plan = scalePlan(this.patchNums, guidance, options);
    for (const step of plan) {
      if (!Number.isFinite(step.topK) || step.topK < 0) {
        throw new HartError("argument", `generate: topK for scale ${step.si} must be ≥ 0, got ${step.topK}`);
      }
    }
    const random: RandomSource = options.replay
      ? replayRandom(options.replay.gumbel)
      : (options.random ?? seededRandom(options.seed ?? 0));
    const sampler: TokenSampler = options.replay
      ? replaySampler(options.replay.indices)
      : (options.sampler ?? multinomialSampler);
    const { trace, signal } = options;
    const smooth = options.moreSmooth ?? false;

    const C = cfg.embedDim;
    const T = cfg.contextToken;
    const hd = headDim(cfg);
    const N = 2 * B;
    const pns = this.patchNums;
    const SN = pns.length;
    const HW = pns[SN - 1];
    const V = this.vocabSize;
    const Cvae = this.latentChannels;
    const codebook = this.quantizer.codebook.data;

    // the guidance batch: unconditional rows have a zero context whose mask keeps its first token, positions 0
    const maskN = new Float32Array(N * T);
    const posN = new BigInt64Array(N * T);
    for (let i = 0; i < B * T; i++) {
      maskN[i] = Number(context.mask.data[i]) ? 1 : 0;
      posN[i] = context.positionIds.data[i];
    }
    for (let b = B; b < N; b++) maskN[b * T] = 1;
    const offsets = Float32Array.from({ length: N }, (_, n) => Number(posN[n * T + T - 1]));
    trace?.("cfg_context_mask", tensor("uint8", [N, T], Uint8Array.from(maskN)));
    trace?.("cfg_context_position_ids", tensor("int64", [N, T], posN));

    const pro = await this.sessions.prologue.run({
      context: context.contextBLD,
      lvl0: this.levelInput(0, 0, T),
      ...(this.sessions.prologue.inputNames.includes("mask") ? { mask: tensor("float32", [N, T], maskN) } : {}),
    });
    if (trace) {
      const counts = [T, ...pns.slice(1).map((p) => p * p)];
      const parts = counts.map((n, si) =>
        this.levelInput(
          si,
          counts.slice(0, si).reduce((a, c) => a + c, 0),
          n,
        ),
      );
      const all = new Float32Array(counts.reduce((a, c) => a + c, 0) * C);
      let at = 0;
      for (const [si, part] of parts.entries()) {
        for (let j = 0; j < counts[si]; j++)
          all.set(
            part.data.subarray(part.shape[1] === 1 ? 0 : j * C, (part.shape[1] === 1 ? 1 : j + 1) * C),
            (at + j) * C,
          );
        at += counts[si];
      }
      trace("lvl_pos", tensor("float32", [1, at, C], all));
    }
    trace?.("context_norm_out", pro.contextNormOut);
    trace?.("cond_BD", pro.cond);
    const headMod = pro.headMod as Tensor<"float32">;
    const blockMods = pro.blockMods as Tensor<"float32"> | undefined;

    // MaskGIT plan of the last scale: how many tokens each iteration predicts
    const lastTokens = HW * HW;
    const iterSizes: number[] = [];
    {
      let masked = lastTokens;
      for (let step = 0; step < iters; step++) {
        const ratio = Math.cos((Math.PI / 2) * ((step + 1) / iters));
        const keep = Math.max(1, Math.min(masked - 1, Math.floor(lastTokens * ratio)));
        iterSizes.push(step === iters - 1 ? masked : masked - keep);
        masked = keep;
      }
    }
    const capacity =
      T + pns.slice(1, SN - 1).reduce((a, p) => a + p * p, 0) + iterSizes.slice(0, -1).reduce((a, n) => a + n, 0);
    const cache = new KVCache(cfg.depth, N, C, capacity);

    const rope = async (pos: Tensor<"float32">, stride: 2 | 4) => {
      if (!this.sessions.rope) return undefined;
      const out = await this.sessions.rope.run({ pos, expo: ropeExponents(hd, stride) });
      return { cos: out.cos, sin: out.sin };
    };
    const headRun = async (x: Tensor<"float32">, t: number) => {
      const out = await this.sessions.head.run(
        {
          x,
          headMod,
          cfgA: tensor("float32", [1], Float32Array.of(1 + t)),
          cfgB: tensor("float32", [1], Float32Array.of(t)),
        },
        trace ? ["logits", "guided"] : ["guided"],
      );
      return { logits: out.logits, guided: out.guided as Tensor<"float32"> };
    };
    const filterSession = await this.lazySession(topP > 0 ? "filter-topp" : "filter", () =>
      buildFilterGraph(V, topP > 0),
    );
    /** Samples codes from guided logits; returns codes and their embeddings `[B, l, Cvae]` (soft when smooth). */
    const sampleScale = async (step: ScaleStep, guided: Tensor<"float32">, positions: readonly Int32Array[]) => {
      const { si } = step;
      const l = guided.shape[1];
      const { filteredBLV, probsBLV } = await filterLogits(filterSession, guided, step.topK, topP);
      const idx = await sampler.sample({ si, filteredBLV, probsBLV, positions, random });
      if (idx.dtype !== "int64" || idx.shape[0] !== B || idx.shape[1] !== l) {
        throw new HartError(
          "sampling",
          `the token sampler returned ${idx.dtype} [${idx.shape}] for scale ${si}, expected int64 [${B}, ${l}]`,
        );
      }
      const codes = new Float32Array(B * l * Cvae);
      for (let r = 0; r < B * l; r++) {
        const c = Number(idx.data[r]);
        if (!(c >= 0 && c < V))
          throw new HartError("sampling", `the token sampler returned code ${c} at scale ${si} (V = ${V})`);
        codes.set(codebook.subarray(c * Cvae, (c + 1) * Cvae), r * Cvae);
      }
      let h = tensor("float32", [B, l, Cvae], codes);
      if (smooth) {
        const gumbel = await this.lazySession("gumbel", () => buildGumbelGraph(this.quantizer.codebook));
        const out = await gumbel.run({
          filtered: filteredBLV,
          gumbel: random.gumbel([B, l, V]),
          scale: tensor("float32", [1], Float32Array.of(step.gumbelLogitScale)),
          tau: tensor("float32", [1], Float32Array.of(step.gumbelTau)),
        });
        h = out.h as Tensor<"float32">;
      }
      return { idx, h, codes: tensor("float32", [B, l, Cvae], codes) };
    };

    const indices: Tensor<"int64">[] = [];
    let fHat = zeros("float32", [B, Cvae, HW, HW]);
    let x = pro.x0 as Tensor<"float32">;
    trace?.("s0.x_in", x);
    let begin = T;
    for (let si = 0; si < SN - 1; si++) {
      const started = performance.now();
      const pn = pns[si];
      const { t } = plan[si];
      const positions = allPositions(B, pn * pn);
      const pos = si === 0 ? contextPositions(posN, N, T, hd) : imagePositions(pn, HW, offsets, positions, hd);
      x = await this.runBlocks(x, await rope(pos, si === 0 ? 2 : 4), blockMods, cache, true, signal, trace, si);
      // the first scale is sampled from the last context position only
      const last = si === 0 ? lastToken(x) : x;
      let { logits, guided } = await headRun(si === 0 && !trace ? last : x, t);
      if (si === 0 && trace) guided = lastToken(guided);
      if (logits) trace?.(`s${si}.logits`, logits);
      trace?.(`s${si}.logits_cfg`, guided);
      const { idx, h } = await sampleScale(plan[si], guided, positions);
      indices.push(idx);
      const hBChw = toBChw(h, pn);
      trace?.(`s${si}.idx`, idx);
      trace?.(`s${si}.h_BChw`, hBChw);
      const next = await this.quantizer.nextScaleInput(si, fHat, hBChw);
      fHat = next.fHatBCHW;
      if (!next.nextBChw) throw new HartError("internal", `the quantizer returned no next input after scale ${si}`);
      trace?.(`s${si}.f_hat`, fHat);
      trace?.(`s${si}.next_map`, next.nextBChw);
      const pnNext = pns[si + 1];
      const embedded = await this.sessions.embed.run({
        next: next.nextBChw,
        lvl: this.levelInput(si + 1, begin, pnNext * pnNext),
      });
      begin += pnNext * pnNext;
      x = embedded.x as Tensor<"float32">;
      trace?.(`s${si + 1}.x_in`, x);
      reportScale(options.onProgress, si, SN, si === 0 ? 1 : pn * pn, started);
    }

    // the last scale: the released code keeps the previous scale's ratio here
    const started = performance.now();
    const si = SN - 1;
    const { t } = plan[si];
    const lastIdx = new BigInt64Array(B * lastTokens);
    const lastH = new Float32Array(B * lastTokens * Cvae);
    const condAll = new Float32Array(N * lastTokens * C);
    const discreteAll = trace ? new Float32Array(B * lastTokens * C) : undefined;
    const orders = iters > 1 ? maskgitOrders(random, B, lastTokens) : undefined;
    if (orders && trace) {
      const all = new BigInt64Array(B * lastTokens);
      for (const [b, order] of orders.entries())
        for (let j = 0; j < lastTokens; j++) all[b * lastTokens + j] = BigInt(order[j]);
      trace("last.orders", tensor("int64", [B, lastTokens], all));
    }
    let masked = lastTokens;
    for (let step = 0; step < iters; step++) {
      signal?.throwIfAborted();
      const count = iterSizes[step];
      const keep = masked - count;
      const positions = orders
        ? orders.map((order) => Int32Array.from(order.subarray(keep, masked)).sort())
        : allPositions(B, lastTokens);
      masked = keep;
      const xs = orders ? gatherTokens(x, positions) : x;
      const pos = imagePositions(HW, HW, offsets, positions, hd);
      const hidden = await this.runBlocks(
        xs,
        await rope(pos, 4),
        blockMods,
        cache,
        step < iters - 1,
        signal,
        trace,
        si,
      );
      const { logits, guided } = await headRun(hidden, t);
      const name = iters === 1 ? `s${si}` : `s${si}.iter${step}`;
      if (logits) trace?.(`${name}.logits`, logits);
      trace?.(`${name}.logits_cfg`, guided);
      const { idx, h, codes } = await sampleScale(plan[si], guided, positions);
      const cond = await this.sessions.cond.run({ hidden, codes }, trace ? ["cond", "discrete"] : ["cond"]);
      // scatter this iteration's tokens to their grid positions
      const condData = cond.cond.data as Float32Array;
      for (let n = 0; n < N; n++) {
        const b = n % B;
        for (let j = 0; j < count; j++) {
          const p = positions[b][j];
          condAll.set(condData.subarray((n * count + j) * C, (n * count + j + 1) * C), (n * lastTokens + p) * C);
          if (n < B) {
            lastIdx[b * lastTokens + p] = idx.data[b * count + j];
            lastH.set(h.data.subarray((b * count + j) * Cvae, (b * count + j + 1) * Cvae), (b * lastTokens + p) * Cvae);
            if (discreteAll) {
              const d = cond.discrete.data as Float32Array;
              discreteAll.set(d.subarray((b * count + j) * C, (b * count + j + 1) * C), (b * lastTokens + p) * C);
            }
          }
        }
      }
    }
    const lastIndices = tensor("int64", [B, lastTokens], lastIdx);
    indices.push(lastIndices);
    const lastHBLC = tensor("float32", [B, lastTokens, Cvae], lastH);
    trace?.(`s${si}.idx`, lastIndices);
    trace?.("last.h", lastHBLC);
    if (discreteAll) trace?.("last.discrete_cond", tensor("float32", [B, lastTokens, C], discreteAll));
    trace?.("last.stage_cond", tensor("float32", [N, lastTokens, C], condAll));
    reportScale(options.onProgress, si, SN, lastTokens, started);
    return {
      indices,
      fHatBCHW: fHat,
      lastHBLC,
      diffusionCond: tensor("float32", [N * lastTokens, C], condAll),
      lastCfg: t,
    };
  }

  /** Frees every onnxruntime session. The transformer cannot be used afterwards. */
  async release(): Promise<void> {
    const all = [
      this.sessions.prologue,
      this.sessions.rope,
      ...this.sessions.blocks,
      this.sessions.head,
      this.sessions.embed,
      this.sessions.cond,
      ...(await Promise.all(this.lazy.values())),
    ];
    this.lazy.clear();
    for (const s of all) await s?.release();
  }
}

/** Emits the progress event of a finished scale. */
function reportScale(
  onProgress: ((e: ARProgressEvent) => void) | undefined,
  si: number,
  scales: number,
  tokens: number,
  started: number,
): void {
  const event: ARProgressEvent = {
    stage: "ar",
    step: si + 1,
    total: scales,
    scale: si,
    scales,
    tokens,
    elapsedSeconds: (performance.now() - started) / 1000,
    message: `scale ${si + 1}/${scales}`,
  };
  emitProgress(onProgress as OnProgress | undefined, event);
}

/** `x[:, -1:]` of a `[N, l, D]` tensor. */
function lastToken(x: Tensor<"float32">): Tensor<"float32"> {
  const [N, l, D] = x.shape;
  const out = new Float32Array(N * D);
  for (let n = 0; n < N; n++) out.set(x.data.subarray((n * l + l - 1) * D, (n * l + l) * D), n * D);
  return tensor("float32", [N, 1, D], out);
}

/** `[B, l, Cvae]` → `[B, Cvae, pn, pn]` (`h.transpose(1, 2).reshape(B, Cvae, pn, pn)`). */
function toBChw(h: Tensor<"float32">, pn: number): Tensor<"float32"> {
  const [B, l, Cv] = h.shape;
  const out = new Float32Array(B * l * Cv);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < l; j++) for (let c = 0; c < Cv; c++) out[(b * Cv + c) * l + j] = h.data[(b * l + j) * Cv + c];
  }
  return tensor("float32", [B, Cv, pn, pn], out);
}

/** Tokens of `x` `[N, L, C]` at per-row positions (row n uses `positions[n mod B]`). */
function gatherTokens(x: Tensor<"float32">, positions: readonly Int32Array[]): Tensor<"float32"> {
  const [N, L, C] = x.shape;
  const B = positions.length;
  const l = positions[0].length;
  const out = new Float32Array(N * l * C);
  for (let n = 0; n < N; n++) {
    const pos = positions[n % B];
    for (let j = 0; j < l; j++)
      out.set(x.data.subarray((n * L + pos[j]) * C, (n * L + pos[j] + 1) * C), (n * l + j) * C);
  }
  return tensor("float32", [N, l, C], out);
}

/** A random generation order of the last scale's tokens per image (Fisher–Yates). */
function maskgitOrders(random: RandomSource, B: number, n: number): Int32Array[] {
  return Array.from({ length: B }, () => {
    const order = Int32Array.from({ length: n }, (_, i) => i);
    const u = random.uniform(n);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.min(i, Math.floor(u[i] * (i + 1)));
      [order[i], order[j]] = [order[j], order[i]];
    }
    return order;
  });
}
