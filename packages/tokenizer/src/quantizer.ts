/**
 * HART's multi-scale residual vector quantizer (`HARTHybridQuantizer`): a
 * codebook, the shared Phi convs and the resizes between scales. TypeScript
 * runs the scale loop; each step is one small graph (see `graph/quantizer.ts`).
 */
import {
  type BuiltModel,
  createSession,
  type Device,
  HartError,
  type Session,
  type Tensor,
  tensor,
  zeros,
} from "@hart/core";
import { checkFinite, checkFloatTensor } from "./check";
import { checkPatchNums, type TokenizerConfig } from "./config";
import type { Weights } from "./graph/layers";
import { buildAddScaleGraph, buildLookupGraph, buildQuantizeStepGraph, buildSumGraph } from "./graph/quantizer";
import { type PhiLayout, phiLayout } from "./phi";
import { resizeFactors } from "./resample";
import type { NextScaleInput, ScaleQuantizer } from "./types";

/** Options of {@link HartQuantizer.fromWeights}. */
export interface QuantizerOptions {
  /** Where the graphs run (default `"cpu"`). */
  device?: Device;
  /** Threads per onnxruntime op. */
  intraOpThreads?: number;
  /** Overrides the config's scale schedule (`v_patch_nums`); its last entry sets the latent side (and so the image size). */
  patchNums?: readonly number[];
}

/** What {@link HartQuantizer.quantize} returns. */
export interface QuantizedLatent {
  /** Codebook indices per scale, each `[B, pn*pn]`. */
  indices: Tensor<"int64">[];
  /** `Σ_si Phi_k(si)(up(E[idx_si]))` over every scale but the last, plus `E[idx_last]` (no Phi on the last scale). */
  fHatBCHW: Tensor<"float32">;
  /** `f − fHat`: the continuous residual the discrete codes leave. */
  residualBCHW: Tensor<"float32">;
  /** The residual before the last scale's codes were subtracted (official `frest_wo_last_discrete`, as NCHW). */
  restBeforeLastBCHW: Tensor<"float32">;
}

type PhiConv = { weight: Tensor<"float32">; bias: Tensor<"float32"> };

/**
 * The quantizer of a HART tokenizer. Implements {@link ScaleQuantizer} (what the AR
 * transformer drives) plus encoder-side quantisation and index → latent helpers.
 */
export class HartQuantizer implements ScaleQuantizer {
  /** The scale schedule (config `v_patch_nums` or the `patchNums` option). */
  readonly patchNums: readonly number[];
  /** Codebook size V. */
  readonly vocabSize: number;
  /** Latent channels Cvae. */
  readonly latentChannels: number;
  /** The codebook `[V, Cvae]` (`quantize.embedding.weight`). */
  readonly codebook: Tensor<"float32">;
  /** The Phi mixing ratio r (|quant_resi|). */
  readonly phiRatio: number;
  private readonly phi: PhiLayout;
  private readonly phiConvs: PhiConv[];
  private readonly sessions = new Map<string, Promise<Session>>();

  private constructor(
    config: TokenizerConfig,
    weights: Weights,
    private readonly options: QuantizerOptions,
  ) {
    this.patchNums = options.patchNums ? checkPatchNums(options.patchNums, "patchNums option") : [...config.patchNums];
    this.vocabSize = config.vocabSize;
    this.latentChannels = config.zChannels;
    this.codebook = weights.get("quantize.embedding.weight", [config.vocabSize, config.zChannels]);
    this.phiRatio = Math.abs(config.quantResi);
    this.phi = phiLayout(config);
    const C = config.zChannels;
    this.phiConvs = this.phi.enabled
      ? this.phi.keys.map((k) => ({
          weight: weights.get(`quantize.${k}.weight`, [C, C, 3, 3]),
          bias: weights.get(`quantize.${k}.bias`, [C]),
        }))
      : [];
  }

  /** Builds the quantizer from a tokenizer config and its (prefix-free) weights. */
  static fromWeights(config: TokenizerConfig, weights: Weights, options: QuantizerOptions = {}): HartQuantizer {
    return new HartQuantizer(config, weights, options);
  }

  /** Side of the full-resolution latent (the last scale). */
  get latentSide(): number {
    return this.patchNums[this.patchNums.length - 1];
  }

  /** Index of the Phi conv that refines scale `si` (nearest tick to `si/(SN−1)`, official float64 arithmetic). */
  phiIndex(si: number): number {
    return this.phi.indexOf(si, this.patchNums.length);
  }

