/**
 * A stand-in for the Hugging Face hub on 127.0.0.1, serving in-memory repositories through the same
 * endpoints `@huggingface/hub` and Python's `huggingface_hub` use: `/api/models/<repo>/revision/<rev>`,
 * `/api/models/<repo>/tree/<rev>` (paginated with a Link header) and `/<repo>/resolve/<rev>/<path>`
 * (range requests, ETag / X-Linked-Etag, X-Repo-Commit). It can cut a transfer short once, to test resuming.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join, relative } from "node:path";

/** A served repository: its files by path. */
export interface FakeRepo {
  files: Map<string, Uint8Array>;
  /** Requests must carry `Authorization: Bearer <token>`. */
  token?: string;
}

/** One request the server saw. */
export interface SeenRequest {
  method: string;
  path: string;
  range?: string;
  authorization?: string;
}

/** Files at least this big are served as LFS files (sha256 etag), like the hub does for weights. */
export const LFS_THRESHOLD = 10_000;

/** Reads a folder into a repository (paths with `/`), keeping only the listed top-level entries. */
export function repoFromFolder(dir: string, only?: readonly string[]): FakeRepo {
  const files = new Map<string, Uint8Array>();
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const full = join(d, name);
      const rel = relative(dir, full).split("\\").join("/");
      if (only && !only.some((o) => rel === o || rel.startsWith(`${o}/`))) continue;
      if (statSync(full).isDirectory()) walk(full);
      else files.set(rel, new Uint8Array(readFileSync(full)));
    }
  };
  walk(dir);
  return { files };
}

/** The commit sha the server reports for a repository. */
export function commitOf(repo: string): string {
  return createHash("sha1").update(`commit:${repo}`).digest("hex");
}

/** What the cache should name a file's blob: sha256 for LFS files, the git blob sha1 otherwise. */
export function etagOf(data: Uint8Array): string {
  if (data.byteLength >= LFS_THRESHOLD) return createHash("sha256").update(data).digest("hex");
  return createHash("sha1").update(`blob ${data.byteLength}\0`).update(data).digest("hex");
}

/** A running fake hub. */
export interface FakeHub {
  url: string;
  requests: SeenRequest[];
  /** The next content transfer of `path` (in any repo) sends only `bytes` bytes and then drops the connection. */
  cutOnce(path: string, bytes: number): void;
  close(): Promise<void>;
}

