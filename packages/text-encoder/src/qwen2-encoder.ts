import { join } from "node:path";
import {
  createSession,
  emitProgress,
  graphForm,
  HartError,
  type Session,
  type SessionOptions,
  type StateDict,
  type Tensor,
  tensor,
} from "@hart/core";
import { type Qwen2Config, readQwen2Config } from "./config";
import { PromptTokenizer } from "./prompt-tokenizer";
import { buildQwen2Part, PART_IO } from "./qwen2-graph";
import { HART_SYSTEM_PROMPT } from "./system-prompt";
import type { EncodedPrompts, EncodeOptions, TextEncoder, TextEncoderLoadOptions } from "./types";
import { checkpointSource, type PartPlan, planParts, stateDictSource, takePart, type WeightSource } from "./weights";

/** The release's `max_token_length`. */
export const DEFAULT_MAX_TOKEN_LENGTH = 300;

const DEFAULT_PART_BYTES = 128 * 2 ** 20;

/** 16-bit weights must stay 16-bit: constant folding would turn their Casts into float32 copies. */
const SIXTEEN_BIT_SESSION: SessionOptions = {
  graphOptimizationLevel: "extended",
  config: { "optimization.disable_specified_optimizers": "ConstantFolding" },
};

interface Part {
  plan: PartPlan;
  session: Session;
}

/** Options of {@link Qwen2TextEncoder.fromWeights}. */
export interface Qwen2FromWeightsOptions extends TextEncoderLoadOptions {
  /** The prompt tokenizer; without one only the id-level entry points work. */
  tokenizer?: PromptTokenizer;
  /** Names the weights in error messages (default `"weights"`). */
  sourceName?: string;
}

/** Options of {@link Qwen2TextEncoder.fromPretrained}. */
export interface Qwen2FromPretrainedOptions extends TextEncoderLoadOptions {
  /** Checkpoint file inside the folder (default: what `loadStateDict` finds: `model.safetensors`, shards, `pytorch_model.bin`). */
  weightsFile?: string;
  /** Folder with `tokenizer.json` / `tokenizer_config.json` (default: the model folder). */
  tokenizerDir?: string;
}

function toBoolMask(maskBS: Tensor, what: string): Tensor<"bool"> {
  if (maskBS.dtype === "bool") return maskBS as Tensor<"bool">;
  if (maskBS.dtype === "uint8" || maskBS.dtype === "int32" || maskBS.dtype === "int64") {
    const src = maskBS.data as ArrayLike<number | bigint>;
    const out = new Uint8Array(src.length);
    for (let i = 0; i < src.length; i++) out[i] = Number(src[i]) !== 0 ? 1 : 0;
    return tensor("bool", maskBS.shape, out);
  }
  throw new HartError("argument", `${what}: expected a bool or integer mask, got ${maskBS.dtype}`);
}

/**
 * HART's text encoder: a Qwen2 language model (Hugging Face `Qwen2Model`)
 * whose last hidden state, after the final RMSNorm, conditions the image
 * transformer. {@link encode} reproduces the release's `encode_prompts`:
 * tokenize, truncate and pad every prompt to `maxTokenLength`, prepend the
 * system prompt's tokens, run the model with HF's default positions and a
 * causal + padding mask, keep the prompt positions.
 *
 * The model is compiled in parts of bounded size (see
 * {@link TextEncoderLoadOptions.partBytes}): onnxruntime copies the weights it
 * is given, so each part's weights are released from JavaScript as soon as its
 * session exists, and the full model is never held twice.
 *
 * @example
 * ```ts
 * const encoder = await Qwen2TextEncoder.fromPretrained("Qwen2-VL-1.5B-Instruct");
 * const { contextBLD, mask, positionIds } = await encoder.encode(["a red fox in the snow"]);
 * await encoder.release();
 * ```
 */
export class Qwen2TextEncoder implements TextEncoder {
  /** The model's config. */
  readonly config: Qwen2Config;
  /** The prompt tokenizer, when the encoder has one. */
  readonly tokenizer: PromptTokenizer | null;
  /** The system prompt {@link encode} prepends by default. */
  readonly systemPrompt: string;
  private parts: Part[] | null;

  private constructor(config: Qwen2Config, parts: Part[], tokenizer: PromptTokenizer | null, systemPrompt: string) {
    this.config = config;
    this.parts = parts;
    this.tokenizer = tokenizer;
    this.systemPrompt = systemPrompt;
  }

  /** Width D of the hidden states. */
  get hiddenSize(): number {
    return this.config.hiddenSize;
  }

  /**
   * Loads a Qwen2 text model folder: `config.json` (`model_type: "qwen2"`),
   * the tokenizer files and the weights (`model.safetensors`, sharded
   * safetensors or `pytorch_model.bin`; keys with or without the `model.`
   * prefix; `lm_head` is ignored). Missing files, keys or wrong shapes throw a
   * {@link @hart/core!HartError} naming them.
   */
  static async fromPretrained(dir: string, options: Qwen2FromPretrainedOptions = {}): Promise<Qwen2TextEncoder> {
    const config = readQwen2Config(dir);
    const tokenizer = PromptTokenizer.fromDir(options.tokenizerDir ?? dir);
    return Qwen2TextEncoder.fromWeights(config, checkpointSource(dir, options.weightsFile), {
      ...options,
      tokenizer,
      sourceName: options.weightsFile ? join(dir, options.weightsFile) : dir,
    });
  }

