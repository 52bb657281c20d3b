/**
 * The random release-shaped pipeline's cheap parts: the text encoder stand-in (release shapes, one fixed context
 * per batch size) and argument checks. Building the 732M-parameter model itself is left to the benches.
 */
import { HartError } from "@hart/core";
import { describe, expect, it } from "vitest";
import { fixedContextEncoder, randomReleasePipeline } from "../src/index";

describe("fixedContextEncoder", () => {
  it("gives every batch the release's context shapes, 48 valid tokens a row, the same tensors on every call", async () => {
    const enc = fixedContextEncoder(300, 1536);
    expect(enc.hiddenSize).toBe(1536);
    const two = await enc.encode(["a", "b"]);
    expect(two.contextBLD.shape).toEqual([2, 300, 1536]);
    expect(two.mask.shape).toEqual([2, 300]);
    const mask = Array.from(two.mask.data as Uint8Array);
    for (const row of [0, 1]) {
      expect(mask.slice(row * 300, row * 300 + 48).every((m) => m === 1)).toBe(true);
      expect(mask.slice(row * 300 + 48, (row + 1) * 300).every((m) => m === 0)).toBe(true);
    }
    expect(Number(two.positionIds.data[299])).toBe(47);
    expect(await enc.encode(["c", "d"])).toBe(two);
    expect((await enc.encode(["e"])).contextBLD.shape).toEqual([1, 300, 1536]);
    await expect(enc.encode([])).rejects.toThrow(/at least one prompt/);
  });
});

describe("randomReleasePipeline", () => {
  it("refuses a resolution off the 16-pixel grid or above 1024, naming it", async () => {
    for (const resolution of [1000, 0, 2048]) {
      const err = await randomReleasePipeline({ resolution }).catch((e) => e);
      expect(err).toBeInstanceOf(HartError);
      expect(err.message).toMatch(new RegExp(`got ${resolution}$`));
    }
  });
});
