import { describe, expect, it } from "vitest";
import { applyPromptFilter, blocklistFilter, DEFAULT_PROMPTS, sampleDefaultPrompts } from "../src/index";

describe("default prompts", () => {
  it("are the release's list as Python sees it (9 entries: a missing comma joins two strings)", () => {
    expect(DEFAULT_PROMPTS).toHaveLength(9);
    expect(DEFAULT_PROMPTS[1]).toMatch(/no digital painting blur\.Bright scene, aerial view/);
  });

  it("are sampled without repetition, reproducibly from the seed", () => {
    const a = sampleDefaultPrompts(4, 1);
    expect(new Set(a).size).toBe(4);
    expect(a.every((p) => DEFAULT_PROMPTS.includes(p))).toBe(true);
    expect(sampleDefaultPrompts(4, 1)).toEqual(a);
    const seeds = Array.from({ length: 8 }, (_, s) => sampleDefaultPrompts(4, s).join("|"));
    expect(new Set(seeds).size).toBeGreaterThan(1);
    expect(sampleDefaultPrompts(20, 3)).toHaveLength(9);
  });
});

describe("prompt filter", () => {
  it("blocklistFilter matches whole words, case-insensitively", () => {
    const f = blocklistFilter(["heart", "New York"]);
    expect(f.isUnsafe("A red HEART.")).toBe(true);
    expect(f.isUnsafe("a warm hearth")).toBe(false);
    expect(f.isUnsafe("skyline of new york at night")).toBe(true);
    expect(f.isUnsafe("heart-shaped")).toBe(true);
  });

  it("replaces flagged prompts (default prompt from the seed, a fixed string, or a function)", async () => {
    const f = blocklistFilter(["cat"]);
    const prompts = ["a cat", "a dog", "cat and dog"];
    const r = await applyPromptFilter(prompts, f, "default-prompt", 5);
    expect(r.replaced).toEqual([0, 2]);
    expect(r.prompts[1]).toBe("a dog");
    expect(DEFAULT_PROMPTS).toContain(r.prompts[0]);
    expect((await applyPromptFilter(prompts, f, "default-prompt", 5)).prompts).toEqual(r.prompts);
    expect((await applyPromptFilter(prompts, f, "A red heart.", 5)).prompts).toEqual([
      "A red heart.",
      "a dog",
      "A red heart.",
    ]);
    const fn = await applyPromptFilter(prompts, f, (p, i, seed) => `${i}:${seed}:${p.length}`, 9);
    expect(fn.prompts).toEqual(["0:9:5", "a dog", "2:9:11"]);
    expect((await applyPromptFilter(prompts, undefined, "x", 1)).replaced).toEqual([]);
    await expect(applyPromptFilter(prompts, f, " ", 1)).rejects.toThrow(/replacement of unsafe prompt 0 is empty/);
  });
});