  /**
   * Codebook lookup: `idxBL [B, pn*pn]` int64 → code embeddings `[B, Cvae, pn, pn]`
   * (`embedding(idx).transpose(1, 2).view(B, Cvae, pn, pn)`).
   */
  async lookup(idxBL: Tensor<"int64">): Promise<Tensor<"float32">> {
    const [B, L] = this.checkIndices(idxBL, "lookup(idxBL)");
    const pn = Math.round(Math.sqrt(L));
    const session = await this.session("lookup", buildLookupGraph);
    const out = await session.run({ codebook: this.codebook, idx: tensor("int64", [B, pn, pn], idxBL.data) });
    return out.h as Tensor<"float32">;
  }

  /** {@inheritDoc ScaleQuantizer.nextScaleInput} */
  async nextScaleInput(si: number, fHatBCHW: Tensor<"float32">, hBChw: Tensor<"float32">): Promise<NextScaleInput> {
    const SN = this.patchNums.length;
    if (!Number.isInteger(si) || si < 0 || si >= SN) {
      throw new HartError("argument", `nextScaleInput: scale index si=${si} must be an integer in [0, ${SN - 1}]`);
    }
    const HW = this.latentSide;
    const C = this.latentChannels;
    checkFloatTensor(fHatBCHW, "nextScaleInput(fHatBCHW)", [null, C, HW, HW], "[B, Cvae, HW, HW]");
    const B = fHatBCHW.shape[0];
    const pn = this.patchNums[si];
    checkFloatTensor(hBChw, "nextScaleInput(hBChw)", [B, C, pn, pn], `[B, Cvae, pn, pn] with pn = patchNums[${si}]`);
    const last = si === SN - 1;
    const out = await this.addScale(si, fHatBCHW, hBChw, last ? undefined : this.patchNums[si + 1]);
    return { fHatBCHW: out.fHatNext, nextBChw: out.next ?? null };
  }

  /**
   * Residual quantisation of a latent `fBCHW [B, Cvae, HW, HW]` (official
   * `f_to_idxBl_and_frest`): per scale, nearest code of the area-downsampled residual,
   * bicubic upsample to HW, Phi on every scale but the last, residual update.
   */
  async quantize(fBCHW: Tensor<"float32">): Promise<QuantizedLatent> {
    const HW = this.latentSide;
    const C = this.latentChannels;
    checkFloatTensor(fBCHW, "quantize(fBCHW)", [null, C, HW, HW], "[B, Cvae, HW, HW]");
    checkFinite(fBCHW, "quantize(fBCHW)");
    const B = fBCHW.shape[0];
    const SN = this.patchNums.length;
    let fRest = fBCHW;
    let fHat = zeros("float32", fBCHW.shape);
    let restBeforeLast = fBCHW;
    const indices: Tensor<"int64">[] = [];
    for (let si = 0; si < SN; si++) {
      const pn = this.patchNums[si];
      const usePhi = this.phi.enabled && si < SN - 1;
      const session = await this.session(`step:${usePhi}`, () =>
        buildQuantizeStepGraph({ phi: usePhi, ratio: this.phiRatio }),
      );
      const down = resizeFactors("area", HW, pn);
      const up = resizeFactors("bicubic", pn, HW);
      const out = await session.run({
        fRest,
        fHat,
        codebook: this.codebook,
        downLeft: down.left,
        downRightT: down.rightT,
        upLeft: up.left,
        upRightT: up.rightT,
        ...(usePhi ? this.phiFeeds(si) : {}),
      });
      if (si === SN - 1) restBeforeLast = fRest;
      indices.push(tensor("int64", [B, pn * pn], out.idx.data as BigInt64Array));
      fHat = out.fHatNext as Tensor<"float32">;
      fRest = out.fRestNext as Tensor<"float32">;
    }
    return { indices, fHatBCHW: fHat, residualBCHW: fRest, restBeforeLastBCHW: restBeforeLast };
  }

