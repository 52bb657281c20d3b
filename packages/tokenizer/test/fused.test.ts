/**
 * The fused autoencoder graphs (CUDA: GroupNorm + SiLU in one NHWC kernel) compute the plain graphs' function.
 * GroupNorm has no CPU kernel, so the fused graphs run here with it emulated by `@hart/kernels-cuda`; the op's own
 * semantics are checked against a float64 reference in `@hart/core`'s tests.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { type BuiltModel, createSession, HartError, relativeError, type Tensor } from "@hart/core";
import { emulateCudaOnlyOps } from "@hart/kernels-cuda";
import { ModelProtoSchema } from "onnx-buf";
import { describe, expect, it } from "vitest";
import { HartTokenizer, parseTokenizerConfig, randomTokenizerStateDict } from "../src/index";
import { randomTensor } from "./helpers";

// ch 64 and ch_mult [1, 2]: GroupNorm over 64 and 128 channels (2 and 4 per group), both fusable.
const config = parseTokenizerConfig({
  model_type: "hart_autoencoder_with_disc",
  quantizer_type: "var_hybrid",
  vocab_size: 16,
  z_channels: 4,
  ch: 64,
  ch_mult: [1, 2],
  v_patch_nums: [1, 2, 4],
  quant_resi: 0.5,
  share_quant_resi: 4,
});
const stateDict = randomTokenizerStateDict(config, { seed: 3 });

/** ‖a − b‖₂ / ‖b‖₂, printed so the run shows the measured error. */
function relErr(label: string, actual: Tensor, expected: Tensor): number {
  const err = relativeError(actual, expected);
  console.log(`${label}: relative error ${err.toExponential(2)}`);
  return err;
}

async function runOnce(model: BuiltModel, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  const session = await createSession(model, { intraOpThreads: 2 });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

const groupNorms = (model: BuiltModel) =>
  fromBinary(ModelProtoSchema, model.bytes).graph!.node.filter((n) => n.opType === "GroupNorm");

describe("fused tokenizer graphs", () => {
  const plain = HartTokenizer.fromStateDict(config, stateDict);
  const fused = HartTokenizer.fromStateDict(config, stateDict, { graphFlavour: "fused" });

  it("are plain on CPU by default and fused (GroupNorm + SiLU in one op) when asked", () => {
    expect(groupNorms(plain.buildGraph("decoder"))).toHaveLength(0);
    const norms = groupNorms(fused.buildGraph("decoder"));
    // decoder: 2 ResnetBlocks mid + 3 per level × 2 levels, 2 norms each; attention norms (mid + 3 on the last level); norm_out
    expect(norms).toHaveLength(2 * (2 + 3 * 2) + (1 + 3) + 1);
    const silu = norms.filter((n) => Number(n.attribute.find((a) => a.name === "activation")!.i) === 1);
    expect(silu).toHaveLength(2 * (2 + 3 * 2) + 1); // every norm but the attention blocks' is followed by SiLU
  });

  it("decoder and encoder: the fused graphs match the plain ones (GroupNorm emulated on CPU)", async () => {
    const fHat = randomTensor([1, config.zChannels, 4, 4], 11);
    const image = await runOnce(plain.buildGraph("decoder"), { fHat });
    const imageFused = await runOnce(emulateCudaOnlyOps(fused.buildGraph("decoder")), { fHat });
    expect(relErr("tokenizer decoder fused vs plain", imageFused.image, image.image)).toBeLessThan(1e-5);

    const img = randomTensor([1, 3, 8, 8], 12);
    const enc = await runOnce(plain.buildGraph("encoder"), { image: img });
    const encFused = await runOnce(emulateCudaOnlyOps(fused.buildGraph("encoder")), { image: img });
    expect(relErr("tokenizer encoder fused vs plain", encFused.f, enc.f)).toBeLessThan(1e-5);
  });

  it("forcing the fused flavour on CPU fails at compile time naming GroupNorm", async () => {
    const err = await fused.decode(randomTensor([1, config.zChannels, 4, 4], 13)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HartError);
    expect((err as Error).message).toMatch(/GroupNorm/);
  });
});
