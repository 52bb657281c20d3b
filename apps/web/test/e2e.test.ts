/**
 * The app as users run it: the built server (`node dist/server/main.js`) on a tiny golden checkpoint, driven
 * over HTTP and through the real page in headless Chromium.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Tensor } from "@hart/core";
import { HartPipeline } from "@hart/pipeline";
import { type Browser, chromium, type Page } from "playwright-core";
import { PNG } from "pngjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { imageLatent, LatentPreviewer } from "../src/server/preview";
import type { JobEvent, JobSnapshot, SubmitResponse } from "../src/shared/protocol";
import { readJobEvents } from "./helpers/http";
import { buildApp, REPO_ROOT, type ServerProcess, startServerProcess } from "./helpers/server-process";
import { type ChromiumLookup, ensureChromium } from "./setup/chromium";

const GOLDEN_DIR = resolve(process.env.HART_GOLDEN_DIR ?? join(REPO_ROOT, "../shared/golden"));
/** The golden set shaped like the release (sinusoidal levels, context norm, 7 scales), 32×32 images. */
const MODEL = join(GOLDEN_DIR, "release");
const ARTIFACTS = join(REPO_ROOT, "test-artifacts/web");
const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
];

const haveModel = existsSync(join(MODEL, "llm/config.json"));
let server: ServerProcess;
let browserLookup: ChromiumLookup;
let scales: number;

beforeAll(async () => {
  if (!haveModel) return;
  await buildApp();
  browserLookup = await ensureChromium();
  if ("skipReason" in browserLookup) console.warn(`browser test will be skipped: ${browserLookup.skipReason}`);
  server = await startServerProcess(["--model", MODEL, "--text-model", join(MODEL, "text_model"), "--max-queue", "3"]);
  scales = (JSON.parse(readFileSync(join(MODEL, "llm/config.json"), "utf8")) as { patch_nums: number[] }).patch_nums
    .length;
}, 1_200_000);

afterAll(async () => {
  await server?.stop();
});

function decodeDataUrl(url: string): PNG {
  expect(url.startsWith("data:image/png;base64,")).toBe(true);
  return PNG.sync.read(Buffer.from(url.slice("data:image/png;base64,".length), "base64"));
}

/** RGB bytes of a decoded PNG (pngjs gives RGBA). */
function rgbOf(png: PNG): Uint8Array {
  const out = new Uint8Array(png.width * png.height * 3);
  for (let p = 0; p < png.width * png.height; p++) out.set(png.data.subarray(p * 4, p * 4 + 3), p * 3);
  return out;
}

