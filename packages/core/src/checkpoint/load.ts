import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { HartError } from "../errors";
import { readSafetensors } from "./safetensors";
import type { StateDict } from "./state-dict";
import { readTorchBin } from "./torch-bin";

/** Options of {@link loadStateDict}. */
export interface LoadStateDictOptions {
  /**
   * File to load when `path` is a folder, e.g. `"ema_model.bin"`. Without it
   * the folder's `model.safetensors`, `model.safetensors.index.json`,
   * `pytorch_model.bin` or `pytorch_model.bin.index.json` is used, in that order.
   */
  file?: string;
  /** Keep only keys that start with this prefix (e.g. `"diffloss.net."`). */
  prefix?: string;
  /** Remove {@link LoadStateDictOptions.prefix} from the kept keys (e.g. `"vae."` → `encoder.conv_in.weight`). */
  stripPrefix?: boolean;
  /** Keep only keys for which this returns true (called with the stored, unstripped name). */
  filter?: (key: string) => boolean;
}

/** The file names a folder is searched for, in order of preference. */
export const DEFAULT_CHECKPOINT_FILES = [
  "model.safetensors",
  "model.safetensors.index.json",
  "pytorch_model.bin",
  "pytorch_model.bin.index.json",
] as const;

/**
 * The checkpoint file {@link loadStateDict} would read for `path`: `path`
 * itself if it is a file, else `options.file` or the first of
 * {@link DEFAULT_CHECKPOINT_FILES} present in the folder.
 */
export function resolveCheckpoint(path: string, options: { file?: string } = {}): string {
  if (!existsSync(path)) throw new HartError("checkpoint", `checkpoint path ${path} does not exist`);
  if (!statSync(path).isDirectory()) return path;
  if (options.file) {
    const file = join(path, options.file);
    if (!existsSync(file))
      throw new HartError("checkpoint", `${path}: checkpoint file ${options.file} not found in this folder`);
    return file;
  }
  for (const name of DEFAULT_CHECKPOINT_FILES) {
    if (existsSync(join(path, name))) return join(path, name);
  }
  const present = readdirSync(path).filter((n) => /\.(safetensors|bin|pt|pth|json)$/.test(n));
  throw new HartError(
    "checkpoint",
    `${path}: no checkpoint found (looked for ${DEFAULT_CHECKPOINT_FILES.join(", ")}; folder has ${present.join(", ") || "no candidate files"}); pass options.file to pick one`,
  );
}

/** Reads a file's first bytes to tell safetensors from a torch zip. */
function sniff(file: string): "torch" | "safetensors" | "unknown" {
  const fd = openSync(file, "r");
  try {
    const head = new Uint8Array(9);
    const n = readSync(fd, head, 0, 9, 0);
    if (n >= 2 && head[0] === 0x50 && head[1] === 0x4b) return "torch";
    if (n === 9 && head[8] === 0x7b /* "{" */) return "safetensors";
    return "unknown";
  } finally {
    closeSync(fd);
  }
}

function readFileOf(file: string, filter?: (key: string) => boolean): StateDict {
  if (file.endsWith(".index.json")) return readShardedCheckpoint(file, filter);
  if (file.endsWith(".safetensors")) return readSafetensors(file, filter);
  if (/\.(bin|pt|pth|ckpt)$/.test(file)) return readTorchBin(file, filter);
  const kind = sniff(file);
  if (kind === "safetensors") return readSafetensors(file, filter);
  if (kind === "torch") return readTorchBin(file, filter);
  throw new HartError("checkpoint", `${file}: unknown checkpoint format (expected .safetensors, .bin or .index.json)`);
}

/**
 * Reads a sharded checkpoint from its index (`model.safetensors.index.json`
 * or `pytorch_model.bin.index.json`): every shard named in `weight_map` is
 * read (only the keys it is listed for) and merged into one state dict.
 * Shards holding no wanted key are not opened.
 */
export function readShardedCheckpoint(indexFile: string, filter?: (key: string) => boolean): StateDict {
  let index: { weight_map?: unknown };
  try {
    index = JSON.parse(readFileSync(indexFile, "utf8"));
  } catch (err) {
    throw new HartError("checkpoint", `${indexFile}: cannot read the shard index (${(err as Error).message})`);
  }
  const map = index?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw new HartError("checkpoint", `${indexFile}: shard index has no "weight_map" object`);
  }
  const byShard = new Map<string, Set<string>>();
  for (const [key, shard] of Object.entries(map)) {
    if (typeof shard !== "string" || shard.includes("..") || shard.startsWith("/")) {
      throw new HartError("checkpoint", `${indexFile}: weight_map["${key}"] is not a shard file name`);
    }
    if (filter && !filter(key)) continue;
    if (!byShard.has(shard)) byShard.set(shard, new Set());
    byShard.get(shard)!.add(key);
  }
  const out: StateDict = new Map();
  const dir = dirname(indexFile);
  for (const [shard, keys] of [...byShard].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const file = join(dir, shard);
    if (!existsSync(file)) throw new HartError("checkpoint", `${indexFile}: shard ${shard} is missing`);
    const part = shard.endsWith(".safetensors")
      ? readSafetensors(file, (k) => keys.has(k))
      : readTorchBin(file, (k) => keys.has(k));
    for (const key of keys) {
      const t = part.get(key);
      if (!t) throw new HartError("checkpoint", `${indexFile}: tensor "${key}" is not in its shard ${shard}`);
      out.set(key, t);
    }
  }
  return out;
}

/**
 * Loads a state dict from a checkpoint file (`.safetensors`, PyTorch `.bin`,
 * or a sharded `*.index.json`) or from a model folder (see
 * {@link LoadStateDictOptions.file} for which file is used). Keys can be
 * selected by `prefix`/`filter` (unselected tensors are never read) and the
 * prefix stripped. Tensors keep the stored dtype.
 *
 * @example
 * const ema = loadStateDict("hart-0.7b-1024px/llm", { file: "ema_model.bin" });
 * const vae = loadStateDict("hart-0.7b-1024px/tokenizer", { prefix: "vae.", stripPrefix: true });
 */
export function loadStateDict(path: string, options: LoadStateDictOptions = {}): StateDict {
  const file = resolveCheckpoint(path, options);
  const { prefix, stripPrefix, filter } = options;
  if (stripPrefix && !prefix) throw new HartError("argument", "loadStateDict: stripPrefix needs a prefix");
  const keep =
    prefix || filter ? (k: string) => (!prefix || k.startsWith(prefix)) && (!filter || filter(k)) : undefined;
  let sd = readFileOf(file, keep);
  if (stripPrefix && prefix) sd = new Map([...sd].map(([k, t]) => [k.slice(prefix.length), t]));
  if (sd.size === 0 && keep) {
    throw new HartError(
      "missing-weight",
      `${file}: no tensor matches${prefix ? ` prefix "${prefix}"` : " the filter"}`,
    );
  }
  return sd;
}
