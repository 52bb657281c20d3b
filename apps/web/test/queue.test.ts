import { describe, expect, it } from "vitest";
import { JobQueue, QueueFullError } from "../src/server/queue";
import type { GenerateSettings, JobEvent } from "../src/shared/protocol";
import { GatedRunner } from "./helpers/gated-runner";

const settings = (seed: number): GenerateSettings => ({
  prompt: `p${seed}`,
  seed,
  cfg: 4.5,
  moreSmooth: true,
  numImages: 1,
});

function record(queue: JobQueue, id: string): JobEvent[] {
  const events: JobEvent[] = [];
  queue.subscribe(id, (e) => events.push(e));
  return events;
}

const settle = () => new Promise((r) => setTimeout(r, 0));

describe("JobQueue", () => {
  it("runs one job at a time in submission order and reports waiting positions", async () => {
    const runner = new GatedRunner();
    const queue = new JobQueue(runner, { maxWaiting: 5 });
    const a = queue.submit(settings(1));
    const b = queue.submit(settings(2));
    const c = queue.submit(settings(3));
    const eventsC = record(queue, c.id);
    await runner.whenRunning();
    expect(runner.started.map((s) => s.seed)).toEqual([1]);
    expect([queue.position(a.id), queue.position(b.id), queue.position(c.id)]).toEqual([0, 1, 2]);
    expect(eventsC.at(-1)).toEqual({ type: "queued", position: 2 });

    runner.finishNext();
    await runner.whenRunning();
    expect(runner.started.map((s) => s.seed)).toEqual([1, 2]);
    expect(queue.get(a.id)?.state).toBe("done");
    expect(eventsC.at(-1)).toEqual({ type: "queued", position: 1 });

    runner.finishNext();
    await runner.whenRunning();
    runner.finishNext();
    await settle();
    expect(runner.started.map((s) => s.seed)).toEqual([1, 2, 3]);
    expect(eventsC.map((e) => e.type)).toEqual(["queued", "queued", "started", "progress", "done"]);
    // A late subscriber sees the same story, with only the current queue position.
    expect(record(queue, c.id).map((e) => e.type)).toEqual(["queued", "started", "progress", "done"]);
    expect(queue.list()).toEqual({ running: null, waiting: [] });
  });

  it("bounds the waiting line", async () => {
    const runner = new GatedRunner();
    const queue = new JobQueue(runner, { maxWaiting: 2 });
    queue.submit(settings(1)); // runs
    queue.submit(settings(2));
    queue.submit(settings(3));
    expect(() => queue.submit(settings(4))).toThrow(QueueFullError);
    await runner.whenRunning();
    runner.finishNext();
    await runner.whenRunning();
    // One left the line, so one more fits.
    expect(() => queue.submit(settings(5))).not.toThrow();
    expect(() => queue.submit(settings(6))).toThrow(QueueFullError);
  });

  it("cancels a waiting job at once and a running one through its signal", async () => {
    const runner = new GatedRunner();
    const queue = new JobQueue(runner);
    const a = queue.submit(settings(1));
    const b = queue.submit(settings(2));
    const c = queue.submit(settings(3));
    const eventsB = record(queue, b.id);
    const eventsC = record(queue, c.id);
    await runner.whenRunning();

    expect(queue.cancel(b.id)).toBe("cancelled");
    expect(eventsB.at(-1)).toEqual({ type: "cancelled" });
    expect(eventsC.at(-1)).toEqual({ type: "queued", position: 1 });

    const eventsA = record(queue, a.id);
    expect(queue.cancel(a.id)).toBe("cancelling");
    await runner.whenRunning();
    expect(runner.aborted.map((s) => s.seed)).toEqual([1]);
    expect(eventsA.slice(-2)).toEqual([{ type: "cancelling" }, { type: "cancelled" }]);
    // The cancelled job never ran; the next one did.
    expect(runner.started.map((s) => s.seed)).toEqual([1, 3]);
    expect(queue.cancel(a.id)).toBe("finished");
    expect(queue.cancel("nope")).toBe("not-found");
  });

  it("reports a runner failure on the job and goes on with the next", async () => {
    const runner = new GatedRunner();
    const queue = new JobQueue(runner);
    const a = queue.submit(settings(1));
    const b = queue.submit(settings(2));
    const eventsA = record(queue, a.id);
    await runner.whenRunning();
    runner.finishNext(new Error("out of memory"));
    await runner.whenRunning();
    expect(eventsA.at(-1)).toEqual({ type: "failed", message: "out of memory" });
    expect(queue.get(b.id)?.state).toBe("running");
  });

  it("replays a job's events to late subscribers and forgets old jobs", async () => {
    const runner = new GatedRunner();
    const queue = new JobQueue(runner, { keepFinished: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(queue.submit(settings(i)).id);
      await runner.whenRunning();
      runner.emit({ type: "progress", stage: "transformer", step: 2, steps: 3 });
      runner.finishNext();
      await settle();
    }
    const replay = record(queue, ids[2]);
    expect(replay.map((e) => e.type)).toEqual(["queued", "started", "progress", "progress", "done"]);
    expect(replay[3]).toEqual({ type: "progress", stage: "transformer", step: 2, steps: 3 });
    const done = replay[4];
    expect(done.type === "done" && done.images[0].url).toBe(`/api/jobs/${ids[2]}/images/0.png`);
    expect(queue.get(ids[0])).toBeUndefined();
    expect(queue.get(ids[1])?.output?.images).toHaveLength(1);
  });
});
