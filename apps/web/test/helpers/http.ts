import { request } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { Hono } from "hono";
import { type JobEvent, TERMINAL_EVENTS } from "../../src/shared/protocol";

/** Serves `app` on 127.0.0.1 at an ephemeral port. */
export async function listen(app: Hono): Promise<{ base: string; port: number; close: () => Promise<void> }> {
  return new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        base: `http://127.0.0.1:${port}`,
        port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // SSE connections would keep close() waiting.
            (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      });
    });
  });
}

/** A request sent exactly as written (fetch would normalise `..` and encodings in the path). */
export function rawRequest(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.end(body);
  });
}

/** Parses one SSE text block stream into events. */
export function parseSse(text: string): { event: string; data: string }[] {
  return text
    .split(/\n\n/)
    .map((block) => {
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      return { event, data: data.join("\n") };
    })
    .filter((m) => m.data !== "");
}

/**
 * Reads a job's event stream until a terminal event (or `until` says stop), within `timeoutMs`.
 * `onEvent` sees each event as it arrives (to act on the job mid-stream).
 */
export async function readJobEvents(
  url: string,
  options: { timeoutMs?: number; onEvent?: (e: JobEvent) => void; until?: (e: JobEvent) => boolean } = {},
): Promise<{ events: JobEvent[]; contentType: string | null }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs ?? 30_000);
  const res = await fetch(url, { signal: controller.signal });
  if (!res.ok || !res.body) throw new Error(`GET ${url}: ${res.status}`);
  const events: JobEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      const cut = buffer.lastIndexOf("\n\n");
      if (cut < 0) continue;
      const complete = buffer.slice(0, cut + 2);
      buffer = buffer.slice(cut + 2);
      for (const m of parseSse(complete)) {
        const event = JSON.parse(m.data) as JobEvent;
        if (event.type !== m.event) throw new Error(`SSE event name ${m.event} does not match its data ${m.data}`);
        events.push(event);
        options.onEvent?.(event);
        // Leaving the loop cancels the body; the abort in finally then only stops the timer's fetch.
        if (TERMINAL_EVENTS.has(event.type) || options.until?.(event))
          return { events, contentType: res.headers.get("content-type") };
      }
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error;
    throw new Error(`no terminal event from ${url} in time; got ${events.map((e) => e.type).join(", ")}`);
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return { events, contentType: res.headers.get("content-type") };
}
