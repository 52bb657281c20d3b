import type { Device, GraphFlavour, OnProgress, Tensor } from "@hart/core";

/** What {@link ScaleQuantizer.nextScaleInput} returns. */
export interface NextScaleInput {
  /** The updated accumulated latent `fHat'`, `[B, Cvae, HW, HW]` (a new tensor). */
  fHatBCHW: Tensor<"float32">;
  /** `fHat'` area-downsampled to the next scale, `[B, Cvae, pn', pn']` with `pn' = patchNums[si+1]`; `null` at the last scale. */
  nextBChw: Tensor<"float32"> | null;
}

/**
 * What the AR transformer needs from the quantizer: the scale schedule, the
 * codebook and the step that turns one scale's code embeddings into the next
 * scale's input (the official `get_next_autoregressive_input`).
 */
export interface ScaleQuantizer {
  /** The scale schedule (`v_patch_nums`): side length of each scale's token map, last = latent side. From config, overridable. */
  readonly patchNums: readonly number[];
  /** Codebook size V. */
  readonly vocabSize: number;
  /** Latent channels Cvae (`z_channels`). */
  readonly latentChannels: number;
  /** The codebook `[V, Cvae]` (`vae.quantize.embedding.weight`). */
  readonly codebook: Tensor<"float32">;
  /**
   * The official `get_next_autoregressive_input(si, SN, f_hat, h_BChw)`:
   * - `si < SN-1`: `fHat + Phi_k(bicubic(hBChw → HW×HW))`, next = `area(fHat', patchNums[si+1])`;
   * - `si = SN-1`: `fHat + Phi_k(hBChw)`, next = `null`.
   *
   * `fHatBCHW` is `[B, Cvae, HW, HW]`, `hBChw` is `[B, Cvae, pn, pn]` with `pn = patchNums[si]`.
   * Does not mutate its inputs.
   *
   * The last-scale form follows the base VAR quantizer (and `idxBl_to_fhat`); HART's hybrid
   * quantizer adds the last scale without Phi, which HART's sampler does itself (it never calls
   * this at `si = SN-1`).
   */
  nextScaleInput(si: number, fHatBCHW: Tensor<"float32">, hBChw: Tensor<"float32">): Promise<NextScaleInput>;
}

/** What {@link ImageTokenizer.encode} returns. */
export interface EncodedImages {
  /** The continuous latent `quant_conv(encoder(x))` `[B, Cvae, HW, HW]`. */
  fBCHW: Tensor<"float32">;
  /** Codebook indices per scale, each `[B, pn*pn]` (row-major over the pn×pn grid). */
  indices: Tensor<"int64">[];
  /**
   * The continuous residual `[B, Cvae, HW, HW]`: what is left of `f` after the
   * discrete reconstruction of every scale (Phi applied on all scales but the
   * last, as in the official `img_to_idxBl_and_frest`), so that
   * `fHatDiscreteWithoutLastPhi + residual` reproduces `f`.
   */
  residualBCHW: Tensor<"float32">;
}

/** The full hybrid tokenizer (autoencoder + multi-scale residual quantizer). */
export interface ImageTokenizer {
  /** The quantizer the AR model drives. */
  readonly quantizer: ScaleQuantizer;
  /** Encodes images `[B, 3, H, W]` in [-1, 1] (H = W = latent side × downsampling factor). */
  encode(imagesB3HW: Tensor<"float32">): Promise<EncodedImages>;
  /** `decoder(post_quant_conv(fHat)).clamp(-1, 1)` → `[B, 3, H, W]` in [-1, 1]. */
  decode(fHatBCHW: Tensor<"float32">): Promise<Tensor<"float32">>;
  /** Discrete-only reconstruction from per-scale indices (official `idxBl_to_img(..., same_shape=True, last_one=True)`). */
  indicesToImage(indices: Tensor<"int64">[]): Promise<Tensor<"float32">>;
  /**
   * encode → decode. By default the hybrid reconstruction (the discrete part plus the residual,
   * which equals `decode(f)`); with `discreteOnly` only the codes are decoded.
   */
  reconstruct(imagesB3HW: Tensor<"float32">, opts?: { discreteOnly?: boolean }): Promise<Tensor<"float32">>;
}

/** Options of {@link HartTokenizer.fromPretrained}. */
export interface TokenizerLoadOptions {
  /** Where the graphs run (default `"cpu"`). */
  device?: Device;
  /**
   * Graph operator forms: `"fused"` (the default on `cuda`) emits onnxruntime's CUDA GroupNorm (NHWC, SiLU fused)
   * in the autoencoder; `"plain"` (the default elsewhere) standard ops only. Forcing `"fused"` on CPU fails at
   * compile time (GroupNorm has no CPU kernel); see `@hart/kernels-cuda`'s `emulateCudaOnlyOps` to check it there.
   */
  graphFlavour?: GraphFlavour;
  /** Weight precision inside the graphs (default `"float32"`; inputs and outputs stay float32). */
  dtype?: "float32" | "float16";
  /** Progress callback: `tokenizer:load` (with `file`), `tokenizer:loaded`, `tokenizer:compile` (with `message`). */
  onProgress?: OnProgress;
  /** Overrides the scale schedule `v_patch_nums` from config.json (research); its last entry is the latent side, which sets the image size. */
  patchNums?: readonly number[];
  /** Threads per onnxruntime op (default: onnxruntime's choice). */
  intraOpThreads?: number;
  /** Checkpoint file inside the folder (default: `model.safetensors`, else `pytorch_model.bin`). */
  weightsFile?: string;
}
