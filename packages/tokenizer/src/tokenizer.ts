/**
 * The hybrid tokenizer: conv encoder → `quant_conv` → multi-scale residual
 * quantizer (discrete codes + continuous residual) → `post_quant_conv` → conv decoder.
 */
import {
  type BuiltModel,
  createSession,
  emitProgress,
  graphForm,
  HartError,
  type Session,
  type StateDict,
  type Tensor,
  tensor,
} from "@hart/core";
import { checkFinite, checkFloatTensor } from "./check";
import { readTokenizerConfig, type TokenizerConfig } from "./config";
import { type AutoencoderGraphOptions, buildDecoderGraph, buildEncoderGraph } from "./graph/autoencoder";
import type { AttentionKind, Weights } from "./graph/layers";
import { HartQuantizer } from "./quantizer";
import type { EncodedImages, ImageTokenizer, TokenizerLoadOptions } from "./types";
import { findWeightsFile, loadTokenizerStateDict, weightsOf } from "./weights";

/** Options of {@link HartTokenizer.fromStateDict} (the load options minus file selection). */
export interface TokenizerOptions extends Omit<TokenizerLoadOptions, "weightsFile"> {
  /** How the autoencoder's self-attention runs (default `"mha"`, onnxruntime's fused attention; `"plain"` on WebGPU). */
  attention?: AttentionKind;
  /** Names the checkpoint in error messages. */
  source?: string;
  /** How keys are spelled in the checkpoint (default `"vae."`), for error messages. */
  keyPrefix?: string;
}

/** {@link ImageTokenizer.encode}'s result plus the intermediate latents (for checks and research). */
export interface EncodedImagesWithDebug extends EncodedImages {
  /** `encoder(image)` before `quant_conv` `[B, Cvae, HW, HW]`. */
  encoderOutBCHW: Tensor<"float32">;
  /** The discrete part of `f` (Phi on every scale but the last): `fHatDiscrete + residual = f`. */
  fHatDiscreteBCHW: Tensor<"float32">;
  /** The official `frest_wo_last_discrete` as NCHW: `residual + E[idx_last]`. */
  restBeforeLastBCHW: Tensor<"float32">;
}

/**
 * HART's tokenizer (`HARTAutoEncoderWithDisc.vae`): implements {@link ImageTokenizer}.
 * Graphs are compiled on first use (a decode-only user never compiles the encoder).
 *
 * @example
 * ```ts
 * const tok = await HartTokenizer.fromPretrained("hart-0.7b-1024px/tokenizer");
 * const { fBCHW, indices } = await tok.encode(imagesB3HW);  // images in [-1, 1]
 * const recon = await tok.decode(fBCHW);                     // [B, 3, H, W] in [-1, 1]
 * ```
 */
export class HartTokenizer implements ImageTokenizer {
  /** The multi-scale residual quantizer (what the AR transformer drives). */
  readonly quantizer: HartQuantizer;
  /** The model's configuration (from `config.json`). */
  readonly config: TokenizerConfig;
  private readonly weights: Weights;
  /** False for a decode-only checkpoint (no `encoder.*` weights at all). */
  readonly canEncode: boolean;
  private readonly graphOptions: AutoencoderGraphOptions;
  private encoderSession?: Promise<Session>;
  private decoderSession?: Promise<Session>;

  private constructor(
    config: TokenizerConfig,
    stateDict: StateDict,
    private readonly options: TokenizerOptions,
  ) {
    if (options.dtype && options.dtype !== "float32") {
      throw new HartError(
        "unsupported",
        `@hart/tokenizer runs in float32 only (dtype "${options.dtype}" was asked for)`,
      );
    }
    this.config = config;
    this.weights = weightsOf(stateDict, options.source ?? "the tokenizer state dict", options.keyPrefix ?? "vae.");
    this.canEncode = [...stateDict.keys()].some((k) => k.startsWith("encoder."));
    const form = graphForm({ device: options.device, graphFlavour: options.graphFlavour });
    // the form's attention (MatMul/Softmax on WebGPU) unless the caller chose one
    this.graphOptions = { form, attention: options.attention ?? (form.attention === "matmul" ? "plain" : "mha") };
    this.quantizer = HartQuantizer.fromWeights(config, this.weights, {
      device: options.device,
      intraOpThreads: options.intraOpThreads,
      patchNums: options.patchNums,
    });
  }