  /**
   * Builds an encoder from a config and weights: a state dict (keys as in
   * `Qwen2Model`, optionally prefixed `model.`) or a {@link WeightSource}
   * that is asked for a few keys at a time. With a source, each part's
   * tensors are dropped as soon as onnxruntime holds its own copy, which is
   * what keeps peak memory near one copy of the weights; a state dict stays
   * alive as long as the caller keeps it.
   */
  static async fromWeights(
    config: Qwen2Config,
    weights: StateDict | WeightSource,
    options: Qwen2FromWeightsOptions = {},
  ): Promise<Qwen2TextEncoder> {
    const dtype = options.dtype ?? "float32";
    if (!["float32", "float16", "bfloat16", "int8"].includes(dtype)) {
      throw new HartError(
        "argument",
        `dtype must be "float32", "float16", "bfloat16" or "int8", got ${JSON.stringify(dtype)}`,
      );
    }
    // int8 quantizes float32 weights part by part as each part's graph is built
    const storage = dtype === "int8" ? "float32" : dtype;
    const source = typeof weights === "function" ? weights : stateDictSource(weights);
    const plans = planParts(config, storage, options.partBytes ?? DEFAULT_PART_BYTES);
    const sessionOptions: SessionOptions = {
      device: options.device,
      intraOpThreads: options.intraOpThreads,
      // Many sessions run one after another: an arena per session would keep each one's activations resident.
      enableCpuMemArena: false,
      ...(storage === "float32" ? {} : SIXTEEN_BIT_SESSION),
    };
    const form = graphForm({
      device: options.device,
      graphFlavour: options.graphFlavour,
      linear: dtype === "int8" ? "int8" : undefined,
    });
    const parts: Part[] = [];
    const started = performance.now();
    try {
      for (const plan of plans) {
        const model = buildQwen2Part(
          config,
          takePart(config, plan, source, storage, options.sourceName ?? "weights"),
          form,
        );
        parts.push({
          plan,
          session: await createSession(model, { ...sessionOptions, label: `text encoder part ${parts.length}` }),
        });
        const layers = plan.numLayers > 0 ? `layers ${plan.firstLayer}-${plan.firstLayer + plan.numLayers - 1}` : "";
        emitProgress(options.onProgress, {
          stage: "text-encoder:load",
          step: parts.length,
          total: plans.length,
          message: `part ${parts.length}/${plans.length}: ${[plan.embed ? "embedding" : "", layers, plan.finalNorm ? "final norm" : ""].filter(Boolean).join(", ")}`,
          elapsedSeconds: (performance.now() - started) / 1000,
        });
      }
    } catch (err) {
      for (const p of parts) await p.session.release();
      throw err;
    }
    return new Qwen2TextEncoder(config, parts, options.tokenizer ?? null, options.systemPrompt ?? HART_SYSTEM_PROMPT);
  }

  private live(): Part[] {
    if (!this.parts) throw new HartError("released", "Qwen2TextEncoder: used after release()");
    return this.parts;
  }

  /**
   * The raw model: `Qwen2Model(input_ids, attention_mask).last_hidden_state`
   * with position ids 0..S−1, for `idsBS` `[B, S]` (int64) and `maskBS`
   * `[B, S]` (bool or integer, nonzero = may be attended to). Returns
   * positions `from..S−1` (default all): `[B, S − from, D]`.
   */
  async encodeIds(idsBS: Tensor, maskBS: Tensor, options: { from?: number } = {}): Promise<Tensor<"float32">> {
    const parts = this.live();
    if (idsBS.dtype !== "int64" || idsBS.shape.length !== 2) {
      throw new HartError(
        "argument",
        `encodeIds: ids must be an int64 [B, S] tensor, got ${idsBS.dtype} [${idsBS.shape}]`,
      );
    }
    const [B, S] = idsBS.shape;
    if (B === 0 || S === 0) throw new HartError("argument", `encodeIds: ids [${idsBS.shape}] are empty`);
    if (maskBS.shape.length !== 2 || maskBS.shape[0] !== B || maskBS.shape[1] !== S) {
      throw new HartError(
        "argument",
        `encodeIds: mask has shape [${maskBS.shape}], expected [${B}, ${S}] like the ids`,
      );
    }
    const from = options.from ?? 0;
    if (!Number.isInteger(from) || from < 0 || from >= S) {
      throw new HartError("argument", `encodeIds: from must be an integer in [0, ${S - 1}], got ${from}`);
    }
    const vocab = BigInt(this.config.vocabSize);
    for (const id of idsBS.data as BigInt64Array) {
      if (id < 0n || id >= vocab)
        throw new HartError("argument", `encodeIds: token id ${id} is outside the vocabulary [0, ${vocab})`);
    }
    const window = this.config.slidingWindow;
    if (window !== null && S > window) {
      throw new HartError(
        "unsupported",
        `encodeIds: ${S} tokens exceed the model's sliding window (${window}), which is not implemented`,
      );
    }
    const mask = toBoolMask(maskBS, "encodeIds");
    let hidden: Tensor | null = null;
    for (const { plan, session } of parts) {
      const feeds: Record<string, Tensor> = plan.embed ? { [PART_IO.ids]: idsBS } : { [PART_IO.hiddenIn]: hidden! };
      if (plan.numLayers > 0) feeds[PART_IO.mask] = mask;
      if (plan.finalNorm) feeds[PART_IO.from] = tensor("int64", [1], BigInt64Array.of(BigInt(from)));
      const out = await session.run(feeds);
      hidden = plan.finalNorm ? out[PART_IO.last] : out[PART_IO.hiddenOut];
    }
    return hidden as Tensor<"float32">;
  }

