/**
 * The released model's transformer configuration (`llm/config.json` of `mit-han-lab/hart-0.7b-1024px`): 732M
 * parameters, depth 24, width 1536, the 14-scale schedule up to 64×64 tokens (1024 px). For benchmarks and tests
 * that need the release's shapes without its weights (see `randomTransformerStateDict`).
 */
export const RELEASE_TRANSFORMER_CONFIG: Readonly<Record<string, unknown>> & {
  /** Side lengths pn of the token grid at each scale, coarse to fine (`patch_nums` in config.json). */
  readonly patch_nums: readonly number[];
} = Object.freeze({
  vae_path: null,
  context_token: 300,
  context_dim: 1536,
  depth: 24,
  embed_dim: 1536,
  num_heads: 24,
  mlp_ratio: 4.0,
  norm_eps: 1e-6,
  shared_aln: false,
  attn_l2_norm: false,
  patch_nums: Object.freeze([1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 48, 64]),
  mlp_type: "llama",
  attn_type: "llama",
  disable_aln: true,
  use_timestep_embed: true,
  sep_aln_pooling_mode: "max",
  use_cross_attn: false,
  diff_width: 1024,
  diff_depth: 6,
  num_sampling_steps: "8",
  sampler: "iddpm",
  use_context_norm: true,
  context_norm_scale: 1.0,
  model_type: "hart_transformer_t2i",
  architectures: Object.freeze(["HARTForT2I"]),
});
