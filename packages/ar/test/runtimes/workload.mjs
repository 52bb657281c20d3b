// Workload of check.mjs: a tiny random HART transformer, seeded generation (sampled and smooth); prints the codes.

import { HartTransformer, parseConfig, randomTransformerStateDict } from "@hart/ar";
import { tensor } from "@hart/core";
import { HartQuantizer, parseTokenizerConfig, randomTokenizerStateDict } from "@hart/tokenizer";

const cfg = parseConfig({
  model_type: "hart_transformer_t2i",
  context_token: 5,
  context_dim: 12,
  depth: 2,
  embed_dim: 32,
  num_heads: 4,
  patch_nums: [1, 2, 4, 6],
  mlp_type: "llama",
  attn_type: "llama",
  disable_aln: true,
  use_timestep_embed: true,
  use_context_norm: true,
});
const tc = parseTokenizerConfig({
  model_type: "hart_autoencoder_with_disc",
  quantizer_type: "var_hybrid",
  vocab_size: 48,
  z_channels: 4,
  ch: 8,
  ch_mult: [1],
  v_patch_nums: [1, 2, 4, 6],
  quant_resi: 0.5,
  share_quant_resi: 4,
});
const tsd = randomTokenizerStateDict(tc, { parts: [] });
const q = HartQuantizer.fromWeights(tc, { has: (k) => tsd.has(k), get: (k) => tsd.get(k) });
const model = await HartTransformer.fromStateDict(
  cfg,
  randomTransformerStateDict(cfg, { vocabSize: 48, latentChannels: 4 }),
  q,
);
const T = 5,
  D = 12;
const ctx = {
  contextBLD: tensor(
    "float32",
    [1, T, D],
    Float32Array.from({ length: T * D }, (_, i) => Math.sin(i)),
  ),
  mask: tensor("bool", [1, T], Uint8Array.of(1, 1, 1, 0, 0)),
  positionIds: tensor("int64", [1, T], BigInt64Array.of(0n, 1n, 2n, 2n, 2n)),
};
const out = [];
for (const moreSmooth of [false, true]) {
  const r = await model.generate(ctx, { cfg: 4.5, seed: 42, moreSmooth });
  out.push(r.indices.map((t) => Array.from(t.data, Number).join(",")).join("|"));
}
console.log(JSON.stringify(out));
await model.release();
