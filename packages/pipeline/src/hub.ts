import { copyFile, lstat, mkdir, open, readFile, rename, rm, stat, symlink, unlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, relative, resolve, sep } from "node:path";
import { emitProgress, HartError, type OnProgress, type ProgressEvent } from "@hart/core";
import { fileDownloadInfo, getRepoFolderName, HubApiError, listFiles, modelInfo } from "@huggingface/hub";

/** The hub the library talks to unless `hubUrl` or `HF_ENDPOINT` says otherwise. */
export const DEFAULT_HUB_URL = "https://huggingface.co";

/** Progress of a hub download (core's `ProgressEvent`): one event per chunk written, per file started/finished/skipped. */
export interface DownloadProgressEvent extends ProgressEvent {
  readonly stage: "download";
  /** `"start"` / `"progress"` / `"done"` per file; `"cached"` when the file was already in the cache. */
  readonly phase: "start" | "progress" | "done" | "cached";
  /** The repository id. */
  readonly repo: string;
  /** The file's path inside the repository. */
  readonly file: string;
  /** Bytes of this file present in the cache so far (resumed bytes included). */
  readonly loadedBytes: number;
  /** Size of this file. */
  readonly totalBytes: number;
  /** Bytes of the whole snapshot present so far. */
  readonly snapshotLoadedBytes: number;
  /** Size of the whole snapshot (the selected files). */
  readonly snapshotTotalBytes: number;
}

/** Where and how to reach the Hugging Face hub and its cache; every field has an environment default. */
export interface HubOptions {
  /** Branch, tag or commit (default `"main"`). */
  revision?: string;
  /** Cache root in the standard layout (default `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`). */
  cacheDir?: string;
  /** Never touch the network; fail clearly when the snapshot is not cached (also when `HF_HUB_OFFLINE=1`). */
  localFilesOnly?: boolean;
  /** Access token (default `$HF_TOKEN`, else the token file `$HF_HOME/token`). */
  token?: string;
  /** Hub endpoint (default `$HF_ENDPOINT`, else https://huggingface.co). */
  hubUrl?: string;
  /** Only files whose path matches one of these are fetched (`*` matches within a path segment, `**` across). */
  allowPatterns?: readonly string[];
  /** Automatic retries (with resume) of a file whose transfer broke off (default 3). */
  maxRetries?: number;
  /** Cancels the download; what was fetched so far stays in the cache and is resumed next time. */
  signal?: AbortSignal;
  /** Per-chunk progress. */
  onProgress?: (event: DownloadProgressEvent) => void;
  /** The `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
}

/** The Hugging Face cache root, as Python's `huggingface_hub` computes it. */
export function hubCacheDir(): string {
  const env = process.env;
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HUGGINGFACE_HUB_CACHE) return env.HUGGINGFACE_HUB_CACHE;
  return join(hfHome(), "hub");
}

function hfHome(): string {
  const env = process.env;
  return env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "huggingface");
}

/** The access token from `HF_TOKEN` (or the legacy `HUGGING_FACE_HUB_TOKEN`), else the token file Python's login writes. */
export async function hubToken(): Promise<string | undefined> {
  const env = process.env;
  const fromEnv = env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  if (fromEnv?.trim()) return fromEnv.trim();
  try {
    const text = (await readFile(env.HF_TOKEN_PATH ?? join(hfHome(), "token"), "utf8")).trim();
    return text || undefined;
  } catch {
    return undefined;
  }
}

/** True for strings shaped like a hub repo id (`org/name`), the only form hart accepts for hub models. */
export function isRepoId(value: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/.test(value) && !value.includes("..");
}

const COMMIT = /^[0-9a-f]{40}$/;
/** Upper bound of a repository listing (entries); model repositories have a few dozen. */
const MAX_LISTED_ENTRIES = 100_000;

function repoFolder(cacheDir: string, repo: string): string {
  return join(cacheDir, getRepoFolderName({ type: "model", name: repo }));
}

/**
 * The cached snapshot folder of `repo` at `revision` without any network access, or `undefined`
 * when it is not in the cache. Branch and tag names go through `refs/<revision>`, as Python writes them.
 */
export async function cachedSnapshot(
  repo: string,
  options: { revision?: string; cacheDir?: string } = {},
): Promise<string | undefined> {
  const folder = repoFolder(options.cacheDir ?? hubCacheDir(), repo);
  const revision = options.revision ?? "main";
  let commit = revision;
  if (!COMMIT.test(revision)) {
    try {
      commit = (await readFile(join(folder, "refs", revision), "utf8")).trim();
    } catch {
      return undefined;
    }
  }
  const snapshot = join(folder, "snapshots", commit);
  return (await exists(snapshot)) ? snapshot : undefined;
}

/**
 * Downloads a model repository into the standard Hugging Face cache (`models--org--name/blobs`,
 * `snapshots/<commit>/…` symlinks, `refs/<branch>`) and returns the snapshot folder. Files already
 * there — from an earlier run or from Python tools — are not fetched again; a partial
 * `blobs/<etag>.incomplete` is resumed with a range request.
 */
