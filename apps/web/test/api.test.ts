import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PNG } from "pngjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp, hostName } from "../src/server/app";
import { loadAssets } from "../src/server/assets";
import { JobQueue } from "../src/server/queue";
import {
  CFG_RANGE,
  EXAMPLE_PROMPTS,
  type JobSnapshot,
  MAX_IMAGES,
  MAX_SEED,
  RELEASE_DEFAULTS,
  type ServerConfig,
  type SubmitResponse,
} from "../src/shared/protocol";
import { GatedRunner } from "./helpers/gated-runner";
import { listen, rawRequest, readJobEvents } from "./helpers/http";

const MAX_PROMPT_CHARS = 300 * 4;
const MAX_WAITING = 2;

let root: string;
let runner: GatedRunner;
let queue: JobQueue;
let server: Awaited<ReturnType<typeof listen>>;

const config = (): ServerConfig => ({
  ready: true,
  model: "test",
  imageSize: 4,
  maxPromptChars: MAX_PROMPT_CHARS,
  maxImages: MAX_IMAGES,
  maxQueue: MAX_WAITING,
  maxSeed: MAX_SEED,
  cfg: { ...CFG_RANGE, default: RELEASE_DEFAULTS.cfg },
  defaults: { seed: 42, randomizeSeed: true, moreSmooth: true, numImages: 1 },
  examples: EXAMPLE_PROMPTS,
  safetyCheck: false,
});

beforeAll(async () => {
  // A fake build next to a secret the server must never hand out.
  root = mkdtempSync(join(tmpdir(), "hart-web-api-"));
  const client = join(root, "client");
  mkdirSync(join(client, "assets"), { recursive: true });
  writeFileSync(join(client, "index.html"), "<!doctype html><title>hart</title>");
  writeFileSync(join(client, "assets", "app-123.js"), "console.log('hi')");
  writeFileSync(join(root, "secret.txt"), "SECRET");
  runner = new GatedRunner();
  queue = new JobQueue(runner, { maxWaiting: MAX_WAITING });
  const app = createApp({
    queue,
    config,
    assets: loadAssets(client),
    limits: () => ({ maxPromptChars: MAX_PROMPT_CHARS }),
    allowedHosts: new Set(["127.0.0.1", "localhost", "[::1]"]),
    heartbeatMs: 50,
    log: () => {},
  });
  server = await listen(app);
});