describe.skipIf(!haveModel)(`the server on the tiny "release" golden checkpoint (${MODEL})`, () => {
  it("reports the model's limits", () => {
    // context_token 10 → 40 characters; 32×32 images.
    const llm = JSON.parse(readFileSync(join(MODEL, "llm/config.json"), "utf8")) as { context_token: number };
    expect(server.config.maxPromptChars).toBe(llm.context_token * 4);
    expect(server.config.imageSize).toBe(32);
    expect(server.output()).toMatch(/model ready/);
  });

  it("streams progress and previews, and returns the pipeline's exact images", async () => {
    const settings = { prompt: "melting apple", seed: 7, cfg: 4.5, moreSmooth: true, numImages: 2 };
    const res = await fetch(`${server.base}/api/jobs`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(settings),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as SubmitResponse;
    const { events } = await readJobEvents(`${server.base}/api/jobs/${id}/events`, { timeoutMs: 120_000 });

    const progress = events.filter((e): e is Extract<JobEvent, { type: "progress" }> => e.type === "progress");
    // Stages arrive in pipeline order (the prompt filter's only when one is configured).
    const stages = progress.map((e) => e.stage).filter((s, i, all) => i === 0 || all[i - 1] !== s);
    expect(stages.filter((s) => s !== "filter")).toEqual(["text", "transformer", "diffusion", "decode"]);
    // The transformer's scales, counted as they finish; other stages' steps (if reported) count up too.
    const steps = (stage: string) =>
      progress.filter((e) => e.stage === stage && e.step !== undefined).map((e) => e.step);
    expect(steps("transformer")).toEqual(Array.from({ length: scales + 1 }, (_, i) => i));
    const diffusion = steps("diffusion");
    expect(diffusion).toEqual(Array.from({ length: diffusion.length }, (_, i) => i + 1));
    const previews = events.filter((e): e is Extract<JobEvent, { type: "preview" }> => e.type === "preview");
    expect(previews.map((p) => p.scale)).toEqual(Array.from({ length: scales }, (_, i) => i + 1));
    for (const p of previews) {
      const png = decodeDataUrl(p.dataUrl);
      // One preview pixel per latent pixel (8×8 for this model).
      expect([png.width, png.height, p.width, p.scales]).toEqual([8, 8, 8, scales]);
    }
    const done = events.at(-1);
    if (done?.type !== "done") throw new Error(`job ended with ${JSON.stringify(done)}`);
    expect(done.settings).toEqual(settings);
    expect(done.images).toHaveLength(2);

    const served = await Promise.all(
      done.images.map(async (img) =>
        PNG.sync.read(Buffer.from(await (await fetch(server.base + img.url)).arrayBuffer())),
      ),
    );
    // The same generation in this process, from the packages' sources: the server must hand out exactly it.
    const pipe = await HartPipeline.fromPretrained({ model: MODEL, textModel: join(MODEL, "text_model") });
    const latents: Tensor<"float32">[] = [];
    let fHat: Tensor<"float32"> | undefined;
    const direct = await pipe.generate({
      transformerOptions: {
        trace: (name: string, value: Tensor) => {
          if (/^s\d+\.f_hat$/.test(name)) {
            fHat = value as Tensor<"float32">;
            latents.push(imageLatent(fHat));
          }
          if (name === "last.h") latents.push(imageLatent(fHat!, value as Tensor<"float32">));
        },
      },
      prompts: [settings.prompt, settings.prompt],
      seed: settings.seed,
      cfg: settings.cfg,
      moreSmooth: true,
      maxTokenLength: (JSON.parse(readFileSync(join(MODEL, "llm/config.json"), "utf8")) as { context_token: number })
        .context_token,
    });
    for (let b = 0; b < 2; b++) {
      expect([served[b].width, served[b].height]).toEqual([32, 32]);
      expect(Buffer.from(rgbOf(served[b])).equals(Buffer.from(direct.images[b].data)), `image ${b}`).toBe(true);
    }
    // Each preview is the first image's latent after that scale, through the previewer fitted at load.
    const previewer = await LatentPreviewer.fit(pipe.tokenizer);
    expect(latents).toHaveLength(scales);
    previews.forEach((p, i) => {
      const expected = previewer.render(latents[i]).data;
      expect(Buffer.from(rgbOf(decodeDataUrl(p.dataUrl))).equals(Buffer.from(expected)), `preview ${i + 1}`).toBe(true);
    });
  });

  it("gives the same image for the same seed and another for another seed", async () => {
    const png = async (seed: number) => {
      const res = await fetch(`${server.base}/api/jobs`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ prompt: "neon holography crystal cat", seed }),
      });
      const { id } = (await res.json()) as SubmitResponse;
      const { events } = await readJobEvents(`${server.base}/api/jobs/${id}/events`, { timeoutMs: 120_000 });
      const done = events.at(-1);
      if (done?.type !== "done") throw new Error(`job ended with ${JSON.stringify(done)}`);
      return Buffer.from(await (await fetch(server.base + done.images[0].url)).arrayBuffer());
    };
    const [a, b, c] = [await png(11), await png(11), await png(12)];
    expect(a.equals(b)).toBe(true);
    expect(a.equals(c)).toBe(false);
  });

  it("cancels a running job inside the worker and goes on with the next", async () => {
    const submit = async (prompt: string) => {
      const res = await fetch(`${server.base}/api/jobs`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ prompt, seed: 1, numImages: 4 }),
      });
      expect(res.status).toBe(202);
      return ((await res.json()) as SubmitResponse).id;
    };
    const running = await submit("stopped halfway");
    const next = await submit("runs after it");
    let cancelledAt: JobEvent | undefined;
    const { events } = await readJobEvents(`${server.base}/api/jobs/${running}/events`, {
      timeoutMs: 120_000,
      onEvent: (e) => {
        // Cancel once the transformer is under way: the abort has to travel into the worker.
        if (!cancelledAt && e.type === "progress" && e.stage === "transformer" && (e.step ?? 0) >= 1) {
          cancelledAt = e;
          void fetch(`${server.base}/api/jobs/${running}`, { method: "DELETE" });
        }
      },
    });
    expect(cancelledAt).toBeDefined();
    expect(events.slice(-2).map((e) => e.type)).toEqual(["cancelling", "cancelled"]);
    // It stopped early: no later stage was reached.
    const after = events.slice(events.indexOf(cancelledAt!) + 1);
    expect(after.some((e) => e.type === "progress" && (e.stage === "diffusion" || e.stage === "decode"))).toBe(false);
    const last = (await readJobEvents(`${server.base}/api/jobs/${next}/events`, { timeoutMs: 120_000 })).events.at(-1);
    expect(last?.type === "done" && last.images.length).toBe(4);
  });

  it("drives the page in Chromium: prompt, generate, progress, gallery, download, cancel, screenshot", async (ctx) => {
    if ("skipReason" in browserLookup) {
      console.warn(`SKIPPED browser test: ${browserLookup.skipReason}`);
      return ctx.skip(browserLookup.skipReason);
    }
    const browser: Browser = await chromium.launch({
      executablePath: browserLookup.path,
      headless: true,
      args: CHROMIUM_FLAGS,
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 1400 }, acceptDownloads: true });
      await runPageScenario(page);
    } finally {
      await browser.close();
    }
  }, 240_000);
});