export async function downloadSnapshot(repo: string, options: HubOptions = {}): Promise<string> {
  if (!isRepoId(repo)) {
    throw new HartError("argument", `download: "${repo}" is not a hub repository id (expected "org/name")`);
  }
  const cacheDir = resolve(options.cacheDir ?? hubCacheDir());
  const revision = options.revision ?? "main";
  const offline = options.localFilesOnly || isTruthy(process.env.HF_HUB_OFFLINE);
  if (offline) {
    const cached = await cachedSnapshot(repo, { revision, cacheDir });
    if (cached) return cached;
    throw new HartError(
      "not-cached",
      `${repo}@${revision} is not in the Hugging Face cache ${cacheDir} and local-files-only mode forbids downloading it ` +
        `(download it first, e.g. \`hart download ${repo}\`, or point to a local folder)`,
    );
  }

  const hubUrl = (options.hubUrl ?? process.env.HF_ENDPOINT ?? DEFAULT_HUB_URL).replace(/\/+$/, "");
  const accessToken = options.token ?? (await hubToken());
  const signal = options.signal;
  const baseFetch = options.fetch ?? fetch;
  const fetchFn: typeof fetch = (input, init) => baseFetch(input, { ...init, signal });
  const common = { hubUrl, fetch: fetchFn, ...(accessToken ? { accessToken } : {}) };

  const commit = await hubCall(repo, revision, async () => {
    if (COMMIT.test(revision)) return revision;
    const info = await modelInfo({ ...common, name: repo, revision, additionalFields: ["sha"] });
    const sha = (info as { sha?: string }).sha;
    if (!sha || !COMMIT.test(sha)) {
      throw new HartError("hub", `${hubUrl}: repository info of ${repo}@${revision} has no commit sha`);
    }
    return sha;
  });

  const entries = await hubCall(repo, revision, async () => {
    const files: { path: string; size: number; etag: string }[] = [];
    let seen = 0;
    for await (const entry of listFiles({ ...common, repo, recursive: true, revision: commit })) {
      // The listing follows the server's pagination links: bound it, so a looping server cannot hang us.
      if (++seen > MAX_LISTED_ENTRIES) {
        throw new HartError("hub", `${repo}: the file listing exceeds ${MAX_LISTED_ENTRIES} entries; giving up`);
      }
      if (entry.type !== "file") continue;
      if (options.allowPatterns && !options.allowPatterns.some((p) => globMatch(p, entry.path))) continue;
      const etag = entry.lfs?.oid ?? entry.oid ?? entry.xetHash;
      if (!etag) throw new HartError("hub", `${repo}: the file list gives no hash for ${entry.path}`);
      files.push({ path: entry.path, size: entry.lfs?.size ?? entry.size, etag });
    }
    return files;
  });
  if (entries.length === 0) {
    throw new HartError(
      "hub",
      `${repo}@${revision}: no files to download${options.allowPatterns ? " (allowPatterns)" : ""}`,
    );
  }

  const folder = repoFolder(cacheDir, repo);
  const snapshot = join(folder, "snapshots", commit);
  const total = entries.reduce((s, e) => s + e.size, 0);
  let done = 0;
  for (const entry of entries) {
    const pointer = join(snapshot, ...entry.path.split("/"));
    if (!pointer.startsWith(snapshot + sep)) throw new HartError("hub", `${repo}: unsafe file path ${entry.path}`);
    const blob = join(folder, "blobs", entry.etag);
    const report = (phase: DownloadProgressEvent["phase"], fileBytes: number) => {
      const event: DownloadProgressEvent = {
        stage: "download",
        phase,
        repo,
        file: entry.path,
        loadedBytes: fileBytes,
        totalBytes: entry.size,
        snapshotLoadedBytes: done + fileBytes,
        snapshotTotalBytes: total,
      };
      emitProgress(options.onProgress as OnProgress | undefined, event);
    };
    if ((await exists(pointer)) || (await exists(blob))) {
      await linkPointer(blob, pointer);
      report("cached", entry.size);
      done += entry.size;
      continue;
    }
    await mkdir(dirname(blob), { recursive: true });
    await fetchBlob({ repo, commit, path: entry.path, size: entry.size, blob, common, options, report });
    await linkPointer(blob, pointer);
    report("done", entry.size);
    done += entry.size;
  }
  if (revision !== commit) {
    await mkdir(join(folder, "refs"), { recursive: true });
    await writeFile(join(folder, "refs", revision), commit);
  }
  return snapshot;
}

