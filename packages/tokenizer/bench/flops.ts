/**
 * Nominal FLOP count of the decoder (`post_quant_conv` + `Decoder`), counting
 * 2 FLOPs per multiply-add of every convolution and of the attention products
 * (Q·Kᵀ and P·V). Norms, activations and softmax are not counted.
 */
import type { TokenizerConfig } from "../src/index";

/** FLOPs of decoding a batch of `batch` latents of side `side`. */
export function decoderFlops(config: TokenizerConfig, side: number, batch = 1): number {
  const conv = (cin: number, cout: number, k: number, s: number) => 2 * cin * cout * k * k * s * s;
  const res = (cin: number, cout: number, s: number) =>
    conv(cin, cout, 3, s) + conv(cout, cout, 3, s) + (cin !== cout ? conv(cin, cout, 1, s) : 0);
  const attn = (c: number, s: number) => conv(c, 3 * c, 1, s) + conv(c, c, 1, s) + 2 * 2 * (s * s) ** 2 * c;
  const { ch, chMult, zChannels, quantConvKs } = config;
  const last = chMult.length - 1;
  let C = ch * chMult[last];
  let s = side;
  let total = conv(zChannels, zChannels, quantConvKs, s) + conv(zChannels, C, 3, s);
  total += res(C, C, s) + attn(C, s) + res(C, C, s);
  for (let level = last; level >= 0; level--) {
    const cout = ch * chMult[level];
    for (let b = 0; b < 3; b++) {
      total += res(C, cout, s);
      C = cout;
      if (level === last) total += attn(C, s);
    }
    if (level !== 0) {
      s *= 2;
      total += conv(C, C, 3, s);
    }
  }
  total += conv(C, 3, 3, s);
  return total * batch;
}