describe.skipIf(!haveModel)("the prompt-safety hook (--blocklist and --prompt-filter)", () => {
  let guarded: ServerProcess;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "hart-web-safety-"));
    writeFileSync(join(dir, "blocklist.txt"), "# words the demo refuses\nfox\n");
    guarded = await startServerProcess([
      "--model",
      MODEL,
      "--blocklist",
      join(dir, "blocklist.txt"),
      "--prompt-filter",
      fileURLToPath(new URL("./fixtures/prompt-filter.mjs", import.meta.url)),
      "--preview",
      "off",
    ]);
  }, 300_000);
  afterAll(async () => {
    await guarded?.stop();
  });

  async function generate(prompt: string) {
    const res = await fetch(`${guarded.base}/api/jobs`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prompt, seed: 3 }),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as SubmitResponse;
    const { events } = await readJobEvents(`${guarded.base}/api/jobs/${id}/events`, { timeoutMs: 120_000 });
    const done = events.at(-1);
    if (done?.type !== "done") throw new Error(`job ended with ${JSON.stringify(done)}`);
    const png = Buffer.from(await (await fetch(guarded.base + done.images[0].url)).arrayBuffer());
    return { done, png, previews: events.filter((e) => e.type === "preview").length };
  }

  it("replaces flagged prompts with the release demo's red heart", async () => {
    expect(guarded.config.safetyCheck).toBe(true);
    const heart = await generate("A red heart.");
    const byList = await generate("a fox in snow");
    const byModule = await generate("something forbidden");
    const fine = await generate("a cat in snow");
    expect([heart, byList, byModule, fine].map((r) => r.done.promptReplaced)).toEqual([false, true, true, false]);
    // A replaced prompt is generated as "A red heart." with the same seed; the settings keep what was asked.
    expect(byList.png.equals(heart.png)).toBe(true);
    expect(byModule.png.equals(heart.png)).toBe(true);
    expect(fine.png.equals(heart.png)).toBe(false);
    expect(byList.done.settings.prompt).toBe("a fox in snow");
    // --preview off: no previews.
    expect(fine.previews).toBe(0);
  });
});

/** What the page's EventSources received, recorded in the page. */
interface SseRecord {
  url: string;
  event: JobEvent;
}