  /**
   * Discrete latent from per-scale indices (official `idxBl_to_fhat(same_shape=True, last_one=True)`):
   * `Σ_si Phi_k(si)(up(E[idx_si]))`, Phi on every scale including the last.
   */
  async indicesToFHat(indices: readonly Tensor<"int64">[]): Promise<Tensor<"float32">> {
    const SN = this.patchNums.length;
    if (!Array.isArray(indices) || indices.length !== SN) {
      throw new HartError("argument", `indices: expected one tensor per scale (${SN}), got ${indices?.length}`);
    }
    const B = this.checkIndices(indices[0], "indices[0]")[0];
    const HW = this.latentSide;
    let fHat = zeros("float32", [B, this.latentChannels, HW, HW]);
    for (let si = 0; si < SN; si++) {
      const pn = this.patchNums[si];
      const [b, L] = this.checkIndices(indices[si], `indices[${si}]`);
      if (b !== B || L !== pn * pn) {
        throw new HartError(
          "shape",
          `indices[${si}]: expected [${B}, ${pn * pn}] (pn = ${pn}), got [${indices[si].shape}]`,
        );
      }
      const h = await this.lookup(indices[si]);
      fHat = (await this.addScale(si, fHat, h)).fHatNext;
    }
    return fHat;
  }

  /** The hybrid latent `fHat + residual` (both `[B, Cvae, HW, HW]`), e.g. to decode an encoded image with its residual. */
  async addResidual(fHatBCHW: Tensor<"float32">, residualBCHW: Tensor<"float32">): Promise<Tensor<"float32">> {
    const HW = this.latentSide;
    checkFloatTensor(fHatBCHW, "addResidual(fHatBCHW)", [null, this.latentChannels, HW, HW], "[B, Cvae, HW, HW]");
    checkFloatTensor(residualBCHW, "addResidual(residualBCHW)", [...fHatBCHW.shape], "like fHatBCHW");
    const session = await this.session("sum", buildSumGraph);
    return (await session.run({ a: fHatBCHW, b: residualBCHW })).sum as Tensor<"float32">;
  }

  /** Frees the compiled graphs (they are rebuilt on the next call). */
  async release(): Promise<void> {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of sessions) await (await s).release();
  }

  private async addScale(
    si: number,
    fHat: Tensor<"float32">,
    h: Tensor<"float32">,
    nextSide?: number,
  ): Promise<{ fHatNext: Tensor<"float32">; next?: Tensor<"float32"> }> {
    const usePhi = this.phi.enabled;
    const withNext = nextSide !== undefined;
    const session = await this.session(`add:${usePhi}:${withNext}`, () =>
      buildAddScaleGraph({ phi: usePhi, ratio: this.phiRatio, next: withNext }),
    );
    const HW = this.latentSide;
    const up = resizeFactors("bicubic", h.shape[2], HW);
    const feeds: Record<string, Tensor> = { fHat, h, upLeft: up.left, upRightT: up.rightT };
    if (usePhi) Object.assign(feeds, this.phiFeeds(si));
    if (withNext) {
      const down = resizeFactors("area", HW, nextSide);
      feeds.downLeft = down.left;
      feeds.downRightT = down.rightT;
    }
    const out = await session.run(feeds);
    return { fHatNext: out.fHatNext as Tensor<"float32">, next: out.next as Tensor<"float32"> | undefined };
  }

  private phiFeeds(si: number): Record<string, Tensor> {
    const conv = this.phiConvs[this.phiIndex(si)];
    return { phiWeight: conv.weight, phiBias: conv.bias };
  }

  /** Checks an index tensor `[B, pn*pn]` (int64, a square count, every index in [0, V)); returns [B, L]. */
  private checkIndices(idxBL: Tensor<"int64">, what: string): [number, number] {
    if (!idxBL || idxBL.dtype !== "int64" || idxBL.shape.length !== 2) {
      throw new HartError("argument", `${what}: expected an int64 tensor [B, pn*pn], got ${describe(idxBL)}`);
    }
    const [B, L] = idxBL.shape;
    const pn = Math.round(Math.sqrt(L));
    if (B === 0 || pn * pn !== L)
      throw new HartError("shape", `${what}: [${idxBL.shape}] is not [B, pn*pn] with B ≥ 1`);
    const V = BigInt(this.vocabSize);
    const d = idxBL.data;
    for (let i = 0; i < d.length; i++) {
      if (d[i] < 0n || d[i] >= V)
        throw new HartError("value", `${what}: index ${d[i]} at ${i} is outside [0, ${this.vocabSize})`);
    }
    return [B, L];
  }

  private session(key: string, build: () => BuiltModel): Promise<Session> {
    let s = this.sessions.get(key);
    if (!s) {
      s = createSession(build(), {
        device: this.options.device,
        intraOpThreads: this.options.intraOpThreads,
        label: `tokenizer quantizer (${key})`,
      });
      this.sessions.set(key, s);
      s.catch(() => this.sessions.delete(key));
    }
    return s;
  }
}

function describe(t: Tensor | undefined): string {
  return t && typeof t === "object" && "shape" in t ? `${t.dtype} [${t.shape}]` : String(t);
}
