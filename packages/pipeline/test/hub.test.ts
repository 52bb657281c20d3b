import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { mkdir, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { HartError } from "@hart/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  cachedSnapshot,
  type DownloadProgressEvent,
  downloadSnapshot,
  hubCacheDir,
  locateModelFolders,
  resolveSource,
} from "../src/index";
import {
  commitOf,
  etagOf,
  type FakeHub,
  type FakeRepo,
  LFS_THRESHOLD,
  repoFromFolder,
  startFakeHub,
} from "./hub-server";

const GOLDEN = resolve(process.env.HART_GOLDEN_DIR ?? join(import.meta.dirname, "../../../../shared/golden"));
const REPO = "mit-han-lab/hart-tiny-main";
const PRIVATE = "someone/private-tiny";
const TOKEN = "hf_testtoken123";

let hub: FakeHub;
let model: FakeRepo;
const temps: string[] = [];
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), "hart-hub-"));
  temps.push(d);
  return d;
};

beforeAll(async () => {
  model = repoFromFolder(join(GOLDEN, "main"), ["llm", "tokenizer", "text_model"]);
  model.files.set("README.md", new TextEncoder().encode("# tiny golden HART\n"));
  hub = await startFakeHub({
    [REPO]: model,
    [PRIVATE]: { ...repoFromFolder(join(GOLDEN, "main"), ["tokenizer"]), token: TOKEN },
  });
});
afterAll(async () => {
  await hub.close();
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});
afterEach(() => {
  hub.requests.length = 0;
});

const contentGets = () => hub.requests.filter((r) => r.path.includes("/resolve/") && r.range !== "bytes=0-0");