async function runPageScenario(page: Page): Promise<void> {
  const problems: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  // Record every server-sent event the page gets, and every state the queue cards show.
  await page.addInitScript({ path: fileURLToPath(new URL("./helpers/page-recorder.js", import.meta.url)) });

  await page.goto(server.base);
  await page.locator("#model-status.ready").waitFor({ timeout: 30_000 });
  // The release demo's examples, one click each.
  await expect.poll(() => page.locator(".example").count()).toBe(7);
  await page.locator(".example").first().click();
  expect(await page.inputValue("#prompt")).toBe("melting apple");
  // Defaults of the release demo.
  expect(await page.inputValue("#cfg")).toBe("4.5");
  expect(await page.isChecked("#randomize")).toBe(true);
  expect(await page.isChecked("#smooth")).toBe(true);

  // Type a prompt and a fixed seed, generate.
  await page.fill("#prompt", "a red fox in snow");
  await page.uncheck("#randomize");
  await page.fill("#seed", "5");
  await page.click("#run");
  const card = page.locator("#gallery .card").first();
  await card.waitFor({ timeout: 120_000 });
  await expect
    .poll(
      () =>
        card.locator("img").evaluate((el) => {
          const img = el as unknown as { complete: boolean; naturalWidth: number };
          return img.complete && img.naturalWidth;
        }),
      {
        timeout: 10_000,
      },
    )
    .toBe(32);
  expect(await card.locator(".prompt").textContent()).toBe("a red fox in snow");
  expect(await card.locator(".meta").textContent()).toMatch(
    /^seed 5 · guidance 4.5 · more smooth · 1 image · #1 · 32×32/,
  );

  const sse = () => page.evaluate(() => (globalThis as unknown as { __sse: SseRecord[] }).__sse);
  const cards = () =>
    page.evaluate(
      () => (globalThis as unknown as { __cards: { id: string; state?: string; stage?: string }[] }).__cards,
    );
  const first = await sse();
  const firstTypes = first.map((r) => r.event.type);
  expect(firstTypes[0]).toBe("queued");
  expect(firstTypes.at(-1)).toBe("done");
  expect(first.filter((r) => r.event.type === "progress").length).toBeGreaterThan(scales);
  expect(first.filter((r) => r.event.type === "preview")).toHaveLength(scales);
  // The card went through running and showed the transformer's scales before it left for the gallery.
  const firstCards = await cards();
  expect(firstCards.some((c) => c.state === "running")).toBe(true);
  expect(firstCards.some((c) => c.stage === "transformer")).toBe(true);

  // Download button: a PNG named after the seed.
  const [download] = await Promise.all([page.waitForEvent("download"), card.locator("a.download").click()]);
  expect(download.suggestedFilename()).toBe("hart-5-1.png");
  const file = await download.path();
  expect(PNG.sync.read(readFileSync(file)).width).toBe(32);

  // Queue three more (four images each) and cancel the last one at once: it waits behind two jobs, so the
  // click lands while it is queued (or, on a very fast machine, running) — never after it finished.
  await page.selectOption("#num-images", "4");
  for (const prompt of ["a lighthouse at dusk", "a bowl of ramen", "to be cancelled"]) {
    await page.fill("#prompt", prompt);
    await page.click("#run");
    await page.locator("#jobs .job", { hasText: prompt }).waitFor();
  }
  const victim = page.locator("#jobs .job", { hasText: "to be cancelled" });
  await victim.locator("button.cancel").click({ timeout: 10_000 });
  // A picture of the queue (a running job with its preview, if it is still going).
  await page
    .locator("#jobs .job[data-preview-scale]")
    .first()
    .waitFor({ timeout: 5_000 })
    .catch(() => {});
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, "queue.png"), fullPage: true });
  await expect
    .poll(async () => (await sse()).some((r) => r.event.type === "cancelled"), { timeout: 60_000 })
    .toBe(true);
  const cancelled = (await sse()).find((r) => r.event.type === "cancelled")!;
  const victimId = decodeURIComponent(/\/api\/jobs\/([^/]+)\/events/.exec(cancelled.url)![1]);
  // It had been shown waiting with its position, and never finished.
  const victimEvents = (await sse()).filter((r) => r.url === cancelled.url).map((r) => r.event);
  expect(victimEvents[0]).toMatchObject({ type: "queued" });
  expect(victimEvents[0].type === "queued" && victimEvents[0].position).toBeGreaterThanOrEqual(1);
  expect(victimEvents.some((e) => e.type === "done")).toBe(false);
  const snapshot = (await (await fetch(`${server.base}/api/jobs/${victimId}`)).json()) as JobSnapshot;
  expect(snapshot.state).toBe("cancelled");
  expect(snapshot.settings.prompt).toBe("to be cancelled");

  // The others finish: 1 + 4 + 4 images in the gallery, none from the cancelled job.
  await expect.poll(() => page.locator("#gallery .card").count(), { timeout: 120_000 }).toBe(9);
  expect(await page.locator("#gallery .card", { hasText: "to be cancelled" }).count()).toBe(0);
  await expect.poll(() => page.locator("#jobs .job").count(), { timeout: 10_000 }).toBe(0);

  // Keep a picture of the page (gallery + form) for people to look at.
  await page.screenshot({ path: join(ARTIFACTS, "page.png"), fullPage: true });
  expect(problems).toEqual([]);
}
