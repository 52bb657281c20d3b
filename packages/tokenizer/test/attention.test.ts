import { describe, expect, it } from "vitest";
import { HartTokenizer, parseTokenizerConfig, randomTokenizerStateDict } from "../src/index";
import { randomTensor } from "./helpers";
import { relErr } from "./reference";

describe("fused and plain self-attention agree on a 32×32 latent (1024 tokens)", () => {
  it("decode with attention mha vs plain", async () => {
    const config = parseTokenizerConfig({
      model_type: "hart_autoencoder_with_disc",
      quantizer_type: "var_hybrid",
      vocab_size: 16,
      z_channels: 4,
      ch: 32,
      ch_mult: [1, 2],
      v_patch_nums: [1, 4, 16, 32],
    });
    const sd = randomTokenizerStateDict(config, { seed: 9, parts: ["decoder"] });
    const latent = randomTensor([1, 4, 32, 32], 11, 2);
    const images = [];
    for (const attention of ["mha", "plain"] as const) {
      const tok = HartTokenizer.fromStateDict(config, sd, { attention });
      images.push(await tok.decode(latent));
      await tok.release();
    }
    const err = relErr(images[0].data, images[1].data);
    console.log(`  mha vs plain: rel err ${err.toExponential(2)}`);
    expect(images[0].shape).toEqual([1, 3, 64, 64]);
    // Not saturated by the clamp, so the comparison sees the attention output.
    expect(images[0].data.filter((v) => Math.abs(v) < 1).length).toBeGreaterThan(images[0].data.length / 2);
    expect(err).toBeLessThan(1e-5);
  });
});