describe("downloadSnapshot", () => {
  it("writes the standard Hugging Face cache layout with per-file and total progress", async () => {
    const cacheDir = temp();
    const events: DownloadProgressEvent[] = [];
    const snapshot = await downloadSnapshot(REPO, { cacheDir, hubUrl: hub.url, onProgress: (e) => events.push(e) });
    const commit = commitOf(REPO);
    const repoDir = join(cacheDir, "models--mit-han-lab--hart-tiny-main");
    expect(snapshot).toBe(join(repoDir, "snapshots", commit));
    expect(readFileSync(join(repoDir, "refs", "main"), "utf8")).toBe(commit);
    for (const [path, data] of model.files) {
      const pointer = join(snapshot, path);
      // Relative symlinks into blobs/, named by the file's hub etag (sha256 for LFS files, git sha1 otherwise).
      const target = readlinkSync(pointer);
      expect(target).toBe(relative(dirname(pointer), join(repoDir, "blobs", etagOf(data))));
      expect(Buffer.compare(readFileSync(pointer), Buffer.from(data))).toBe(0);
    }
    expect(readdirSync(join(repoDir, "blobs")).some((f) => f.endsWith(".incomplete"))).toBe(false);
    expect([...model.files.values()].some((d) => d.byteLength >= LFS_THRESHOLD)).toBe(true);

    const total = [...model.files.values()].reduce((s, d) => s + d.byteLength, 0);
    expect(events.every((e) => e.snapshotTotalBytes === total)).toBe(true);
    expect(events.at(-1)?.snapshotLoadedBytes).toBe(total);
    const done = events.filter((e) => e.phase === "done");
    expect(done.map((e) => e.file).sort()).toEqual([...model.files.keys()].sort());
    for (const e of done) expect(e.loadedBytes).toBe(model.files.get(e.file)!.byteLength);
    for (let i = 1; i < events.length; i++) {
      expect(events[i].snapshotLoadedBytes).toBeGreaterThanOrEqual(events[i - 1].snapshotLoadedBytes);
    }
    // The tree listing was paginated (page size 4), and followed to the end.
    expect(hub.requests.filter((r) => r.path.includes("/tree/")).length).toBeGreaterThan(2);

    // A second run finds everything in the cache and transfers no file content.
    hub.requests.length = 0;
    const again = await downloadSnapshot(REPO, { cacheDir, hubUrl: hub.url });
    expect(again).toBe(snapshot);
    expect(contentGets()).toEqual([]);

    // Offline, the snapshot is found through refs/main without any request.
    hub.requests.length = 0;
    expect(await downloadSnapshot(REPO, { cacheDir, hubUrl: hub.url, localFilesOnly: true })).toBe(snapshot);
    expect(hub.requests).toEqual([]);
    const folders = await locateModelFolders(snapshot);
    expect(folders.llmDir).toBe(join(snapshot, "llm"));
    expect(folders.textModelDir).toBe(join(snapshot, "text_model"));
  });

  it("reuses a cache written by Python's huggingface_hub (blobs + relative symlinks + refs)", async () => {
    const cacheDir = temp();
    const commit = commitOf(REPO);
    const repoDir = join(cacheDir, "models--mit-han-lab--hart-tiny-main");
    await mkdir(join(repoDir, "refs"), { recursive: true });
    writeFileSync(join(repoDir, "refs", "main"), commit);
    for (const [path, data] of model.files) {
      const blob = join(repoDir, "blobs", etagOf(data));
      await mkdir(dirname(blob), { recursive: true });
      writeFileSync(blob, data);
      const pointer = join(repoDir, "snapshots", commit, path);
      await mkdir(dirname(pointer), { recursive: true });
      await symlink(relative(dirname(pointer), blob), pointer);
    }
    expect(await cachedSnapshot(REPO, { cacheDir })).toBe(join(repoDir, "snapshots", commit));
    expect(await downloadSnapshot(REPO, { cacheDir, localFilesOnly: true })).toBe(join(repoDir, "snapshots", commit));
    // Online: listed, nothing transferred.
    await downloadSnapshot(REPO, { cacheDir, hubUrl: hub.url });
    expect(contentGets()).toEqual([]);
  });

  it("fetches a blob only once when a new snapshot shares it", async () => {
    const cacheDir = temp();
    await downloadSnapshot(REPO, { cacheDir, hubUrl: hub.url, allowPatterns: ["llm/config.json"] });
    expect(contentGets().map((r) => r.path)).toEqual([`/${REPO}/resolve/${commitOf(REPO)}/llm/config.json`]);
    hub.requests.length = 0;
    await downloadSnapshot(REPO, { cacheDir, hubUrl: hub.url, allowPatterns: ["llm/*.json", "tokenizer/config.json"] });
    expect(contentGets().map((r) => r.path.split("/").slice(-2).join("/"))).toEqual(["tokenizer/config.json"]);
  });

  it("resumes a transfer that broke off, within the same call", async () => {
    const cacheDir = temp();
    const big = "llm/ema_model.bin";
    const size = model.files.get(big)!.byteLength;
    hub.cutOnce(big, 300_000);
    const snapshot = await downloadSnapshot(REPO, { cacheDir, hubUrl: hub.url, allowPatterns: ["llm/**"] });
    expect(Buffer.compare(readFileSync(join(snapshot, big)), Buffer.from(model.files.get(big)!))).toBe(0);
    // How much of the cut transfer reaches the client before the socket closes depends on timing;
    // what matters is that the retry asks only for the rest of what was kept.
    const ranges = contentGets()
      .filter((r) => r.path.endsWith(big))
      .map((r) => r.range);
    expect(ranges).toHaveLength(2);
    expect(ranges[0]).toBeUndefined();
    const resumedFrom = Number(/^bytes=(\d+)-(\d+)$/.exec(ranges[1] ?? "")?.[1]);
    expect(resumedFrom).toBeGreaterThan(0);
    expect(resumedFrom).toBeLessThanOrEqual(300_000);
    expect(ranges[1]).toBe(`bytes=${resumedFrom}-${size - 1}`);
  });

  it("leaves a .incomplete blob when interrupted and resumes it on the next call", async () => {
    const cacheDir = temp();
    const big = "tokenizer/pytorch_model.bin";
    const data = model.files.get(big)!;
    hub.cutOnce(big, 1_000_000);
    const error = await downloadSnapshot(REPO, { cacheDir, hubUrl: hub.url, maxRetries: 0 }).catch((e) => e);
    expect(error).toBeInstanceOf(HartError);
    expect(error.code).toBe("hub-transfer");
    expect(error.message).toMatch(/tokenizer\/pytorch_model\.bin.*\d+ of \d+ bytes.*resume/);
    const blobs = join(cacheDir, "models--mit-han-lab--hart-tiny-main", "blobs");
    const partial = join(blobs, `${etagOf(data)}.incomplete`);
    const kept = statSync(partial).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(1_000_000);
    // Nothing half-written is visible in the snapshot or under refs.
    expect(existsSync(join(cacheDir, "models--mit-han-lab--hart-tiny-main", "snapshots", commitOf(REPO), big))).toBe(
      false,
    );
    expect(existsSync(join(cacheDir, "models--mit-han-lab--hart-tiny-main", "refs", "main"))).toBe(false);

    hub.requests.length = 0;
    const snapshot = await downloadSnapshot(REPO, { cacheDir, hubUrl: hub.url });
    expect(Buffer.compare(readFileSync(join(snapshot, big)), Buffer.from(data))).toBe(0);
    expect(
      contentGets()
        .filter((r) => r.path.endsWith(big))
        .map((r) => r.range),
    ).toEqual([`bytes=${kept}-${data.byteLength - 1}`]);
    expect(existsSync(partial)).toBe(false);
  });

  it("stops on an AbortSignal, keeping what was fetched for later", async () => {
    const cacheDir = temp();
    const controller = new AbortController();
    const error = await downloadSnapshot(REPO, {
      cacheDir,
      hubUrl: hub.url,
      signal: controller.signal,
      onProgress: (e) => {
        if (e.file === "llm/ema_model.bin" && e.loadedBytes > 0) controller.abort();
      },
    }).catch((e) => e);
    expect(error).toBeInstanceOf(HartError);
    expect(error.code).toBe("aborted");
    expect(await cachedSnapshot(REPO, { cacheDir })).toBeUndefined();
    const snapshot = await downloadSnapshot(REPO, { cacheDir, hubUrl: hub.url });
    const data = model.files.get("llm/ema_model.bin")!;
    expect(Buffer.compare(readFileSync(join(snapshot, "llm/ema_model.bin")), Buffer.from(data))).toBe(0);
  });

  it("reports a repository that does not exist clearly and writes nothing", async () => {
    const cacheDir = temp();
    const error = await downloadSnapshot("mit-han-lab/no-such-model", { cacheDir, hubUrl: hub.url }).catch((e) => e);
    expect(error).toBeInstanceOf(HartError);
    expect(error.code).toBe("hub-not-found");
    expect(error.message).toContain("mit-han-lab/no-such-model");
    expect(readdirSync(cacheDir)).toEqual([]);
    const viaSource = await resolveSource("mit-han-lab/no-such-model", "model", { cacheDir, hubUrl: hub.url }).catch(
      (e) => e,
    );
    expect(viaSource.code).toBe("model-not-found");
    expect(viaSource.message).toMatch(/neither a local folder .* nor a repository on the hub/);
  });

  it("fails clearly in local-files-only mode with an empty cache, without any request", async () => {
    const cacheDir = temp();
    const error = await downloadSnapshot(REPO, { cacheDir, hubUrl: hub.url, localFilesOnly: true }).catch((e) => e);
    expect(error).toBeInstanceOf(HartError);
    expect(error.code).toBe("not-cached");
    expect(error.message).toContain(REPO);
    expect(error.message).toContain(cacheDir);
    expect(hub.requests).toEqual([]);
  });

  it("honours HF_TOKEN, HF_HUB_CACHE / HF_HOME and HF_HUB_OFFLINE", async () => {
    const saved = { ...process.env };
    try {
      const home = temp();
      delete process.env.HF_HUB_CACHE;
      delete process.env.HUGGINGFACE_HUB_CACHE;
      delete process.env.HF_TOKEN;
      process.env.HF_HOME = home;
      expect(hubCacheDir()).toBe(join(home, "hub"));
      const denied = await downloadSnapshot(PRIVATE, { hubUrl: hub.url }).catch((e) => e);
      expect(denied.code).toBe("hub-auth");
      expect(denied.message).toContain("HF_TOKEN");

      process.env.HF_TOKEN = TOKEN;
      const cache = temp();
      process.env.HF_HUB_CACHE = cache;
      hub.requests.length = 0;
      const snapshot = await downloadSnapshot(PRIVATE, { hubUrl: hub.url });
      expect(snapshot.startsWith(join(cache, "models--someone--private-tiny"))).toBe(true);
      expect(
        hub.requests.filter((r) => r.path.includes("private-tiny")).every((r) => r.authorization === `Bearer ${TOKEN}`),
      ).toBe(true);

      // The token file written by `huggingface-cli login` is used when HF_TOKEN is unset.
      delete process.env.HF_TOKEN;
      writeFileSync(join(home, "token"), `${TOKEN}\n`);
      process.env.HF_HUB_CACHE = temp();
      await downloadSnapshot(PRIVATE, { hubUrl: hub.url });

      process.env.HF_HUB_OFFLINE = "1";
      process.env.HF_HUB_CACHE = temp();
      hub.requests.length = 0;
      expect((await downloadSnapshot(PRIVATE, { hubUrl: hub.url }).catch((e) => e)).code).toBe("not-cached");
      expect(hub.requests).toEqual([]);
    } finally {
      process.env = saved;
    }
  });
});

