import { stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { HartError, readConfig } from "@hart/core";
import { downloadSnapshot, type HubOptions, isRepoId } from "./hub";

/** The official HART checkpoint (transformer + tokenizer) on the hub. */
export const DEFAULT_MODEL = "mit-han-lab/hart-0.7b-1024px";
/** The text encoder the release conditions on. */
export const DEFAULT_TEXT_MODEL = "mit-han-lab/Qwen2-VL-1.5B-Instruct";

/** `model_type` values of the configs hart loads. */
export const MODEL_TYPES = {
  /** Accepted `model_type` of the transformer's `llm/config.json`. */
  transformer: ["hart_transformer_t2i"],
  /** Accepted `model_type` values of the image tokenizer's `tokenizer/config.json`. */
  tokenizer: ["hart_autoencoder_with_disc", "hart_autoencoder"],
} as const;

/** The folders of one HART model in the official layout. */
export interface HartModelFolders {
  /** The folder given (or the snapshot it resolved to). */
  root: string;
  /** The transformer (+ diffusion head) checkpoint: `<model>/llm`. */
  llmDir: string;
  /** The image tokenizer checkpoint: `<model>/tokenizer`. */
  tokenizerDir: string;
  /** `<model>/text_model` when the model ships its own text encoder (tiny test models do). */
  textModelDir?: string;
  /** `llm/config.json`. */
  llmConfig: Record<string, unknown>;
  /** `tokenizer/config.json`. */
  tokenizerConfig: Record<string, unknown>;
}

/**
 * Turns a local path or a hub repo id into a local folder: an existing path wins; a string shaped like
 * `org/name` that is not a path is fetched into (or found in) the Hugging Face cache.
 */
export async function resolveSource(source: string, what: string, hub: HubOptions = {}): Promise<string> {
  if (!source || typeof source !== "string") throw new HartError("argument", `${what}: no folder or repo id given`);
  const path = resolve(source);
  const info = await stat(path).catch(() => undefined);
  if (info) {
    if (!info.isDirectory()) throw new HartError("model-layout", `${what}: ${path} is a file, expected a model folder`);
    return path;
  }
  if (!isRepoId(source)) {
    throw new HartError("model-not-found", `${what}: folder ${path} does not exist`);
  }
  try {
    return await downloadSnapshot(source, hub);
  } catch (error) {
    if (error instanceof HartError && error.code === "hub-not-found") {
      throw new HartError(
        "model-not-found",
        `${what}: "${source}" is neither a local folder (${path} does not exist) nor a repository on the hub`,
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * Finds the transformer and tokenizer folders of a HART model: `<dir>/llm` + `<dir>/tokenizer` (the
 * official layout), or `<dir>` itself being the `llm` folder with `../tokenizer` beside it (what the
 * release's `--model_path` points at). Checks both configs' `model_type`.
 */
export async function locateModelFolders(dir: string): Promise<HartModelFolders> {
  const root = resolve(dir);
  let llmDir = join(root, "llm");
  let tokenizerDir = join(root, "tokenizer");
  if (!(await isFile(join(llmDir, "config.json")))) {
    const own = (await isFile(join(root, "config.json"))) ? readConfig(root) : undefined;
    if (own && MODEL_TYPES.transformer.includes(own.model_type as never)) {
      llmDir = root;
      tokenizerDir = join(dirname(root), "tokenizer");
    } else if (own) {
      throw new HartError(
        "config",
        `${join(root, "config.json")}: model_type ${JSON.stringify(own.model_type)} — this is not a HART model ` +
          `folder (expected llm/ and tokenizer/ inside it, or the llm folder itself)`,
      );
    } else {
      throw new HartError(
        "model-layout",
        `${root} is not a HART model folder: expected llm/config.json and tokenizer/config.json inside it ` +
          `(the layout of ${DEFAULT_MODEL})`,
      );
    }
  }
  const llmConfig = readConfig(llmDir, { modelType: MODEL_TYPES.transformer });
  if (!(await isFile(join(tokenizerDir, "config.json")))) {
    throw new HartError("model-layout", `${root}: missing ${join(tokenizerDir, "config.json")} (the image tokenizer)`);
  }
  const tokenizerConfig = readConfig(tokenizerDir, { modelType: MODEL_TYPES.tokenizer });
  const textModelDir = join(llmDir === root ? dirname(root) : root, "text_model");
  return {
    root,
    llmDir,
    tokenizerDir,
    textModelDir: (await isFile(join(textModelDir, "config.json"))) ? textModelDir : undefined,
    llmConfig,
    tokenizerConfig,
  };
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}
