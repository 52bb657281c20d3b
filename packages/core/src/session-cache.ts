import { HartError } from "./errors";
import type { BuiltModel } from "./graph/builder";
import { createSession, type Session, type SessionOptions } from "./session";

/**
 * Keeps compiled sessions by a caller-given key, so a graph (e.g. one per
 * scale or per batch size) is built and compiled once and reused. Every
 * session it creates gets the cache's default {@link SessionOptions} (device,
 * threads, optimization level, …) merged with the per-call options.
 *
 * The key must identify everything that makes the graph different (model,
 * shapes, options): the cache never compares graphs. Concurrent `get`s of one
 * key share a single build. Releasing a session (via the cache, or the
 * session's own `release`) removes it from the cache.
 *
 * @example
 * ```ts
 * const cache = new SessionCache({ intraOpThreads: 4 });
 * const s = await cache.get(`block:${B}x${L}`, () => buildBlock(B, L));
 * await s.run({ x });
 * await cache.release(); // frees every session
 * ```
 */
export class SessionCache {
  private options: SessionOptions;
  private readonly entries = new Map<string, Promise<Session>>();

  /** @param defaults options every session of this cache is created with (per-call options win). */
  constructor(defaults: SessionOptions = {}) {
    this.options = { ...defaults };
  }

  /** The default options of new sessions. */
  get defaults(): Readonly<SessionOptions> {
    return this.options;
  }

  /** Changes the defaults for sessions created from now on (existing sessions keep theirs; release them to rebuild). */
  configure(defaults: SessionOptions): void {
    this.options = { ...this.options, ...defaults };
  }

  /** The session cached under `key`, or a new one compiled from `build()` (called only on a miss). */
  get(key: string, build: () => BuiltModel | Promise<BuiltModel>, options: SessionOptions = {}): Promise<Session> {
    if (typeof key !== "string" || key === "") {
      throw new HartError("session", `SessionCache.get: key must be a non-empty string, got ${JSON.stringify(key)}`);
    }
    const hit = this.entries.get(key);
    if (hit) return hit;
    const entry = (async () => {
      const model = await build();
      const inner = await createSession(model, { ...this.options, label: key, ...options });
      const session: Session = {
        inputNames: inner.inputNames,
        outputNames: inner.outputNames,
        run: (feeds, outputs) => inner.run(feeds, outputs),
        runWithDevice: (feeds, outputs) => inner.runWithDevice(feeds, outputs),
        release: async () => {
          if (this.entries.get(key) === entry) this.entries.delete(key);
          await inner.release();
        },
      };
      return session;
    })();
    this.entries.set(key, entry);
    // A failed build must not poison the key: the next get() tries again.
    entry.catch(() => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    });
    return entry;
  }

  /** Whether a session (or its build in progress) is cached under `key`. */
  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Number of cached sessions. */
  get size(): number {
    return this.entries.size;
  }

  /** The cached keys. */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  /**
   * Frees cached sessions: the one under `key`, those whose key matches a predicate, or all
   * (no argument). Resolves to how many were released.
   */
  async release(which?: string | ((key: string) => boolean)): Promise<number> {
    const match = which === undefined ? () => true : typeof which === "string" ? (k: string) => k === which : which;
    const victims = [...this.entries].filter(([k]) => match(k));
    for (const [k] of victims) this.entries.delete(k);
    let count = 0;
    for (const [, entry] of victims) {
      const session = await entry.catch(() => undefined);
      if (session) {
        await session.release();
        count++;
      }
    }
    return count;
  }
}

/** The process-wide session cache hart packages share (configure it once, e.g. `sessionCache.configure({ intraOpThreads: 8 })`). */
export const sessionCache: SessionCache = new SessionCache();