  /**
   * `encode_prompts` from token ids: `tokensBL` `[B, L]` are the padded prompt
   * ids; the mask is `tokens != padId` and, with `systemIds`, those ids are
   * prepended to every row (mask 1) and their positions dropped.
   */
  async encodeTokenIds(
    tokensBL: Tensor<"int64">,
    options: { padId: number; systemIds?: readonly number[] | null },
  ): Promise<EncodedPrompts> {
    if (tokensBL.dtype !== "int64" || tokensBL.shape.length !== 2) {
      throw new HartError(
        "argument",
        `encodeTokenIds: tokens must be int64 [B, L], got ${tokensBL.dtype} [${tokensBL.shape}]`,
      );
    }
    const [B, L] = tokensBL.shape;
    const pad = BigInt(options.padId);
    const tokens = tokensBL.data;
    const mask = new Uint8Array(B * L);
    const positions = new BigInt64Array(B * L);
    for (let b = 0; b < B; b++) {
      let count = 0n;
      for (let i = b * L; i < (b + 1) * L; i++) {
        mask[i] = tokens[i] !== pad ? 1 : 0;
        count += BigInt(mask[i]);
        positions[i] = count - 1n;
      }
    }
    const sys = options.systemIds ?? [];
    const Ls = sys.length;
    const ids = new BigInt64Array(B * (Ls + L));
    const full = new Uint8Array(B * (Ls + L));
    for (let b = 0; b < B; b++) {
      const row = b * (Ls + L);
      sys.forEach((id, i) => {
        ids[row + i] = BigInt(id);
        full[row + i] = 1;
      });
      ids.set(tokens.subarray(b * L, (b + 1) * L), row + Ls);
      full.set(mask.subarray(b * L, (b + 1) * L), row + Ls);
    }
    const contextBLD = await this.encodeIds(tensor("int64", [B, Ls + L], ids), tensor("bool", [B, Ls + L], full), {
      from: Ls,
    });
    return {
      contextBLD,
      mask: tensor("bool", [B, L], mask),
      positionIds: tensor("int64", [B, L], positions),
      tokens: tokensBL,
    };
  }

  /**
   * Encodes prompts exactly like the release's `encode_prompts`: each prompt
   * is tokenized by the model's own tokenizer, truncated and padded to
   * `maxTokenLength` (default 300); with `useSystemPrompt` (default true) the
   * system prompt's tokens (truncated to `maxTokenLength`, not padded) run in
   * front of every prompt.
   */
  async encode(prompts: readonly string[], options: EncodeOptions = {}): Promise<EncodedPrompts> {
    this.live();
    if (!Array.isArray(prompts) || prompts.length === 0) {
      throw new HartError("argument", "encode: expected a non-empty array of prompt strings");
    }
    prompts.forEach((p, i) => {
      if (typeof p !== "string")
        throw new HartError("argument", `encode: prompts[${i}] is ${typeof p}, expected a string`);
    });
    const L = options.maxTokenLength ?? DEFAULT_MAX_TOKEN_LENGTH;
    if (!Number.isInteger(L) || L < 1) {
      throw new HartError("argument", `encode: maxTokenLength must be a positive integer, got ${L}`);
    }
    const tokenizer = this.tokenizer;
    if (!tokenizer) {
      throw new HartError(
        "argument",
        "encode: this encoder has no tokenizer (load it with fromPretrained, or pass one)",
      );
    }
    const tokens = tokenizer.batch(prompts, L);
    const systemIds = (options.useSystemPrompt ?? true) ? tokenizer.tokenize(this.systemPrompt, L) : null;
    return this.encodeTokenIds(tokens, { padId: tokenizer.settings.padId, systemIds });
  }

  /** Frees every onnxruntime session. */
  async release(): Promise<void> {
    const parts = this.parts;
    this.parts = null;
    for (const p of parts ?? []) await p.session.release();
  }
}