afterAll(async () => {
  queue?.close();
  await server?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

async function post(body: string, contentType = "application/json") {
  const res = await fetch(`${server.base}/api/jobs`, {
    method: "POST",
    headers: { "Content-Type": contentType },
    body,
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function drain() {
  // Finish whatever runs and is queued so each test starts from an idle queue.
  for (let i = 0; i < 10 && (queue.list().running || queue.list().waiting.length); i++) {
    await runner.whenRunning();
    runner.finishNext();
    await new Promise((r) => setTimeout(r, 0));
  }
  expect(queue.list()).toEqual({ running: null, waiting: [] });
}

describe("request validation", () => {
  it("rejects malformed JSON with 400 and a message", async () => {
    for (const body of ["{", '{"prompt": "a",}', "", "prompt=a"]) {
      const r = await post(body);
      expect(r.status, body).toBe(400);
      expect(r.json.error).toBe("body is not valid JSON");
    }
  });

  it("rejects an oversize prompt, too many images, a bad cfg or seed with 400 naming the field", async () => {
    const cases: [object, RegExp][] = [
      [{ prompt: "x".repeat(MAX_PROMPT_CHARS + 1) }, /"prompt" is 1201 characters long; at most 1200/],
      [{ prompt: "a", numImages: MAX_IMAGES + 1 }, /"numImages" must be between 1 and 4/],
      [{ prompt: "a", cfg: 25 }, /"cfg" must be between 0.1 and 20/],
      [{ prompt: "a", seed: 1.5 }, /"seed" must be an integer/],
      [{ prompt: "a", seed: -3 }, /"seed" must be between/],
      [{ prompt: "" }, /"prompt" must not be empty/],
      [[1, 2], /JSON object/],
    ];
    for (const [body, message] of cases) {
      const r = await post(JSON.stringify(body));
      expect(r.status, JSON.stringify(body).slice(0, 60)).toBe(400);
      expect(r.json.error).toMatch(message);
    }
    expect(runner.started).toHaveLength(0);
  });

  it("answers odd requests with a status, never a crash", async () => {
    const odd: [string, string, string | undefined, number][] = [
      ["POST", "/api/jobs", "null", 400],
      ["POST", "/api/jobs", '"just a string"', 400],
      ["POST", "/api/jobs", `{"prompt": "${"\\u0000".repeat(3)}"}`, 400],
      ["GET", "/api/jobs/%E0%A4%A", undefined, 404],
      ["GET", "/%", undefined, 404],
      ["GET", `/api/jobs/${"x".repeat(5000)}`, undefined, 404],
      ["DELETE", "/api/jobs/%00", undefined, 404],
    ];
    for (const [method, path, body, status] of odd) {
      const res = await rawRequest(
        server.port,
        method,
        path,
        { "Content-Type": "application/json; charset=utf-8" },
        body,
      );
      expect(res.status, `${method} ${path.slice(0, 40)} ${body ?? ""}`).toBe(status);
    }
    // The server still works, and nothing was queued.
    expect((await fetch(`${server.base}/api/config`)).status).toBe(200);
    expect(runner.started).toHaveLength(0);
  });

  it("rejects non-JSON content types (415) and huge bodies (413)", async () => {
    expect((await post(JSON.stringify({ prompt: "a" }), "text/plain")).status).toBe(415);
    const huge = JSON.stringify({ prompt: "x".repeat(200_000) });
    const r = await post(huge);
    expect(r.status).toBe(413);
    expect(r.json.error).toMatch(/larger than/);
    expect(runner.started).toHaveLength(0);
  });
});

describe("jobs", () => {
  it("queues a job, streams its events over SSE and serves its images", async () => {
    const r = await post(JSON.stringify({ prompt: "melting apple", seed: 1234, numImages: 2, cfg: 3 }));
    expect(r.status).toBe(202);
    const submit = r.json as unknown as SubmitResponse;
    expect(submit.position).toBe(0);
    expect(submit.settings).toEqual({ prompt: "melting apple", seed: 1234, cfg: 3, moreSmooth: true, numImages: 2 });

    await runner.whenRunning();
    runner.emit({ type: "progress", stage: "transformer", step: 2, steps: 3 });
    const stream = readJobEvents(`${server.base}/api/jobs/${submit.id}/events`, {
      onEvent: (e) => {
        if (e.type === "progress" && e.step === 2) setTimeout(() => runner.finishNext(), 120);
      },
    });
    const { events, contentType } = await stream;
    expect(contentType).toMatch(/^text\/event-stream/);
    expect(events.map((e) => e.type)).toEqual(["queued", "started", "progress", "progress", "done"]);
    const done = events.at(-1)!;
    if (done.type !== "done") throw new Error("not done");
    expect(done.settings.seed).toBe(1234);
    expect(done.images).toHaveLength(2);

    const img = await fetch(`${server.base}${done.images[1].url}`);
    expect(img.status).toBe(200);
    expect(img.headers.get("content-type")).toBe("image/png");
    const png = PNG.sync.read(Buffer.from(await img.arrayBuffer()));
    // The test runner colours its images by seed: 1234 = 0x04d2.
    expect([png.data[0], png.data[1]]).toEqual([0xd2, 0x04]);
    const dl = await fetch(`${server.base}${done.images[0].url}?download=1`);
    expect(dl.headers.get("content-disposition")).toBe('attachment; filename="hart-1234-1.png"');
    expect((await fetch(`${server.base}/api/jobs/${submit.id}/images/2.png`)).status).toBe(404);

    const snap = (await (await fetch(`${server.base}/api/jobs/${submit.id}`)).json()) as JobSnapshot;
    expect(snap.state).toBe("done");
    expect(await (await fetch(`${server.base}/api/jobs/${submit.id}`, { method: "DELETE" })).json()).toEqual({
      error: "job already finished",
    });
  });

  it("answers 429 when the queue is full, and cancels queued and running jobs", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 1 + MAX_WAITING; i++) {
      const r = await post(JSON.stringify({ prompt: `job ${i}`, seed: i }));
      expect(r.status).toBe(202);
      ids.push((r.json as unknown as SubmitResponse).id);
    }
    const full = await fetch(`${server.base}/api/jobs`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prompt: "one too many" }),
    });
    expect(full.status).toBe(429);
    expect(full.headers.get("retry-after")).toBe("10");
    expect(((await full.json()) as { error: string }).error).toMatch(/queue is full/);
    expect(await (await fetch(`${server.base}/api/jobs`)).json()).toEqual({ running: ids[0], waiting: ids.slice(1) });

    // Cancel the second (waiting): the third moves up.
    const third = readJobEvents(`${server.base}/api/jobs/${ids[2]}/events`, {
      until: (e) => e.type === "queued" && e.position === 1,
    });
    const del = await fetch(`${server.base}/api/jobs/${ids[1]}`, { method: "DELETE" });
    expect([del.status, await del.json()]).toEqual([200, { state: "cancelled" }]);
    expect((await third).events.at(-1)).toEqual({ type: "queued", position: 1 });

    // Cancel the running one: its signal aborts, its stream ends with "cancelled", the third starts.
    const first = readJobEvents(`${server.base}/api/jobs/${ids[0]}/events`);
    const cancel = await fetch(`${server.base}/api/jobs/${ids[0]}`, { method: "DELETE" });
    expect([cancel.status, await cancel.json()]).toEqual([202, { state: "cancelling" }]);
    expect((await first).events.slice(-2)).toEqual([{ type: "cancelling" }, { type: "cancelled" }]);
    expect(runner.aborted.map((s) => s.prompt)).toEqual(["job 0"]);
    await runner.whenRunning();
    expect(queue.list().running).toBe(ids[2]);
    // With room again, a new job is accepted.
    expect((await post(JSON.stringify({ prompt: "fits now" }))).status).toBe(202);
    await drain();
  });

  it("answers 404 for unknown jobs", async () => {
    for (const path of ["/api/jobs/nope", "/api/jobs/nope/events", "/api/jobs/nope/images/0.png"]) {
      const res = await fetch(`${server.base}${path}`);
      expect(res.status, path).toBe(404);
      expect(((await res.json()) as { error: string }).error).toBeTruthy();
    }
    expect((await fetch(`${server.base}/api/jobs/nope`, { method: "DELETE" })).status).toBe(404);
  });
});

