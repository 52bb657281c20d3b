import { join } from "node:path";
import { HartError, readConfig } from "@hart/core";
import { describe, expect, it } from "vitest";
import { headDim, mlpHidden, parseConfig, RELEASE_TRANSFORMER_CONFIG, readTransformerConfig } from "../src/index";

const GOLDEN = process.env.HART_GOLDEN_DIR ?? join(import.meta.dirname, "../../../../shared/golden");
const base = readConfig(join(GOLDEN, "release/llm"));

function unsupported(overrides: Record<string, unknown>, pattern: RegExp) {
  let err: unknown;
  try {
    parseConfig({ ...base, ...overrides });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(HartError);
  expect((err as HartError).message).toMatch(pattern);
}

describe("parseConfig", () => {
  it("reads every golden set's config.json", () => {
    for (const set of ["main", "alt", "release"]) {
      const raw = readConfig(join(GOLDEN, set, "llm"));
      const cfg = readTransformerConfig(join(GOLDEN, set, "llm"));
      expect(cfg.depth).toBe(raw.depth);
      expect(cfg.patchNums).toEqual(raw.patch_nums);
      expect(cfg.disableAln).toBe(raw.disable_aln);
      expect(cfg.useTimestepEmbed).toBe(raw.use_timestep_embed);
      expect(cfg.sepAlnPoolingMode).toBe(raw.sep_aln_pooling_mode);
      expect(cfg.useContextNorm).toBe(raw.use_context_norm);
      expect(mlpHidden(cfg)).toBe(256); // llama: ⌊(2·64·4/3 + 255)/256⌋·256; gpt2: round(64·4)
      expect(headDim(cfg)).toBe((raw.embed_dim as number) / (raw.num_heads as number));
    }
  });

  it("rounds the SwiGLU width of the release shape like the reference", () => {
    const raw = { ...RELEASE_TRANSFORMER_CONFIG };
    const cfg = parseConfig(raw);
    expect(mlpHidden(cfg)).toBe(4096);
    expect(mlpHidden(parseConfig({ ...raw, embed_dim: 1024, num_heads: 16 }))).toBe(2816);
    expect(mlpHidden(parseConfig({ ...raw, mlp_type: "gpt2", mlp_ratio: 2.5, embed_dim: 100, num_heads: 1 }))).toBe(
      250,
    );
  });

  it("fails with unsupported: <field>=<value> for what inference cannot honour", () => {
    unsupported({ use_cross_attn: true }, /unsupported: use_cross_attn=true/);
    unsupported({ mlp_type: "moe" }, /unsupported: mlp_type=moe/);
    unsupported({ attn_type: "xformers" }, /unsupported: attn_type=xformers/);
    unsupported({ sep_aln_pooling_mode: "first" }, /unsupported: sep_aln_pooling_mode=first/);
    unsupported(
      { attn_type: "gpt2", use_context_norm: true },
      /unsupported: use_context_norm=true with attn_type=gpt2/,
    );
    unsupported({ context_token: 0 }, /unsupported: context_token=0/);
    unsupported({ embed_dim: 72, num_heads: 12 }, /unsupported: num_heads=12/);
  });

  it("rejects malformed values naming the field", () => {
    expect(() => parseConfig({ ...base, embed_dim: 65 })).toThrow(/not divisible by num_heads/);
    expect(() => parseConfig({ ...base, depth: "3" })).toThrow(/"depth"/);
    expect(() => parseConfig({ ...base, patch_nums: [4] })).toThrow(/patch_nums/);
    expect(() => parseConfig({ ...base, model_type: "hart_transformer_c2i" })).toThrow(/model_type/);
  });
});
