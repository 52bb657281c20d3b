import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { linspace, nearestTick, phiTicks, readTokenizerConfig } from "../src/index";
import { GOLDEN_DIR, goldenSets, randomTokenizer, tinyConfig } from "./helpers";

describe("Phi index per scale (official float64 numpy arithmetic)", () => {
  it("linspace computes i·step + start with the exact stop last", () => {
    const t = linspace(1 / 12, 11 / 12, 4);
    expect(t[1]).toBe(1 * ((11 / 12 - 1 / 12) / 3) + 1 / 12);
    expect(t[3]).toBe(11 / 12);
    expect(linspace(0.25, 0.75, 1)).toEqual([0.25]);
  });

  it("K = 4 uses margins 1/3/K, other K use 1/2/K", () => {
    expect(phiTicks(4)[0]).toBe(1 / 3 / 4);
    expect(phiTicks(3)).toEqual(linspace(1 / 2 / 3, 1 - 1 / 2 / 3, 3));
  });

  it("ties at ratio 0.5 resolve like the reference (index 2 for SN = 5 and SN = 7)", () => {
    const ticks = phiTicks(4);
    // |ticks[1] − 0.5| and |ticks[2] − 0.5| differ by ~1e-16; numpy's rounding makes index 2 the nearer.
    expect(Math.abs(ticks[2] - 0.5)).toBeLessThan(Math.abs(ticks[1] - 0.5));
    expect(nearestTick(ticks, 2, 5)).toBe(2);
    expect(nearestTick(ticks, 3, 7)).toBe(2);
  });

  for (const set of goldenSets()) {
    it(`matches phi_index_per_scale and phi_ticks of the ${set} set`, () => {
      const dir = join(GOLDEN_DIR, set);
      const json = JSON.parse(readFileSync(join(dir, "cases", "tokenizer_encode.json"), "utf8"));
      const config = readTokenizerConfig(join(dir, "tokenizer"));
      expect(phiTicks(config.shareQuantResi)).toEqual(json.phi_ticks);
      const SN = config.patchNums.length;
      expect(config.patchNums.map((_, si) => nearestTick(phiTicks(config.shareQuantResi), si, SN))).toEqual(
        json.phi_index_per_scale,
      );
    });
  }

  it("a quantizer picks Phi convs for its own (possibly overridden) schedule", async () => {
    const tok = randomTokenizer(tinyConfig([1, 2, 3, 4, 5, 7, 8]));
    expect(tok.quantizer.patchNums.map((_, si) => tok.quantizer.phiIndex(si))).toEqual([0, 0, 1, 2, 2, 3, 3]);
    expect(() => tok.quantizer.phiIndex(7)).toThrow(/outside the schedule of 7 scales/);
    await tok.release();
  });
});