describe("model folders", () => {
  it("accepts the official layout and the release's llm-folder form", async () => {
    const main = join(GOLDEN, "main");
    const a = await locateModelFolders(main);
    expect([a.llmDir, a.tokenizerDir, a.textModelDir]).toEqual([
      join(main, "llm"),
      join(main, "tokenizer"),
      join(main, "text_model"),
    ]);
    expect(a.llmConfig.model_type).toBe("hart_transformer_t2i");
    const b = await locateModelFolders(join(main, "llm"));
    expect([b.llmDir, b.tokenizerDir]).toEqual([join(main, "llm"), join(main, "tokenizer")]);
  });

  it("names the problem for a missing folder, a file, a foreign folder and a wrong model type", async () => {
    const missing = await resolveSource(join(temp(), "nope"), "model").catch((e) => e);
    expect(missing).toBeInstanceOf(HartError);
    expect(missing.message).toMatch(/folder .*nope does not exist/);
    const file = await resolveSource(join(GOLDEN, "main", "llm", "config.json"), "model").catch((e) => e);
    expect(file.message).toMatch(/is a file/);
    const empty = await locateModelFolders(temp()).catch((e) => e);
    expect(empty.code).toBe("model-layout");
    expect(empty.message).toMatch(/llm\/config\.json and tokenizer\/config\.json/);
    const qwen = await locateModelFolders(join(GOLDEN, "main", "text_model")).catch((e) => e);
    expect(qwen.code).toBe("config");
    expect(qwen.message).toMatch(/model_type "qwen2" — this is not a HART model folder/);
    const swapped = temp();
    await mkdir(join(swapped, "llm"));
    await mkdir(join(swapped, "tokenizer"));
    writeFileSync(join(swapped, "llm", "config.json"), readFileSync(join(GOLDEN, "main", "tokenizer", "config.json")));
    writeFileSync(join(swapped, "tokenizer", "config.json"), readFileSync(join(GOLDEN, "main", "llm", "config.json")));
    const wrong = await locateModelFolders(swapped).catch((e) => e);
    expect(wrong.message).toMatch(
      /llm\/config\.json: model_type is "hart_autoencoder_with_disc", expected "hart_transformer_t2i"/,
    );
  });
});
