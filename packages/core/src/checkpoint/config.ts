import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { HartError } from "../errors";

/** A parsed Hugging Face `config.json`. */
export type ModelConfig = Record<string, unknown>;

/** Options of {@link readConfig}. */
export interface ReadConfigOptions {
  /** Accepted `model_type` value(s); another value (or none) is an error. */
  modelType?: string | readonly string[];
  /** File name inside the folder (default `config.json`). */
  file?: string;
}

/**
 * Reads a model folder's Hugging Face `config.json` (or `path` itself when it
 * is a `.json` file). Throws a {@link HartError} naming the file when it is
 * missing, is not valid JSON, is not a JSON object, or (with
 * `options.modelType`) has another `model_type`.
 */
export function readConfig<T extends ModelConfig = ModelConfig>(path: string, options: ReadConfigOptions = {}): T {
  const file = existsSync(path) && statSync(path).isFile() ? path : join(path, options.file ?? "config.json");
  if (!existsSync(file)) {
    throw new HartError("config", `${file} not found: a model folder needs its Hugging Face config.json`);
  }
  let config: unknown;
  try {
    config = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new HartError("config", `${file} is not valid JSON (${(err as Error).message})`);
  }
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new HartError(
      "config",
      `${file} must hold a JSON object, found ${Array.isArray(config) ? "an array" : typeof config}`,
    );
  }
  if (options.modelType !== undefined) {
    const ok = typeof options.modelType === "string" ? [options.modelType] : options.modelType;
    const found = (config as ModelConfig).model_type;
    if (typeof found !== "string" || !ok.includes(found)) {
      throw new HartError(
        "config",
        `${file}: model_type is ${found === undefined ? "missing" : JSON.stringify(found)}, expected ${ok.map((m) => JSON.stringify(m)).join(" or ")}`,
      );
    }
  }
  return config as T;
}