/** Fetches one file into `blobs/<etag>.incomplete` (resuming what is there), then renames it into place. */
async function fetchBlob(args: {
  repo: string;
  commit: string;
  path: string;
  size: number;
  blob: string;
  common: { hubUrl: string; fetch: typeof fetch; accessToken?: string };
  options: HubOptions;
  report: (phase: DownloadProgressEvent["phase"], fileBytes: number) => void;
}): Promise<void> {
  const { repo, commit, path, size, blob, common, options, report } = args;
  const incomplete = `${blob}.incomplete`;
  const info = await hubCall(repo, commit, () =>
    fileDownloadInfo({ ...common, repo, path, revision: commit, noContentDisposition: true }),
  );
  if (!info) throw new HartError("hub-not-found", `${repo}@${commit}: file ${path} is listed but cannot be downloaded`);
  const maxRetries = options.maxRetries ?? 3;
  let have = await fileSize(incomplete);
  report("start", have);
  for (let attempt = 0; ; attempt++) {
    if (have > size) {
      await rm(incomplete, { force: true });
      have = 0;
    }
    if (have === size) break;
    try {
      have = await appendRange({ url: info.url, from: have, size, incomplete, common, report });
    } catch (error) {
      have = await fileSize(incomplete);
      if (options.signal?.aborted) throw abortError(options.signal, `download of ${repo}/${path}`);
      if (error instanceof HartError || attempt >= maxRetries) {
        if (error instanceof HartError) throw error;
        throw new HartError(
          "hub-transfer",
          `download of ${repo}/${path} broke off at ${have} of ${size} bytes after ${attempt + 1} attempts ` +
            `(${(error as Error).message}); run the command again to resume`,
          { cause: error },
        );
      }
    }
  }
  await rename(incomplete, blob);
}

/** Streams bytes `from..size-1` of `url` onto the end of `incomplete`; returns the new file size. */
async function appendRange(args: {
  url: string;
  from: number;
  size: number;
  incomplete: string;
  common: { fetch: typeof fetch; accessToken?: string };
  report: (phase: DownloadProgressEvent["phase"], fileBytes: number) => void;
}): Promise<number> {
  const { url, from, size, incomplete, common, report } = args;
  const headers: Record<string, string> = {};
  if (common.accessToken) headers.Authorization = `Bearer ${common.accessToken}`;
  if (from > 0) headers.Range = `bytes=${from}-${size - 1}`;
  const response = await common.fetch(url, { headers });
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new HartError("hub", `GET ${url} answered HTTP ${response.status} ${response.statusText}`.trim());
  }
  // A server that ignores the range sends the whole file: start the file over rather than append it twice.
  const resumed = from > 0 && response.status === 206;
  let written = resumed ? from : 0;
  // Each received chunk is on disk before the next is read, so a broken transfer keeps all it got.
  const file = await open(incomplete, resumed ? "a" : "w");
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      await file.write(chunk);
      written += chunk.byteLength;
      report("progress", written);
    }
  } finally {
    await file.close();
  }
  const now = await fileSize(incomplete);
  if (now < size) throw new Error(`connection closed early (${now} of ${size} bytes)`);
  if (now > size) throw new HartError("hub", `GET ${url} sent ${now} bytes, the file list says ${size}`);
  return now;
}

/** Runs a hub API call, turning the hub's errors into HartErrors that name the repository. */
async function hubCall<T>(repo: string, revision: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof HartError) throw error;
    if (error instanceof HubApiError) {
      if (error.statusCode === 404) {
        throw new HartError(
          "hub-not-found",
          `${repo}@${revision} was not found on the hub (no such repository or revision; ` +
            `a private or gated repository needs HF_TOKEN)`,
          { cause: error },
        );
      }
      if (error.statusCode === 401 || error.statusCode === 403) {
        throw new HartError(
          "hub-auth",
          `${repo}: access denied (HTTP ${error.statusCode}); set HF_TOKEN to a token with access to it`,
          { cause: error },
        );
      }
      throw new HartError("hub", `${repo}@${revision}: hub request failed: ${error.message}`, { cause: error });
    }
    const name = (error as Error)?.name;
    if (name === "AbortError") throw new HartError("aborted", `download of ${repo} was cancelled`, { cause: error });
    throw new HartError("hub", `${repo}@${revision}: cannot reach the hub: ${(error as Error)?.message ?? error}`, {
      cause: error,
    });
  }
}

/** Makes `pointer` a relative symlink to `blob` (as Python does); copies where symlinks are not allowed. */
async function linkPointer(blob: string, pointer: string): Promise<void> {
  if (await exists(pointer)) return;
  await mkdir(dirname(pointer), { recursive: true });
  try {
    await lstat(pointer);
    await unlink(pointer); // a dangling link
  } catch {}
  try {
    await symlink(relative(dirname(pointer), blob), pointer);
  } catch {
    const temp = `${pointer}.tmp-${process.pid}`;
    await copyFile(blob, temp);
    await rename(temp, pointer);
  }
}

function abortError(signal: AbortSignal, what: string): HartError {
  return new HartError("aborted", `${what} was cancelled; run it again to resume`, { cause: signal.reason });
}

function isTruthy(value: string | undefined): boolean {
  return value !== undefined && ["1", "true", "yes", "on"].includes(value.toLowerCase());
}

/** `*` matches within a path segment, `**` across segments, `?` one character. */
export function globMatch(pattern: string, path: string): boolean {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*" && pattern[i + 1] === "*") {
      re += ".*";
      i++;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`).test(path);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}