/** Starts the fake hub on 127.0.0.1 (a free port). It answers at most `maxRequests` requests, then 503. */
export async function startFakeHub(
  repos: Record<string, FakeRepo>,
  options: { pageSize?: number; maxRequests?: number } = {},
): Promise<FakeHub> {
  const pageSize = options.pageSize ?? 4;
  const maxRequests = options.maxRequests ?? 500;
  const requests: SeenRequest[] = [];
  const cuts = new Map<string, number>();

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    requests.push({
      method: req.method ?? "GET",
      path: decodeURIComponent(url.pathname),
      range: req.headers.range,
      authorization: req.headers.authorization,
    });
    if (requests.length > maxRequests) return send(res, 503, { error: "too many requests in one test" });
    try {
      route(req, res, url);
    } catch (error) {
      send(res, 500, { error: String(error) });
    }
  });

  function route(req: IncomingMessage, res: ServerResponse, url: URL) {
    const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    const api = parts[0] === "api" && parts[1] === "models";
    const [org, name] = api ? parts.slice(2, 4) : parts.slice(0, 2);
    const repoId = `${org}/${name}`;
    const repo = repos[repoId];
    if (!repo) return send(res, 404, { error: "Repository not found" }, { "X-Error-Code": "RepoNotFound" });
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      return send(res, 401, { error: "Invalid credentials" }, { "X-Error-Code": "RepoNotFound" });
    }
    const commit = commitOf(repoId);
    const rest = api ? parts.slice(4) : parts.slice(2);
    const revOk = (rev: string) => rev === "main" || rev === "HEAD" || rev === commit;

    if (api && rest[0] === "revision") {
      if (!revOk(rest[1]))
        return send(res, 404, { error: "Revision not found" }, { "X-Error-Code": "RevisionNotFound" });
      return send(res, 200, {
        _id: `id-${commit.slice(0, 8)}`,
        id: repoId,
        sha: commit,
        private: !!repo.token,
        downloads: 0,
        likes: 0,
        gated: false,
        lastModified: "2024-10-01T00:00:00.000Z",
        siblings: [...repo.files.keys()].map((rfilename) => ({ rfilename })),
      });
    }
    if (api && rest[0] === "tree") {
      if (!revOk(rest[1]))
        return send(res, 404, { error: "Revision not found" }, { "X-Error-Code": "RevisionNotFound" });
      const entries = treeEntries(repo);
      const cursor = Number(url.searchParams.get("cursor") ?? 0);
      const page = entries.slice(cursor, cursor + pageSize);
      const headers: Record<string, string> = {};
      if (cursor + pageSize < entries.length) {
        const next = new URL(url.href.replace("http://127.0.0.1", `http://127.0.0.1:${port()}`));
        next.searchParams.set("cursor", String(cursor + pageSize));
        headers.Link = `<${next.href}>; rel="next"`;
      }
      return send(res, 200, page, headers);
    }
    if (!api && rest[0] === "resolve") {
      if (!revOk(rest[1]))
        return send(res, 404, { error: "Revision not found" }, { "X-Error-Code": "RevisionNotFound" });
      const path = rest.slice(2).join("/");
      const data = repo.files.get(path);
      if (!data) return send(res, 404, { error: "Entry not found" }, { "X-Error-Code": "EntryNotFound" });
      return serveFile(req, res, path, data, commit);
    }
    return send(res, 404, { error: "Not found" });
  }

  function serveFile(req: IncomingMessage, res: ServerResponse, path: string, data: Uint8Array, commit: string) {
    const etag = etagOf(data);
    const headers: Record<string, string> = {
      "Accept-Ranges": "bytes",
      "Content-Type": "application/octet-stream",
      ETag: `"${etag}"`,
      "X-Repo-Commit": commit,
    };
    if (data.byteLength >= LFS_THRESHOLD) headers["X-Linked-Etag"] = `"${etag}"`;
    let start = 0;
    let end = data.byteLength - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), end) : end;
      if (start > end) {
        res.writeHead(416, { "Content-Range": `bytes */${data.byteLength}` });
        return res.end();
      }
      status = 206;
      headers["Content-Range"] = `bytes ${start}-${end}/${data.byteLength}`;
    }
    const body = data.subarray(start, end + 1);
    headers["Content-Length"] = String(body.byteLength);
    res.writeHead(status, headers);
    const cut = cuts.get(path);
    // Probes (`bytes=0-0`) are never cut, only real transfers.
    if (cut !== undefined && body.byteLength > 1) {
      cuts.delete(path);
      res.write(body.subarray(0, Math.max(0, cut - start)), () => res.socket?.end());
      return;
    }
    res.end(body);
  }

  function treeEntries(repo: FakeRepo) {
    const dirs = new Set<string>();
    const files = [...repo.files.entries()].map(([path, data]) => {
      const segments = path.split("/");
      for (let i = 1; i < segments.length; i++) dirs.add(segments.slice(0, i).join("/"));
      const gitOid = createHash("sha1").update(`blob ${data.byteLength}\0`).update(data).digest("hex");
      const lfs = data.byteLength >= LFS_THRESHOLD;
      return {
        type: "file",
        oid: lfs ? createHash("sha1").update(`pointer:${path}`).digest("hex") : gitOid,
        size: lfs ? 134 : data.byteLength,
        path,
        ...(lfs ? { lfs: { oid: etagOf(data), size: data.byteLength, pointerSize: 134 } } : {}),
      };
    });
    return [...[...dirs].sort().map((path) => ({ type: "directory", oid: "0".repeat(40), size: 0, path })), ...files];
  }

  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const port = () => (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port()}`,
    requests,
    cutOnce: (path, bytes) => cuts.set(path, bytes),
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text), ...headers });
  res.end(text);
}
