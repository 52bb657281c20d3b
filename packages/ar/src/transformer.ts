/**
 * `HartTransformer`: HART's text-to-image transformer (`HARTForT2I`) for
 * inference. Graphs hold the arithmetic (one session per block plus small
 * ones around them); this file loads them and runs the scale loop of
 * `autoregressive_infer_cfg`: KV cache, guidance, sampling, the quantizer's
 * next-scale input, and the last scale's conditioning for the residual diffusion.
 */
import {
  type AnyTensor,
  type BuiltModel,
  createSession,
  type DeviceTensor,
  deviceTensorToHost,
  emitProgress,
  type GraphForm,
  HartError,
  isDeviceTensor,
  kvLayoutOf,
  type OnProgress,
  readConfig,
  type Session,
  type SessionOptions,
  type StateDict,
  type Tensor,
  tensor,
  zeros,
} from "@hart/core";
import type { ScaleQuantizer } from "@hart/tokenizer";
import {
  type CompiledTransformer,
  compileTransformer,
  type HartTransformerLoadOptions,
  type HartTransformerOptions,
  sameSchedule,
} from "./compile";
import { type HartTransformerConfig, headDim, parseConfig } from "./config";
import { buildFilterGraph, buildGumbelGraph } from "./graphs/sampling";
import { DeviceKVCache, KVCache, type KVStore } from "./kv-cache";
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
import {
  allPositions,
  firstTokenOf,
  gatherTokens,
  lastToken,
  maskgitOrders,
  rowsOf,
  rowsRepeatFirstToken,
  stackRepeated,
  toBChw,
} from "./tokens";
import type { ARProgressEvent, ARResult, GenerateOptions, TextContext, Transformer } from "./types";
import { loadTransformerStateDict } from "./weights";

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

  private readonly sessions: CompiledTransformer["sessions"];
  /** Level embedding per scale `[S, C]`. */
  private readonly levels: Float32Array;
  /** `pos_1LC` for gpt2 attention. */
  private readonly posEmbed: Tensor<"float32"> | undefined;
  private readonly sessionDefaults: SessionOptions;
  /** The graph form the blocks were built in (fused on CUDA; its precision is the KV cache's). */
  private readonly blockForm: GraphForm;
  /** Whether the KV cache stays in device memory (WebGPU). */
  private readonly kvOnDevice: boolean;

  private constructor(
    config: HartTransformerConfig,
    private readonly quantizer: ScaleQuantizer,
    compiled: CompiledTransformer,
  ) {
    this.config = config;
    this.patchNums = compiled.patchNums;
    this.vocabSize = quantizer.vocabSize;
    this.latentChannels = quantizer.latentChannels;
    this.sessions = compiled.sessions;
    this.levels = compiled.levels;
    this.posEmbed = compiled.posEmbed;
    this.sessionDefaults = compiled.sessionDefaults;
    this.blockForm = compiled.blockForm;
    this.kvOnDevice = compiled.kvOnDevice;
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
    const compiled = await compileTransformer(cfg, stateDict, quantizer, options);
    return new HartTransformer(cfg, quantizer, compiled);
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

  /** Block `i`'s feeds for `x`, rows `from …` of the N-row guidance batch (its slice of the per-block `mod`). */
  private blockFeeds(
    i: number,
    x: Tensor<"float32">,
    past: { k: AnyTensor; v: AnyTensor },
    rope: { cos: Tensor; sin: Tensor } | undefined,
    blockMods: Tensor<"float32"> | undefined,
    N: number,
    from: number,
  ): Record<string, AnyTensor> {
    const feeds: Record<string, AnyTensor> = { x, pastK: past.k, pastV: past.v };
    if (rope) {
      feeds.cos = rope.cos;
      feeds.sin = rope.sin;
    }
    if (blockMods) {
      const rows = x.shape[0];
      const n = 6 * this.config.embedDim;
      feeds.mod = tensor(
        "float32",
        [rows, 6, this.config.embedDim],
        blockMods.data.subarray((i * N + from) * n, (i * N + from + rows) * n),
      );
    }
    return feeds;
  }

  /** Runs scale `si`'s tokens through every block; caches their keys/values when `store`. */
  private async runBlocks(
    x: Tensor<"float32">,
    rope: { cos: Tensor; sin: Tensor } | undefined,
    blockMods: Tensor<"float32"> | undefined,
    cache: KVStore,
    store: boolean,
    signal: AbortSignal | undefined,
    trace: ((name: string, value: Tensor) => void) | undefined,
    si: number,
  ): Promise<Tensor<"float32">> {
    for (let i = 0; i < this.sessions.blocks.length; i++) {
      signal?.throwIfAborted();
      const feeds = this.blockFeeds(i, x, cache.past(i), rope, blockMods, x.shape[0], 0);
      const out = await this.sessions.blocks[i].runWithDevice(feeds, store ? ["y", ...cache.outputs] : ["y"]);
      if (store) cache.store(i, out.host, out.device);
      x = out.host.y as Tensor<"float32">;
      trace?.(`s${si}.block${i}_out`, x);
    }
    return x;
  }

  /**
   * The first scale when every unconditional row is one token repeated: its context is all zeros at position 0,
   * so (without absolute position embeddings) all its tokens are equal and stay equal block after block, since
   * attention over equal keys returns their value. The conditional rows run as usual and the unconditional ones
   * as that single token, whose keys/values are repeated to the context length in the cache (attention over T
   * equal keys is attention over one, up to float32 rounding): half of the first scale's work. Returns every
   * row's last token `[N, 1, C]`, or with `trace` the whole `[N, T, C]` (the uncollapsed scale's results).
   */
  private async runFirstScaleCollapsed(
    x: Tensor<"float32">,
    rope: { cos: Tensor; sin: Tensor } | undefined,
    blockMods: Tensor<"float32"> | undefined,
    cache: KVStore,
    signal: AbortSignal | undefined,
    trace: ((name: string, value: Tensor) => void) | undefined,
  ): Promise<Tensor<"float32">> {
    const [N, , C] = x.shape;
    const B = N / 2;
    let xCond = rowsOf(x, 0, B);
    let xUncond = firstTokenOf(x, B, N);
    const ropeCond = rope && { cos: rowsOf(rope.cos, 0, B), sin: rowsOf(rope.sin, 0, B) };
    const ropeUncond = rope && {
      cos: firstTokenOf(rope.cos as Tensor<"float32">, B, N),
      sin: firstTokenOf(rope.sin as Tensor<"float32">, B, N),
    };
    for (let i = 0; i < this.sessions.blocks.length; i++) {
      signal?.throwIfAborted();
      const past = cache.past(i);
      if (isDeviceTensor(past.k) || isDeviceTensor(past.v)) {
        throw new HartError("internal", "the first scale found a KV cache already on the device");
      }
      // the cache is empty here, so a device cache's `presentK`/`presentV` are this scale's keys/values
      const [kName, vName] = cache.outputs;
      const run = async (xs: Tensor<"float32">, r: typeof rope, from: number) => {
        const rowsPast = { k: rowsOf(past.k as Tensor, from, from + B), v: rowsOf(past.v as Tensor, from, from + B) };
        const out = await this.sessions.blocks[i].runWithDevice(
          this.blockFeeds(i, xs, rowsPast, r, blockMods, N, from),
          ["y", kName, vName],
        );
        return { y: out.host.y, k: await onHost(out, kName), v: await onHost(out, vName) };
      };
      const cond = await run(xCond, ropeCond, 0);
      const uncond = await run(xUncond, ropeUncond, B);
      cache.append(i, stackRepeated(cond.k, uncond.k), stackRepeated(cond.v, uncond.v));
      xCond = cond.y as Tensor<"float32">;
      xUncond = uncond.y as Tensor<"float32">;
      if (trace) trace(`s0.block${i}_out`, stackRepeated(xCond, xUncond));
    }
    if (trace) return stackRepeated(xCond, xUncond);
    const lastCond = lastToken(xCond);
    const out = new Float32Array(N * C);
    out.set(lastCond.data);
    out.set(xUncond.data, B * C);
    return tensor("float32", [N, 1, C], out);
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
    const heads = kvLayoutOf(this.blockForm) === "heads";
    const cache: KVStore = this.kvOnDevice
      ? new DeviceKVCache(cfg.depth, heads ? [N, cfg.numHeads] : [N], heads ? hd : C, this.blockForm.precision)
      : heads
        ? new KVCache(cfg.depth, N, hd, capacity, cfg.numHeads, this.blockForm.precision)
        : new KVCache(cfg.depth, N, C, capacity, undefined, this.blockForm.precision);
    // device memory is freed however the generation ends
    try {
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
        const tables = await rope(pos, si === 0 ? 2 : 4);
        const collapse =
          si === 0 &&
          !this.posEmbed &&
          rowsRepeatFirstToken(x, B, N) &&
          (!tables ||
            (rowsRepeatFirstToken(tables.cos as Tensor<"float32">, B, N) &&
              rowsRepeatFirstToken(tables.sin as Tensor<"float32">, B, N)));
        x = collapse
          ? await this.runFirstScaleCollapsed(x, tables, blockMods, cache, signal, trace)
          : await this.runBlocks(x, tables, blockMods, cache, true, signal, trace, si);
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
              lastH.set(
                h.data.subarray((b * count + j) * Cvae, (b * count + j + 1) * Cvae),
                (b * lastTokens + p) * Cvae,
              );
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
    } finally {
      cache.release();
    }
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

/** A run's output on the host: as returned, or read back (and freed) when it stayed on the device. */
async function onHost(
  out: { host: Record<string, Tensor>; device: Record<string, DeviceTensor> },
  name: string,
): Promise<Tensor> {
  const kept = out.device[name];
  if (!kept) return out.host[name];
  try {
    return await deviceTensorToHost(kept);
  } finally {
    kept.dispose();
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
