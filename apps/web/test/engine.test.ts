import { afterEach, describe, expect, it } from "vitest";
import { WorkerRunner } from "../src/server/engine";
import type { RunnerEvent } from "../src/server/queue";
import type { GenerateSettings } from "../src/shared/protocol";

const entry = { url: new URL("./fixtures/scripted-worker.mjs", import.meta.url), execArgv: [] };
const settings = (prompt: string, numImages = 1): GenerateSettings => ({
  prompt,
  seed: 9,
  cfg: 4.5,
  moreSmooth: true,
  numImages,
});

let runner: WorkerRunner | undefined;
afterEach(async () => {
  await runner?.close();
  runner = undefined;
});

function start(failLoad = false) {
  const logs: string[] = [];
  // The scripted worker reads failLoad from its workerData, beside the real config fields.
  const config = { model: "scripted", preview: "off" as const, failLoad };
  runner = new WorkerRunner(config, (m) => logs.push(m), entry);
  return runner;
}

describe("WorkerRunner", () => {
  it("runs a job in the worker and relays its events and images", async () => {
    const r = start();
    expect((await r.ready).imageSize).toBe(4);
    const events: RunnerEvent[] = [];
    const out = await r.run(settings("a cat", 3), new AbortController().signal, (e) => events.push(e));
    expect(events).toEqual([{ type: "progress", stage: "text" }]);
    expect(out.images.map((i) => Array.from(i.png))).toEqual([[9], [9], [9]]);
    expect(out.promptReplaced).toBe(false);
  });

  it("carries a cancellation into the worker", async () => {
    const r = start();
    const controller = new AbortController();
    const events: RunnerEvent[] = [];
    const run = r.run(settings("wait"), controller.signal, (e) => {
      events.push(e);
      if (events.length === 3) controller.abort();
    });
    await expect(run).rejects.toThrow("generation was cancelled");
    expect(events.length).toBeGreaterThanOrEqual(3);
    // The worker is free again.
    expect((await r.run(settings("next"), new AbortController().signal, () => {})).images).toHaveLength(1);
  });

  it("fails the running job when the worker dies and starts a fresh one for the next", async () => {
    const r = start();
    await expect(r.run(settings("crash"), new AbortController().signal, () => {})).rejects.toThrow(
      "generation worker exited (code 3)",
    );
    const out = await r.run(settings("after the crash"), new AbortController().signal, () => {});
    expect(out.images).toHaveLength(1);
  });

  it("reports a load failure to every job", async () => {
    const r = start(true);
    await expect(r.ready).rejects.toThrow("cannot read /nowhere/llm/config.json");
    expect(r.loadError).toBe("cannot read /nowhere/llm/config.json");
    await expect(r.run(settings("a cat"), new AbortController().signal, () => {})).rejects.toThrow(
      "cannot read /nowhere",
    );
  });
});
