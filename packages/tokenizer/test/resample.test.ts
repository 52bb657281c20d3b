import { describe, expect, it } from "vitest";
import { areaMatrix, bicubicMatrix, resizeFactors } from "../src/index";
import { applySeparable, area2d, bicubic2d, pseudoRandom, relErr } from "./reference";

const plane = (h: number, w: number, seed: number) => ({ n: 2, h, w, data: pseudoRandom(2 * h * w, seed) });

describe("resampling matrices equal PyTorch's direct formulas (float64)", () => {
  // Non-divisible and degenerate sizes: upsampling by non-integer factors, 1×1 sources, identity.
  const bicubicCases: [number, number][] = [
    [13, 64],
    [1, 64],
    [3, 8],
    [7, 8],
    [5, 21],
    [64, 21],
    [8, 8],
  ];
  for (const [inS, outS] of bicubicCases) {
    it(`bicubic ${inS}→${outS}`, () => {
      const x = plane(inS, inS, inS * 31 + outS);
      const ref = bicubic2d(x, outS, outS);
      const got = applySeparable(x, bicubicMatrix(inS, outS), outS, bicubicMatrix(inS, outS), outS);
      const err = relErr(got.data, ref.data);
      console.log(`bicubic ${inS}→${outS}: rel err vs direct float64 ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-13);
    });
  }

  const areaCases: [number, number][] = [
    [64, 21],
    [64, 9],
    [13, 5],
    [8, 7],
    [8, 3],
    [64, 64],
    [64, 1],
  ];
  for (const [inS, outS] of areaCases) {
    it(`area ${inS}→${outS}`, () => {
      const x = plane(inS, inS, inS * 17 + outS);
      const ref = area2d(x, outS, outS);
      const got = applySeparable(x, areaMatrix(inS, outS), outS, areaMatrix(inS, outS), outS);
      const err = relErr(got.data, ref.data);
      console.log(`area ${inS}→${outS}: rel err vs direct float64 ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-13);
    });
  }

  it("an equal-size resize is exactly the identity (no rounding at the last scale)", () => {
    for (const mode of ["bicubic", "area"] as const) {
      const { left, rightT } = resizeFactors(mode, 8, 8);
      for (let i = 0; i < 8; i++)
        for (let j = 0; j < 8; j++) {
          expect(left.data[i * 8 + j]).toBe(i === j ? 1 : 0);
          expect(rightT.data[i * 8 + j]).toBe(i === j ? 1 : 0);
        }
    }
  });

  it("area windows overlap for non-divisible sizes (8→7 uses windows of 2)", () => {
    const m = areaMatrix(8, 7);
    expect(Array.from(m.slice(0, 8))).toEqual([0.5, 0.5, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(m.slice(8, 16))).toEqual([0, 0.5, 0.5, 0, 0, 0, 0, 0]);
  });

  it("rejects non-positive sizes", () => {
    expect(() => bicubicMatrix(0, 4)).toThrow(/positive integers/);
    expect(() => areaMatrix(4, 2.5)).toThrow(/positive integers/);
  });
});
