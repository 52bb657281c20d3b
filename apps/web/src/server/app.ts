import type { Context } from "hono";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import { type JobEvent, type ServerConfig, type SubmitResponse, TERMINAL_EVENTS } from "../shared/protocol";
import type { Asset } from "./assets";
import { type JobQueue, QueueFullError } from "./queue";
import { type RequestLimits, validateGenerateBody } from "./validate";

/** What {@link createApp} serves. */
export interface AppOptions {
  queue: JobQueue;
  /** `GET /api/config` (a function: readiness changes once the model has loaded). */
  config: () => ServerConfig;
  /** The built page, from {@link loadAssets}. */
  assets: Map<string, Asset>;
  /** Limits requests are checked against (a function: the prompt budget is known once the model is loaded). */
  limits: () => RequestLimits;
  /**
   * Host names accepted in the Host header (e.g. localhost, 127.0.0.1, [::1] for a loopback server), so a
   * web page on another origin cannot reach the server through DNS rebinding. Undefined accepts any host.
   */
  allowedHosts?: ReadonlySet<string>;
  /** Interval of SSE keep-alive comments (default 15 s). */
  heartbeatMs?: number;
  /** Seed source for randomized seeds (tests pin it). */
  drawSeed?: () => number;
  /** Where unexpected errors are reported (default console.error). */
  log?: (message: string) => void;
}

/** Largest accepted request body: a maximal prompt in 4-byte UTF-8 plus the other fields fits easily. */
const MAX_BODY_BYTES = 64 * 1024;

const SECURITY_HEADERS: Record<string, string> = {
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "Content-Security-Policy":
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; " +
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
};

const jsonError = (c: Context, status: 400 | 403 | 404 | 405 | 409 | 413 | 415 | 429 | 500, error: string) =>
  c.json({ error }, status);

