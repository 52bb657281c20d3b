/**
 * The released tokenizer's configuration (`tokenizer/config.json` of `mit-han-lab/hart-0.7b-1024px`): 4096 codes
 * of 32 channels, `ch = 160`, `ch_mult = (1, 1, 2, 2, 4)`, the 14-scale schedule up to 64×64. For benchmarks and
 * tests that need the release's shapes without its weights (see `randomTokenizerStateDict`).
 */
export const RELEASE_TOKENIZER_CONFIG: Readonly<Record<string, unknown>> & {
  /** Side lengths pn of the token grid at each scale, coarse to fine (`v_patch_nums` in config.json). */
  readonly v_patch_nums: readonly number[];
} = Object.freeze({
  model_type: "hart_autoencoder_with_disc",
  quantizer_type: "var_hybrid",
  vocab_size: 4096,
  z_channels: 32,
  ch: 160,
  ch_mult: Object.freeze([1, 1, 2, 2, 4]),
  v_patch_nums: Object.freeze([1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 48, 64]),
  quant_resi: 0.5,
  share_quant_resi: 4,
});