  /**
   * Loads a tokenizer folder (the official `tokenizer/` layout: `config.json` with
   * `model_type: hart_autoencoder_with_disc`, weights in `model.safetensors` or
   * `pytorch_model.bin` under the `vae.` prefix; `disc.*` are ignored).
   */
  static async fromPretrained(
    dir: string,
    options: TokenizerLoadOptions & TokenizerOptions = {},
  ): Promise<HartTokenizer> {
    const config = readTokenizerConfig(dir);
    const file = findWeightsFile(dir, options.weightsFile);
    emitProgress(options.onProgress, { stage: "tokenizer:load", file });
    const { stateDict, prefix } = loadTokenizerStateDict(file);
    const tokenizer = new HartTokenizer(config, stateDict, { ...options, source: file, keyPrefix: prefix });
    // Fail at load time, not at the first decode, when a weight is missing or misshapen.
    tokenizer.checkWeights();
    emitProgress(options.onProgress, { stage: "tokenizer:loaded", file, message: `${stateDict.size} tensors` });
    return tokenizer;
  }

  /**
   * Builds a tokenizer from a parsed config and a prefix-free state dict (keys like
   * `decoder.conv_in.weight`). Without any `encoder.*` key the tokenizer is decode-only.
   */
  static fromStateDict(config: TokenizerConfig, stateDict: StateDict, options: TokenizerOptions = {}): HartTokenizer {
    const tokenizer = new HartTokenizer(config, stateDict, options);
    tokenizer.checkWeights();
    return tokenizer;
  }

  /** Spatial down-sampling factor of the autoencoder (`2^(len(ch_mult) − 1)`). */
  get downsampleFactor(): number {
    return 2 ** (this.config.chMult.length - 1);
  }

  /** Image side this tokenizer encodes and decodes (`latent side × downsampling factor`). */
  get imageSize(): number {
    return this.quantizer.latentSide * this.downsampleFactor;
  }

  /**
   * Encodes images `[B, 3, S, S]` in [−1, 1] (S = {@link HartTokenizer.imageSize}): the latent
   * `f`, the indices per scale and the continuous residual (see {@link EncodedImagesWithDebug}).
   */
  async encode(imagesB3HW: Tensor<"float32">): Promise<EncodedImagesWithDebug> {
    const S = this.imageSize;
    checkFloatTensor(imagesB3HW, "encode(images)", [null, 3, S, S], `[B, 3, ${S}, ${S}] (RGB in [-1, 1])`);
    checkFinite(imagesB3HW, "encode(images)");
    if (!this.canEncode) {
      throw new HartError(
        "missing-weight",
        `encode: ${this.options.source ?? "the state dict"} has no encoder weights ("${this.options.keyPrefix ?? "vae."}encoder.*"); this tokenizer can only decode`,
      );
    }
    const out = await runPerImage(await this.graph("encoder"), "image", imagesB3HW);
    const fBCHW = out.f as Tensor<"float32">;
    const q = await this.quantizer.quantize(fBCHW);
    return {
      fBCHW,
      indices: q.indices,
      residualBCHW: q.residualBCHW,
      encoderOutBCHW: out.encoderOut as Tensor<"float32">,
      fHatDiscreteBCHW: q.fHatBCHW,
      restBeforeLastBCHW: q.restBeforeLastBCHW,
    };
  }

  /** `decoder(post_quant_conv(fHat)).clamp(−1, 1)`: `[B, Cvae, HW, HW]` → `[B, 3, S, S]` in [−1, 1]. */
  async decode(fHatBCHW: Tensor<"float32">): Promise<Tensor<"float32">> {
    const HW = this.quantizer.latentSide;
    checkFloatTensor(fHatBCHW, "decode(fHat)", [null, this.config.zChannels, HW, HW], "[B, Cvae, HW, HW]");
    checkFinite(fHatBCHW, "decode(fHat)");
    return (await runPerImage(await this.graph("decoder"), "fHat", fHatBCHW)).image;
  }

  /** Discrete-only image from per-scale indices `[B, pn*pn]` (Phi on every scale, the last included). */
  async indicesToImage(indices: Tensor<"int64">[]): Promise<Tensor<"float32">> {
    return this.decode(await this.quantizer.indicesToFHat(indices));
  }

