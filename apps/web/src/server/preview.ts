import { createRng, HartError, type RgbImage, type Tensor, tensor } from "@hart/core";
import type { ImageTokenizer } from "@hart/pipeline";

/**
 * Cheap previews of a partial image: a per-pixel affine map from the latent f_hat (`Cvae` channels) to RGB,
 * fitted once against the model's own decoder. Decoding f_hat for real after every scale would cost a full
 * decoder run each time; this costs `HW² · (Cvae + 1) · 3` multiply-adds and shows the picture's colours and
 * layout forming at latent resolution (HW × HW pixels).
 */
export class LatentPreviewer {
  private constructor(
    /** `[(Cvae + 1), 3]`: one row per latent channel, then the bias row; outputs in [-1, 1] image units. */
    private readonly weights: Float64Array,
    readonly channels: number,
    /** Side of the decoded image (pixels). */
    readonly imageSize: number,
  ) {}

  /**
   * Fits the map: builds one f_hat the way generation does (random codes at every scale, accumulated with the
   * quantizer's own `nextScaleInput`), decodes it, and solves a ridge least-squares fit from each latent pixel
   * to the mean colour of the image patch it decodes to. One decoder run at batch 1, which also warms up the
   * decoder and quantizer graphs for the first real job.
   */
  static async fit(tokenizer: ImageTokenizer, seed = 0): Promise<LatentPreviewer> {
    const q = tokenizer.quantizer;
    const C = q.latentChannels;
    const V = q.vocabSize;
    const pns = q.patchNums;
    const HW = pns[pns.length - 1];
    const codebook = q.codebook.data;
    const rng = createRng(seed);
    let fHat = tensor("float32", [1, C, HW, HW], new Float32Array(C * HW * HW));
    for (let si = 0; si < pns.length; si++) {
      const pn = pns[si];
      const h = new Float32Array(C * pn * pn);
      for (let p = 0; p < pn * pn; p++) {
        const code = rng.randint(0, V);
        for (let c = 0; c < C; c++) h[c * pn * pn + p] = codebook[code * C + c];
      }
      fHat = (await q.nextScaleInput(si, fHat, tensor("float32", [1, C, pn, pn], h))).fHatBCHW;
    }
    const image = await tokenizer.decode(fHat);
    const [, three, H, W] = image.shape;
    if (three !== 3 || H % HW !== 0 || W % HW !== 0 || H !== W) {
      throw new HartError("shape", `preview fit: decoder gave [${image.shape}] for a ${HW}×${HW} latent`);
    }
    const patch = H / HW;

    // Normal equations (AᵀA + λI) w = Aᵀy with A = [latent, 1] per latent pixel, y = its patch's mean colour.
    const K = C + 1;
    const ata = new Float64Array(K * K);
    const aty = new Float64Array(K * 3);
    const a = new Float64Array(K);
    const img = image.data;
    for (let y = 0; y < HW; y++) {
      for (let x = 0; x < HW; x++) {
        for (let c = 0; c < C; c++) a[c] = fHat.data[(c * HW + y) * HW + x];
        a[C] = 1;
        for (let k = 0; k < 3; k++) {
          let sum = 0;
          for (let dy = 0; dy < patch; dy++) {
            const row = (k * H + y * patch + dy) * W + x * patch;
            for (let dx = 0; dx < patch; dx++) sum += img[row + dx];
          }
          const mean = sum / (patch * patch);
          for (let i = 0; i < K; i++) aty[i * 3 + k] += a[i] * mean;
        }
        for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) ata[i * K + j] += a[i] * a[j];
      }
    }
    // A little ridge keeps the solve stable when there are few latent pixels (tiny models) or collinear channels.
    let trace = 0;
    for (let i = 0; i < K; i++) trace += ata[i * K + i];
    const lambda = (1e-3 * trace) / K;
    for (let i = 0; i < C; i++) ata[i * K + i] += lambda;
    return new LatentPreviewer(solve(ata, aty, K, 3), C, H);
  }

  /** The preview of a single latent `[1, Cvae, HW, HW]` (see {@link imageLatent}) as an HW × HW RGB image. */
  render(latent1CHW: Tensor<"float32">): RgbImage {
    const [one, C, H, W] = latent1CHW.shape;
    if (one !== 1 || C !== this.channels) {
      throw new HartError("shape", `preview: latent [${latent1CHW.shape}], expected [1, ${this.channels}, HW, HW]`);
    }
    const P = H * W;
    const f = latent1CHW.data;
    const w = this.weights;
    const out = new Uint8Array(P * 3);
    for (let p = 0; p < P; p++) {
      for (let k = 0; k < 3; k++) {
        let v = w[C * 3 + k];
        for (let c = 0; c < C; c++) v += f[c * P + p] * w[c * 3 + k];
        out[p * 3 + k] = Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));
      }
    }
    return { width: W, height: H, data: out };
  }
}

/**
 * Image `b`'s latent so far, `[1, Cvae, HW, HW]`: f_hat after some scale, plus, once the last scale is sampled,
 * its codes `lastHBLC` `[B, HW², Cvae]` (what the pipeline adds before the diffusion residual).
 */
export function imageLatent(fHatBCHW: Tensor<"float32">, lastHBLC?: Tensor<"float32">, b = 0): Tensor<"float32"> {
  const [B, C, H, W] = fHatBCHW.shape;
  if (b < 0 || b >= B) throw new HartError("argument", `preview: image ${b} of a batch of ${B}`);
  const P = H * W;
  const out = fHatBCHW.data.slice(b * C * P, (b + 1) * C * P);
  if (lastHBLC) {
    const h = lastHBLC.data;
    for (let p = 0; p < P; p++) for (let c = 0; c < C; c++) out[c * P + p] += h[(b * P + p) * C + c];
  }
  return tensor("float32", [1, C, H, W], out);
}

/** Solves `M X = R` for `X` (`M` `[n, n]` symmetric positive definite, `R` `[n, m]`) by Gaussian elimination. */
function solve(M: Float64Array, R: Float64Array, n: number, m: number): Float64Array {
  const a = Float64Array.from(M);
  const x = Float64Array.from(R);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r * n + col]) > Math.abs(a[pivot * n + col])) pivot = r;
    if (Math.abs(a[pivot * n + col]) < 1e-300) throw new HartError("numeric", "preview fit: singular system");
    if (pivot !== col) {
      for (let j = 0; j < n; j++) [a[col * n + j], a[pivot * n + j]] = [a[pivot * n + j], a[col * n + j]];
      for (let j = 0; j < m; j++) [x[col * m + j], x[pivot * m + j]] = [x[pivot * m + j], x[col * m + j]];
    }
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const factor = a[r * n + col] / a[col * n + col];
      if (factor === 0) continue;
      for (let j = col; j < n; j++) a[r * n + j] -= factor * a[col * n + j];
      for (let j = 0; j < m; j++) x[r * m + j] -= factor * x[col * m + j];
    }
  }
  for (let r = 0; r < n; r++) for (let j = 0; j < m; j++) x[r * m + j] /= a[r * n + r];
  return x;
}