/** One Server-Sent Events message: the event's type as the SSE event name, its JSON (one line) as data. */
export function sseMessage(event: JobEvent): string {
  return `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

/** Host-header host name without the port ("[::1]:7860" → "[::1]", "localhost:80" → "localhost"). */
export function hostName(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith("[")) return h.slice(0, h.indexOf("]") + 1);
  const colon = h.lastIndexOf(":");
  return colon < 0 ? h : h.slice(0, colon);
}

/**
 * The HTTP API and the page:
 * - `GET /api/config` — limits and defaults;
 * - `POST /api/jobs` — queue a generation (202 `{ id, position, settings }`; 400 bad body, 413 too large,
 *   415 not JSON, 429 queue full);
 * - `GET /api/jobs` — running and waiting job ids; `GET /api/jobs/:id` — one job's state;
 * - `GET /api/jobs/:id/events` — Server-Sent Events of the job ({@link JobEvent}), replaying what happened so far;
 * - `DELETE /api/jobs/:id` — cancel (200 cancelled, 202 cancelling a running job, 409 finished, 404 unknown);
 * - `GET /api/jobs/:id/images/:n.png` — a result (`?download=1` for an attachment);
 * - anything else: a file of the built page, or 404.
 */
export function createApp(options: AppOptions): Hono {
  const { queue, assets } = options;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const log = options.log ?? ((m: string) => console.error(m));
  const app = new Hono();

  app.use("*", async (c, next) => {
    if (options.allowedHosts) {
      const host = c.req.header("host");
      if (!host || !options.allowedHosts.has(hostName(host))) return jsonError(c, 403, "unexpected Host header");
    }
    await next();
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) c.header(k, v);
  });

  app.get("/api/config", (c) => c.json(options.config()));

  app.post(
    "/api/jobs",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => jsonError(c, 413, `body larger than ${MAX_BODY_BYTES} bytes`),
    }),
    async (c) => {
      const type = c.req.header("content-type") ?? "";
      // Requiring JSON also makes cross-origin form posts impossible without a (refused) CORS preflight.
      if (!/^application\/json\b/i.test(type)) return jsonError(c, 415, "Content-Type must be application/json");
      let body: unknown;
      try {
        body = JSON.parse(await c.req.text());
      } catch {
        return jsonError(c, 400, "body is not valid JSON");
      }
      const result = validateGenerateBody(body, options.limits(), options.drawSeed);
      if (!result.ok) return jsonError(c, 400, result.message);
      try {
        const job = queue.submit(result.settings);
        const answer: SubmitResponse = { id: job.id, position: queue.position(job.id), settings: job.settings };
        return c.json(answer, 202);
      } catch (error) {
        if (error instanceof QueueFullError) {
          c.header("Retry-After", "10");
          return jsonError(c, 429, error.message);
        }
        throw error;
      }
    },
  );

  app.get("/api/jobs", (c) => c.json(queue.list()));

  app.get("/api/jobs/:id", (c) => {
    const snapshot = queue.snapshot(c.req.param("id"));
    return snapshot ? c.json(snapshot) : jsonError(c, 404, "no such job");
  });

  app.delete("/api/jobs/:id", (c) => {
    switch (queue.cancel(c.req.param("id"))) {
      case "cancelled":
        return c.json({ state: "cancelled" }, 200);
      case "cancelling":
        return c.json({ state: "cancelling" }, 202);
      case "finished":
        return jsonError(c, 409, "job already finished");
      default:
        return jsonError(c, 404, "no such job");
    }
  });

  app.get("/api/jobs/:id/events", (c) => {
    const id = c.req.param("id");
    if (!queue.get(id)) return jsonError(c, 404, "no such job");
    return streamSSE(c, async (stream) => {
      let ended!: () => void;
      const done = new Promise<void>((resolve) => {
        ended = resolve;
      });
      // Formatted here rather than with writeSSE, which awaits before writing: events must be queued on the
      // stream synchronously, in order, before the stream is closed after the terminal one.
      const send = (event: JobEvent) => {
        stream.write(sseMessage(event)).catch(ended);
        if (TERMINAL_EVENTS.has(event.type)) ended();
      };
      const unsubscribe = queue.subscribe(id, send);
      if (!unsubscribe) return;
      stream.onAbort(ended);
      const ping = setInterval(() => {
        stream.write(": keep-alive\n\n").catch(ended);
      }, heartbeatMs);
      await done;
      clearInterval(ping);
      unsubscribe();
    });
  });

  app.get("/api/jobs/:id/images/:name", (c) => {
    const job = queue.get(c.req.param("id"));
    const match = /^(\d{1,2})\.png$/.exec(c.req.param("name"));
    const image = job?.output && match ? job.output.images[Number(match[1])] : undefined;
    if (!job || !image) return jsonError(c, 404, "no such image");
    const index = Number(match![1]);
    const fileName = `hart-${job.settings.seed}-${index + 1}.png`;
    const disposition = c.req.query("download") !== undefined ? "attachment" : "inline";
    return c.body(image.png as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": "image/png",
      "Content-Disposition": `${disposition}; filename="${fileName}"`,
      "Cache-Control": "private, max-age=3600",
    });
  });

  app.all("/api/*", (c) => jsonError(c, 404, `no route ${c.req.method} ${c.req.path}`));

  app.on(["GET", "HEAD"], "*", (c) => {
    const asset = assets.get(c.req.path);
    if (!asset) return jsonError(c, 404, "not found");
    return c.body(asset.body as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": asset.contentType,
      "Cache-Control": asset.immutable ? "public, max-age=31536000, immutable" : "no-cache",
    });
  });

  app.notFound((c) => jsonError(c, 404, `no route ${c.req.method} ${c.req.path}`));

  app.onError((error, c) => {
    log(`hart web: ${c.req.method} ${c.req.path}: ${error instanceof Error ? (error.stack ?? error.message) : error}`);
    return jsonError(c, 500, "internal server error");
  });

  return app;
}
