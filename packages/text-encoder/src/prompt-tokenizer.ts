import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { HartError, type Tensor, tensor } from "@hart/core";
import { Tokenizer } from "@huggingface/tokenizers";

/** Which end of a token sequence padding or truncation applies to. */
export type SequenceSide = "left" | "right";

/** What `tokenizer_config.json` says about padding and truncation, resolved. */
export interface PromptTokenizerSettings {
  /** Id of the pad token (`pad_token` of tokenizer_config.json). */
  padId: number;
  /** Where padding goes (`padding_side`, default `"right"` as in `transformers`). */
  paddingSide: SequenceSide;
  /** Which end truncation cuts (`truncation_side`, default `"right"`). */
  truncationSide: SequenceSide;
}

function readJsonFile(file: string, what: string): Record<string, unknown> {
  if (!existsSync(file)) throw new HartError("tokenizer", `${file} not found: ${what}`);
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8"));
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not a JSON object");
    return parsed;
  } catch (err) {
    throw new HartError("tokenizer", `${file} is not a valid JSON object (${(err as Error).message})`);
  }
}

function side(config: Record<string, unknown>, key: string, file: string): SequenceSide {
  const v = config[key] ?? "right";
  if (v !== "left" && v !== "right") {
    throw new HartError("tokenizer", `${file}: "${key}" must be "left" or "right", found ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * A model folder's own Hugging Face tokenizer (`tokenizer.json` +
 * `tokenizer_config.json`, run by `@huggingface/tokenizers`) with the
 * fixed-length batching HART uses: `tokenizer(text, padding="max_length",
 * max_length=L, truncation=True)` per prompt.
 */
export class PromptTokenizer {
  /** Padding and truncation settings from tokenizer_config.json. */
  readonly settings: PromptTokenizerSettings;

  private constructor(
    private readonly inner: Tokenizer,
    settings: PromptTokenizerSettings,
  ) {
    this.settings = settings;
  }

  /**
   * Loads `<dir>/tokenizer.json` and `<dir>/tokenizer_config.json`. Throws a
   * {@link @hart/core!HartError} naming the file when one is missing or malformed, or
   * when the config names no pad token that the vocabulary knows.
   */
  static fromDir(dir: string): PromptTokenizer {
    const jsonFile = join(dir, "tokenizer.json");
    const configFile = join(dir, "tokenizer_config.json");
    const tokenizerJson = readJsonFile(jsonFile, "the text model folder needs its Hugging Face tokenizer.json");
    const config = readJsonFile(configFile, "the text model folder needs its tokenizer_config.json");
    return PromptTokenizer.fromJson(tokenizerJson, config, dir);
  }

  /** Builds the tokenizer from the parsed `tokenizer.json` and `tokenizer_config.json` (`source` names them in errors). */
  static fromJson(
    tokenizerJson: Record<string, unknown>,
    config: Record<string, unknown>,
    source = "tokenizer",
  ): PromptTokenizer {
    let inner: Tokenizer;
    try {
      inner = new Tokenizer(tokenizerJson, config);
    } catch (err) {
      throw new HartError("tokenizer", `${source}: cannot build the tokenizer (${(err as Error).message})`, {
        cause: err,
      });
    }
    const pad = config.pad_token;
    const padToken = typeof pad === "string" ? pad : (pad as { content?: unknown } | null | undefined)?.content;
    if (typeof padToken !== "string") {
      throw new HartError("tokenizer", `${source}: tokenizer_config.json has no pad_token; HART pads prompts with it`);
    }
    const padId = inner.token_to_id(padToken);
    if (padId === undefined) {
      throw new HartError("tokenizer", `${source}: pad_token ${JSON.stringify(padToken)} is not in the vocabulary`);
    }
    return new PromptTokenizer(inner, {
      padId,
      paddingSide: side(config, "padding_side", source),
      truncationSide: side(config, "truncation_side", source),
    });
  }

  /** Token ids of one text (with whatever the tokenizer's post-processor adds; nothing for Qwen2), truncated to `maxLength`. */
  tokenize(text: string, maxLength = Number.POSITIVE_INFINITY): number[] {
    if (typeof text !== "string") throw new HartError("argument", `tokenize: expected a string, got ${typeof text}`);
    const ids = this.inner.encode(text).ids;
    if (ids.length <= maxLength) return ids;
    return this.settings.truncationSide === "right" ? ids.slice(0, maxLength) : ids.slice(ids.length - maxLength);
  }

  /** Tokenizes each text, truncated and padded to exactly `length` tokens: `[texts.length, length]`. */
  batch(texts: readonly string[], length: number): Tensor<"int64"> {
    const { padId, paddingSide } = this.settings;
    const out = new BigInt64Array(texts.length * length).fill(BigInt(padId));
    texts.forEach((text, b) => {
      const ids = this.tokenize(text, length);
      const start = b * length + (paddingSide === "right" ? 0 : length - ids.length);
      ids.forEach((id, i) => {
        out[start + i] = BigInt(id);
      });
    });
    return tensor("int64", [texts.length, length], out);
  }

  /** Text of a list of ids (special tokens kept). */
  decode(ids: readonly number[]): string {
    return this.inner.decode([...ids], { skip_special_tokens: false });
  }
}
