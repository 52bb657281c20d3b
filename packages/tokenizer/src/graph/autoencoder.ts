/**
 * Builders of the encoder and decoder graphs (`Encoder`/`Decoder` of the
 * official `basic_vae.py`, two ResnetBlocks per encoder level and three per
 * decoder level, attention on the lowest-resolution level and in the middle).
 */
import { type BuiltModel, GraphBuilder, type GraphForm, PLAIN_FORM } from "@hart/core";
import type { TokenizerConfig } from "../config";
import {
  type AttentionKind,
  attnBlock,
  conv2d,
  downsample2x,
  groupNorm,
  resnetBlock,
  upsample2x,
  type Weights,
} from "./layers";

/** ResnetBlocks per encoder level (the official `num_res_blocks`); the decoder has one more per level. */
export const NUM_RES_BLOCKS = 2;

/** Options of the autoencoder graph builders. */
export interface AutoencoderGraphOptions {
  /** How self-attention runs (default `"mha"`). */
  attention?: AttentionKind;
  /** Plain ops (default, every device) or the fused CUDA forms (GroupNorm + SiLU in one NHWC kernel). */
  form?: GraphForm;
}

/**
 * `image [B, 3, H, W] → f [B, Cvae, H/d, W/d]` = `quant_conv(encoder(image))`, also
 * returning the encoder output before `quant_conv` (`encoderOut`). Weight keys are
 * `encoder.*` and `quant_conv.*`.
 */
export function buildEncoderGraph(config: TokenizerConfig, w: Weights, opts: AutoencoderGraphOptions = {}): BuiltModel {
  const { ch, chMult, zChannels, quantConvKs } = config;
  const attention = opts.attention ?? "mha";
  const form = opts.form ?? PLAIN_FORM;
  const g = new GraphBuilder("hart_tokenizer_encoder");
  const imageB3HW = g.input("image", "float32", ["B", 3, "H", "W"]);
  let h = conv2d(g, imageB3HW, w, "encoder.conv_in", { cin: 3, cout: ch, k: 3 });
  let C = ch;
  const last = chMult.length - 1;
  for (let level = 0; level <= last; level++) {
    const cout = ch * chMult[level];
    for (let b = 0; b < NUM_RES_BLOCKS; b++) {
      h = resnetBlock(g, h, w, `encoder.down.${level}.block.${b}`, C, cout, form);
      C = cout;
      if (level === last) h = attnBlock(g, h, w, `encoder.down.${level}.attn.${b}`, C, attention, form);
    }
    if (level !== last) h = downsample2x(g, h, w, `encoder.down.${level}.downsample`, C);
  }
  h = resnetBlock(g, h, w, "encoder.mid.block_1", C, C, form);
  h = attnBlock(g, h, w, "encoder.mid.attn_1", C, attention, form);
  h = resnetBlock(g, h, w, "encoder.mid.block_2", C, C, form);
  h = groupNorm(g, h, w, "encoder.norm_out", C, { form, silu: true });
  const encoderOut = conv2d(g, h, w, "encoder.conv_out", { cin: C, cout: zChannels, k: 3 });
  const f = conv2d(g, encoderOut, w, "quant_conv", { cin: zChannels, cout: zChannels, k: quantConvKs });
  g.output(f, "f", "float32", ["B", zChannels, "h", "w"]);
  g.output(encoderOut, "encoderOut", "float32", ["B", zChannels, "h", "w"]);
  return g.build();
}

/**
 * `fHat [B, Cvae, h, w] → image [B, 3, h·d, w·d]` =
 * `decoder(post_quant_conv(fHat)).clamp(−1, 1)`. Weight keys are `decoder.*` and `post_quant_conv.*`.
 */
export function buildDecoderGraph(config: TokenizerConfig, w: Weights, opts: AutoencoderGraphOptions = {}): BuiltModel {
  const { ch, chMult, zChannels, quantConvKs } = config;
  const attention = opts.attention ?? "mha";
  const form = opts.form ?? PLAIN_FORM;
  const g = new GraphBuilder("hart_tokenizer_decoder");
  const fHatBCHW = g.input("fHat", "float32", ["B", zChannels, "h", "w"]);
  const last = chMult.length - 1;
  let C = ch * chMult[last];
  let h = conv2d(g, fHatBCHW, w, "post_quant_conv", { cin: zChannels, cout: zChannels, k: quantConvKs });
  h = conv2d(g, h, w, "decoder.conv_in", { cin: zChannels, cout: C, k: 3 });
  h = resnetBlock(g, h, w, "decoder.mid.block_1", C, C, form);
  h = attnBlock(g, h, w, "decoder.mid.attn_1", C, attention, form);
  h = resnetBlock(g, h, w, "decoder.mid.block_2", C, C, form);
  for (let level = last; level >= 0; level--) {
    const cout = ch * chMult[level];
    for (let b = 0; b <= NUM_RES_BLOCKS; b++) {
      h = resnetBlock(g, h, w, `decoder.up.${level}.block.${b}`, C, cout, form);
      C = cout;
      if (level === last) h = attnBlock(g, h, w, `decoder.up.${level}.attn.${b}`, C, attention, form);
    }
    if (level !== 0) h = upsample2x(g, h, w, `decoder.up.${level}.upsample`, C);
  }
  h = groupNorm(g, h, w, "decoder.norm_out", C, { form, silu: true });
  h = conv2d(g, h, w, "decoder.conv_out", { cin: C, cout: 3, k: 3 });
  const imageB3HW = g.op("Clip", [h, g.scalar(-1), g.scalar(1)]);
  g.output(imageB3HW, "image", "float32", ["B", 3, "H", "W"]);
  return g.build();
}
