/**
 * Loading the official llm/ folder (golden `main` set): both weight formats
 * give the same tensors, EMA weights are loaded over the base ones by default
 * (and only they reproduce the reference's logits), a missing EMA file is a
 * clear error.
 */
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HartError, loadStateDict, type Tensor } from "@hart/core";
import { HartTokenizer } from "@hart/tokenizer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HartTransformer, loadTransformerStateDict } from "../src/index";

const GOLDEN = process.env.HART_GOLDEN_DIR ?? join(import.meta.dirname, "../../../../shared/golden");
const SET = join(GOLDEN, "main");
const LLM = join(SET, "llm");

function sameTensors(a: Map<string, Tensor>, b: Map<string, Tensor>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, t] of a) {
    const u = b.get(k);
    if (!u || u.dtype !== t.dtype || u.shape.join() !== t.shape.join()) return false;
    if (
      Buffer.compare(
        Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
        Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength),
      ) !== 0
    )
      return false;
  }
  return true;
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

describe("loading llm/", () => {
  it("reads the same tensors from model.safetensors and pytorch_model.bin, without the diffusion head", () => {
    const st = loadTransformerStateDict(LLM, { useEma: false });
    const bin = loadTransformerStateDict(LLM, { useEma: false, weightsFile: "pytorch_model.bin" });
    expect(sameTensors(st, bin)).toBe(true);
    expect([...st.keys()].some((k) => k.startsWith("diffloss.") || k === "attn_bias_for_masking")).toBe(false);
    expect(st.has("head.weight")).toBe(true);
  });

  it("loads ema_model.bin over the base weights by default", () => {
    const ema = loadTransformerStateDict(LLM);
    const direct = loadStateDict(LLM, {
      file: "ema_model.bin",
      filter: (k) => !k.startsWith("diffloss.") && k !== "attn_bias_for_masking" && k !== "lvl_1L",
    });
    expect(sameTensors(ema, direct)).toBe(true);
    const base = loadTransformerStateDict(LLM, { useEma: false });
    expect(sameTensors(ema, base)).toBe(false);
  });

  it("fails clearly without ema_model.bin unless useEma is false", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hart-ar-"));
    try {
      for (const f of ["config.json", "model.safetensors"]) copyFileSync(join(LLM, f), join(dir, f));
      const err = (() => {
        try {
          loadTransformerStateDict(dir);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(HartError);
      expect((err as Error).message).toMatch(/ema_model\.bin.*useEma: false/);
      expect(loadTransformerStateDict(dir, { useEma: false }).size).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("EMA weights reproduce the reference", () => {
  let tokenizer: HartTokenizer;
  beforeAll(async () => {
    tokenizer = await HartTokenizer.fromPretrained(join(SET, "tokenizer"));
  });
  afterAll(() => tokenizer.release());

  it("matches the recorded first-scale logits with EMA weights only, from either base format", async () => {
    const ref = loadStateDict(join(SET, "cases", "ar_generate.safetensors"));
    const context = {
      contextBLD: ref.get("context") as Tensor<"float32">,
      mask: ref.get("context_mask") as Tensor<"uint8">,
      positionIds: ref.get("context_position_ids") as Tensor<"int64">,
    };
    const expected = ref.get("s0.logits")!.data as Float32Array;
    const firstLogits = async (options: Parameters<typeof HartTransformer.fromPretrained>[2]) => {
      const model = await HartTransformer.fromPretrained(LLM, tokenizer.quantizer, options);
      let logits: Float32Array | undefined;
      await model
        .generate(context, {
          cfg: 4.5,
          replay: { indices: [ref.get("s0.idx") as Tensor<"int64">] },
          trace: (name, t) => {
            if (name === "s0.logits") {
              logits = t.data as Float32Array;
              throw new Error("stop"); // only the first scale is needed
            }
          },
        })
        .catch((e) => {
          if ((e as Error).message !== "stop") throw e;
        });
      await model.release();
      return logits!;
    };
    expect(relErr(await firstLogits({}), expected)).toBeLessThan(1e-5);
    expect(relErr(await firstLogits({ weightsFile: "pytorch_model.bin" }), expected)).toBeLessThan(1e-5);
    expect(relErr(await firstLogits({ useEma: false }), expected)).toBeGreaterThan(1e-3);
  });
});
