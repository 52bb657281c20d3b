import { describe, expect, it } from "vitest";
import { parseServerArgs, UsageError } from "../src/server/args";
import { validateGenerateBody } from "../src/server/validate";
import { CFG_RANGE, MAX_IMAGES, MAX_SEED, RELEASE_DEFAULTS } from "../src/shared/protocol";

const limits = { maxPromptChars: 40 };
const fixedSeed = () => 1234;

describe("validateGenerateBody", () => {
  it("fills the release defaults and draws a seed when none is given", () => {
    const r = validateGenerateBody({ prompt: "  melting apple " }, limits, fixedSeed);
    expect(r).toEqual({
      ok: true,
      settings: {
        prompt: "melting apple",
        seed: 1234,
        cfg: RELEASE_DEFAULTS.cfg,
        moreSmooth: RELEASE_DEFAULTS.moreSmooth,
        numImages: 1,
      },
    });
  });

  it("keeps a given seed unless randomizeSeed is set", () => {
    const keep = validateGenerateBody({ prompt: "a", seed: 7 }, limits, fixedSeed);
    expect(keep.ok && keep.settings.seed).toBe(7);
    const random = validateGenerateBody({ prompt: "a", seed: 7, randomizeSeed: true }, limits, fixedSeed);
    expect(random.ok && random.settings.seed).toBe(1234);
  });

  it("draws random seeds inside [0, MAX_SEED] by default", () => {
    const seeds = Array.from({ length: 50 }, () => {
      const r = validateGenerateBody({ prompt: "a", randomizeSeed: true }, limits);
      if (!r.ok) throw new Error(r.message);
      return r.settings.seed;
    });
    for (const s of seeds) expect(Number.isInteger(s) && s >= 0 && s <= MAX_SEED).toBe(true);
    expect(new Set(seeds).size).toBeGreaterThan(40);
  });

  it("accepts the limits exactly and rejects one past them", () => {
    const at = "x".repeat(40);
    expect(
      validateGenerateBody({ prompt: at, cfg: CFG_RANGE.max, numImages: MAX_IMAGES, seed: MAX_SEED }, limits).ok,
    ).toBe(true);
    expect(validateGenerateBody({ prompt: at, cfg: CFG_RANGE.min, seed: 0 }, limits).ok).toBe(true);
    const cases: [unknown, RegExp][] = [
      [{ prompt: `${at}x` }, /41 characters long; at most 40/],
      [{ prompt: "a", cfg: CFG_RANGE.max + 0.1 }, /"cfg" must be between/],
      [{ prompt: "a", cfg: 0 }, /"cfg" must be between/],
      [{ prompt: "a", numImages: MAX_IMAGES + 1 }, /"numImages" must be between 1 and 4/],
      [{ prompt: "a", numImages: 0 }, /"numImages" must be between/],
      [{ prompt: "a", seed: MAX_SEED + 1 }, /"seed" must be between 0 and 2147483647/],
      [{ prompt: "a", seed: -1 }, /"seed" must be between/],
    ];
    for (const [body, message] of cases) {
      const r = validateGenerateBody(body, limits);
      expect(r.ok, JSON.stringify(body)).toBe(false);
      if (!r.ok) expect(r.message).toMatch(message);
    }
  });

  it("counts characters as code points", () => {
    // 40 emoji are 80 UTF-16 units but 40 characters.
    expect(validateGenerateBody({ prompt: "🍎".repeat(40) }, limits).ok).toBe(true);
    expect(validateGenerateBody({ prompt: "🍎".repeat(41) }, limits).ok).toBe(false);
    // Tabs and line breaks are text, other control characters are not.
    expect(validateGenerateBody({ prompt: "a\tb\r\nc" }, limits).ok).toBe(true);
  });

  it("rejects wrong types, non-objects and unknown fields with a message naming the field", () => {
    const cases: [unknown, RegExp][] = [
      [null, /JSON object/],
      [[{ prompt: "a" }], /JSON object/],
      ["a prompt", /JSON object/],
      [{}, /"prompt" must be a string/],
      [{ prompt: "   " }, /"prompt" must not be empty/],
      [{ prompt: "a\u0000b" }, /control characters/],
      [{ prompt: "a\u001bb" }, /control characters/],
      [{ prompt: 5 }, /"prompt" must be a string/],
      [{ prompt: "a", seed: 1.5 }, /"seed" must be an integer/],
      [{ prompt: "a", seed: "42" }, /"seed" must be an integer/],
      [{ prompt: "a", cfg: "4.5" }, /"cfg" must be a number/],
      [{ prompt: "a", numImages: 2.5 }, /"numImages" must be an integer/],
      [{ prompt: "a", moreSmooth: "yes" }, /"moreSmooth" must be true or false/],
      [{ prompt: "a", randomizeSeed: 1 }, /"randomizeSeed" must be true or false/],
      [{ prompt: "a", guidance: 3 }, /unknown field "guidance"/],
    ];
    for (const [body, message] of cases) {
      const r = validateGenerateBody(body, limits);
      expect(r.ok, JSON.stringify(body)).toBe(false);
      if (!r.ok) expect(r.message).toMatch(message);
    }
  });
});

describe("parseServerArgs", () => {
  it("reads the start command's options with the release defaults", () => {
    const args = parseServerArgs(["--model", "m", "--text-model", "t"]);
    expect(args).toMatchObject({ model: "m", textModel: "t", host: "127.0.0.1", port: 7860, maxQueue: 20 });
    expect(parseServerArgs(["--model", "m", "--port", "0", "--max-queue", "3"])).toMatchObject({
      port: 0,
      maxQueue: 3,
    });
    expect(parseServerArgs(["--help"])).toBeUndefined();
  });

  it("rejects missing, unknown and malformed options", () => {
    expect(() => parseServerArgs([])).toThrow(UsageError);
    expect(() => parseServerArgs(["--model", "m", "--port", "80x"])).toThrow(/--port must be an integer/);
    expect(() => parseServerArgs(["--model", "m", "--port", "70000"])).toThrow(/--port/);
    expect(() => parseServerArgs(["--model", "m", "--bogus"])).toThrow(UsageError);
    expect(() => parseServerArgs(["--model", "m", "--blocklist", "/nonexistent/file"])).toThrow(/cannot read/);
  });
});