  /** encode → decode: hybrid (codes + residual, = `decode(f)`) by default, codes only with `discreteOnly`. */
  async reconstruct(imagesB3HW: Tensor<"float32">, opts: { discreteOnly?: boolean } = {}): Promise<Tensor<"float32">> {
    const enc = await this.encode(imagesB3HW);
    if (opts.discreteOnly) return this.indicesToImage(enc.indices);
    return this.decode(await this.quantizer.addResidual(enc.fHatDiscreteBCHW, enc.residualBCHW));
  }

  /** Frees every compiled graph (they are rebuilt on the next call). */
  async release(): Promise<void> {
    const sessions = [this.encoderSession, this.decoderSession];
    this.encoderSession = undefined;
    this.decoderSession = undefined;
    for (const s of sessions) if (s) await (await s).release();
    await this.quantizer.release();
  }

  /**
   * The autoencoder graphs as they would be compiled (`part` = `"encoder"` or `"decoder"`), e.g. to inspect the
   * fused form or run it elsewhere. Building fetches and shape-checks the weights; nothing is compiled.
   */
  buildGraph(part: "encoder" | "decoder"): BuiltModel {
    if (part === "encoder" && !this.canEncode) {
      throw new HartError("unsupported", "this tokenizer is decode-only (no encoder.* weights)");
    }
    return part === "encoder"
      ? buildEncoderGraph(this.config, this.weights, this.graphOptions)
      : buildDecoderGraph(this.config, this.weights, this.graphOptions);
  }

  /** Builds (without compiling) the graphs, which fetches and shape-checks every autoencoder weight. */
  private checkWeights(): void {
    if (this.canEncode) buildEncoderGraph(this.config, this.weights, this.graphOptions);
    buildDecoderGraph(this.config, this.weights, this.graphOptions);
  }

  /** The compiled graph of `part`, compiled on first use (a failed compile is retried on the next call). */
  private graph(part: "encoder" | "decoder"): Promise<Session> {
    const cached = part === "encoder" ? this.encoderSession : this.decoderSession;
    if (cached) return cached;
    const compiled = this.compile(part);
    if (part === "encoder") this.encoderSession = compiled;
    else this.decoderSession = compiled;
    compiled.catch(() => {
      if (part === "encoder" && this.encoderSession === compiled) this.encoderSession = undefined;
      if (part === "decoder" && this.decoderSession === compiled) this.decoderSession = undefined;
    });
    return compiled;
  }

  private async compile(part: "encoder" | "decoder"): Promise<Session> {
    const built = this.buildGraph(part);
    emitProgress(this.options.onProgress, { stage: "tokenizer:compile", message: part });
    return createSession(built, {
      device: this.options.device,
      intraOpThreads: this.options.intraOpThreads,
      label: `tokenizer ${part}`,
      // Activations change size with every layer (up to B·C·H·W floats at full resolution);
      // the arena would keep its power-of-two growth and fragmentation as peak memory.
      enableCpuMemArena: false,
    });
  }
}

/**
 * Runs a one-input graph image by image and stacks the outputs along the batch: the
 * full-resolution activations (≈ 0.7 GB each at 1024 px) then exist for one image at a
 * time, so peak memory does not grow with the batch. Inputs are sliced without copying.
 */
async function runPerImage(
  session: Session,
  inputName: string,
  xB: Tensor<"float32">,
): Promise<Record<string, Tensor<"float32">>> {
  const [B, ...rest] = xB.shape;
  const per = rest.reduce((a, b) => a * b, 1);
  const parts: Record<string, Tensor>[] = [];
  for (let b = 0; b < B; b++) {
    const x1 = tensor("float32", [1, ...rest], xB.data.subarray(b * per, (b + 1) * per));
    parts.push(await session.run({ [inputName]: x1 }));
  }
  if (B === 1) return parts[0] as Record<string, Tensor<"float32">>;
  const out: Record<string, Tensor<"float32">> = {};
  for (const name of Object.keys(parts[0])) {
    const [, ...shape] = parts[0][name].shape;
    const n = parts[0][name].data.length;
    const data = new Float32Array(B * n);
    for (let b = 0; b < B; b++) data.set(parts[b][name].data as Float32Array, b * n);
    out[name] = tensor("float32", [B, ...shape], data);
  }
  return out;
}