describe("routing and static files", () => {
  it("serves the config and the built page", async () => {
    const c = (await (await fetch(`${server.base}/api/config`)).json()) as ServerConfig;
    expect(c.examples).toEqual(EXAMPLE_PROMPTS);
    expect(c.cfg.default).toBe(4.5);
    const page = await fetch(`${server.base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
    expect(page.headers.get("content-security-policy")).toMatch(/default-src 'self'/);
    expect(page.headers.get("x-content-type-options")).toBe("nosniff");
    const js = await fetch(`${server.base}/assets/app-123.js`);
    expect(js.headers.get("content-type")).toMatch(/javascript/);
    expect(js.headers.get("cache-control")).toMatch(/immutable/);
  });

  it("answers 404 with JSON for unknown routes", async () => {
    for (const [method, path] of [
      ["GET", "/api/nothing"],
      ["POST", "/api/config"],
      ["GET", "/nothing.html"],
      ["PUT", "/api/jobs"],
      ["POST", "/index.html"],
    ]) {
      const res = await fetch(`${server.base}${path}`, { method });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(((await res.json()) as { error: string }).error).toMatch(/no route|not found/);
    }
  });

  it("never serves files outside the build", async () => {
    for (const path of [
      "/../secret.txt",
      "/%2e%2e/secret.txt",
      "/assets/..%2f..%2fsecret.txt",
      "/assets/../../secret.txt",
      "//etc/passwd",
      "/..%5csecret.txt",
      "/assets/%2e%2e%2f%2e%2e%2fsecret.txt",
    ]) {
      const res = await rawRequest(server.port, "GET", path);
      expect(res.body.toString(), path).not.toContain("SECRET");
      expect(res.status, path).toBe(404);
    }
  });

  it("refuses foreign Host headers (DNS rebinding)", async () => {
    expect((await rawRequest(server.port, "GET", "/api/config", { Host: "evil.example:80" })).status).toBe(403);
    expect((await rawRequest(server.port, "GET", "/api/config", { Host: `localhost:${server.port}` })).status).toBe(
      200,
    );
    expect(hostName("[::1]:7860")).toBe("[::1]");
    expect(hostName("LOCALHOST")).toBe("localhost");
  });
});
