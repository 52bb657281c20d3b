import { join } from "node:path";
import { readSafetensors, type Tensor, zeros } from "@hart/core";
import { describe, expect, it } from "vitest";
import { HartTokenizer, randomTokenizerStateDict } from "../src/index";
import { GOLDEN_DIR, goldenSets, randomTensor, randomTokenizer, tinyConfig } from "./helpers";
import { area2d, bicubic2d, conv3x3, relErr } from "./reference";

describe("nextScaleInput equals a float64 reference (bicubic up → Phi → accumulate → area down)", () => {
  // Non-divisible steps on purpose: 13 → 64 up, 64 → 21 down.
  const patchNums = [1, 5, 13, 21, 64];
  for (const quantResi of [0.5, 0]) {
    it(`quant_resi ${quantResi} (${quantResi ? "Phi conv" : "Phi = identity"})`, async () => {
      const config = tinyConfig(patchNums, quantResi);
      const sd = randomTokenizerStateDict(config, { seed: 3, parts: ["decoder"] });
      const tok = HartTokenizer.fromStateDict(config, sd);
      const q = tok.quantizer;
      const [B, C, HW] = [2, config.zChannels, 64];
      try {
        for (const si of [1, 2, 3, 4]) {
          const pn = patchNums[si];
          const fHat = randomTensor([B, C, HW, HW], 100 + si);
          const h = randomTensor([B, C, pn, pn], 200 + si);
          const { fHatBCHW, nextBChw } = await q.nextScaleInput(si, fHat, h);

          const up = bicubic2d({ n: B * C, h: pn, w: pn, data: Float64Array.from(h.data) }, HW, HW).data;
          let phi = up;
          if (quantResi) {
            const k = q.phiIndex(si);
            const w = sd.get(`quantize.quant_resi.qresi_ls.${k}.weight`) as Tensor<"float32">;
            const b = sd.get(`quantize.quant_resi.qresi_ls.${k}.bias`) as Tensor<"float32">;
            const conv = conv3x3(up, B, C, HW, HW, w.data, b.data);
            phi = up.map((u, i) => u * (1 - quantResi) + conv[i] * quantResi);
          }
          const refFHat = Float64Array.from(fHat.data, (v, i) => v + phi[i]);
          const errF = relErr(fHatBCHW.data, refFHat);
          const last = si === patchNums.length - 1;
          expect(nextBChw === null).toBe(last);
          let errNext = 0;
          if (!last) {
            const q2 = patchNums[si + 1];
            const refNext = area2d({ n: B * C, h: HW, w: HW, data: refFHat }, q2, q2).data;
            expect(nextBChw?.shape).toEqual([B, C, q2, q2]);
            errNext = relErr(nextBChw!.data, refNext);
          }
          console.log(
            `  r=${quantResi} si=${si} (${pn}→${HW}): fHat rel err ${errF.toExponential(2)}, next ${errNext.toExponential(2)}`,
          );
          expect(errF).toBeLessThan(1e-6);
          expect(errNext).toBeLessThan(1e-6);
        }
        // Inputs are not mutated.
        const fHat = zeros("float32", [1, C, HW, HW]);
        await q.nextScaleInput(0, fHat, randomTensor([1, C, 1, 1], 7));
        expect(fHat.data.every((v) => v === 0)).toBe(true);
      } finally {
        await tok.release();
      }
    });
  }
});

describe("nextScaleInput reproduces the AR reference's f_hat and next maps (golden ar_generate)", () => {
  for (const set of goldenSets()) {
    it(set, async () => {
      const tok = await HartTokenizer.fromPretrained(join(GOLDEN_DIR, set, "tokenizer"));
      const ref = readSafetensors(join(GOLDEN_DIR, set, "cases", "ar_generate.safetensors"));
      const q = tok.quantizer;
      const SN = q.patchNums.length;
      let fHat = zeros("float32", ref.get("s0.f_hat")!.shape);
      for (let si = 0; si < SN - 1; si++) {
        const out = await q.nextScaleInput(si, fHat, ref.get(`s${si}.h_BChw`) as Tensor<"float32">);
        const errF = relErr(out.fHatBCHW.data, ref.get(`s${si}.f_hat`)!.data as Float32Array);
        const errN = relErr(out.nextBChw!.data, ref.get(`s${si}.next_map`)!.data as Float32Array);
        console.log(`  ${set} s${si}: f_hat rel err ${errF.toExponential(2)}, next_map ${errN.toExponential(2)}`);
        expect(errF).toBeLessThan(1e-5);
        expect(errN).toBeLessThan(1e-5);
        fHat = ref.get(`s${si}.f_hat`) as Tensor<"float32">;
      }
      await tok.release();
    });
  }
});

describe("codebook lookup", () => {
  it("gathers rows of the codebook into [B, Cvae, pn, pn]", async () => {
    const config = tinyConfig([1, 2, 3], 0.5, 4, 16);
    const tok = randomTokenizer(config);
    const q = tok.quantizer;
    const idx = {
      dtype: "int64" as const,
      shape: [2, 9],
      data: BigInt64Array.from({ length: 18 }, (_, i) => BigInt((i * 7) % 16)),
    };
    const h = await q.lookup(idx);
    expect(h.shape).toEqual([2, 4, 3, 3]);
    for (let b = 0; b < 2; b++)
      for (let p = 0; p < 9; p++)
        for (let c = 0; c < 4; c++) {
          const v = Number(idx.data[b * 9 + p]);
          expect(h.data[(b * 4 + c) * 9 + p]).toBe(q.codebook.data[v * 4 + c]);
        }
    await expect(q.lookup({ ...idx, data: idx.data.map((v) => (v === 0n ? 16n : v)) })).rejects.toThrow(
      /outside \[0, 16\)/,
    );
    await expect(q.lookup({ ...idx, shape: [2, 3, 3] } as never)).rejects.toThrow(/int64 tensor \[B, pn\*pn\]/);
    await tok.release();
  });
});
