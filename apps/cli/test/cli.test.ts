import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodePng, encodePng, readConfig } from "@hart/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoFromFolder, startFakeHub } from "../../../packages/pipeline/test/hub-server";
import { countParameters, transformerSchema } from "../src/model/checkpoint-schema";
import { hart } from "./run-cli";

const temps: string[] = [];
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), "hart-cli-"));
  temps.push(d);
  return d;
};
let tiny: string;
let firstPng: string;

beforeAll(async () => {
  tiny = join(temp(), "tiny");
  const r = await hart(["create-tiny-model", tiny, "--seed", "0"]);
  expect(r.code).toBe(0);
});
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

describe("hart create-tiny-model", () => {
  it("writes the official layout with real, seeded weights", async () => {
    expect(readdirSync(tiny).sort()).toEqual(["README.md", "llm", "text_model", "tokenizer"]);
    expect(readdirSync(join(tiny, "llm")).sort()).toEqual([
      "config.json",
      "ema_model.safetensors",
      "model.safetensors",
    ]);
    expect(readdirSync(join(tiny, "text_model")).sort()).toEqual([
      "config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    const again = join(temp(), "tiny");
    expect((await hart(["create-tiny-model", again, "--seed", "0"])).code).toBe(0);
    for (const f of ["llm/model.safetensors", "llm/ema_model.safetensors", "tokenizer/model.safetensors"]) {
      expect(Buffer.compare(readFileSync(join(tiny, f)), readFileSync(join(again, f)))).toBe(0);
    }
    const other = join(temp(), "tiny");
    await hart(["create-tiny-model", other, "--seed", "1"]);
    expect(
      Buffer.compare(
        readFileSync(join(tiny, "llm/model.safetensors")),
        readFileSync(join(other, "llm/model.safetensors")),
      ),
    ).not.toBe(0);
    expect(
      Buffer.compare(
        readFileSync(join(tiny, "llm/model.safetensors")),
        readFileSync(join(tiny, "llm/ema_model.safetensors")),
      ),
    ).not.toBe(0);
  });

  it("refuses a non-empty folder unless --force", async () => {
    const r = await hart(["create-tiny-model", tiny]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/exists and is not empty \(pass --force/);
  });
});

describe("hart generate on the tiny model", () => {
  it("writes a valid PNG of the model's size, byte-identical for the same seed", async () => {
    const outs = [join(temp(), "a"), join(temp(), "b")];
    firstPng = join(outs[0], "000000.png");
    const runs = [];
    for (const out of outs) {
      runs.push(
        await hart(["generate", "--model", tiny, "--prompt", "a red heart", "--seed", "3", "--out", out, "--json"]),
      );
    }
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(runs[0].stdout);
    expect(summary.files).toEqual([join(outs[0], "000000.png"), join(outs[0], "prompt.txt")]);
    expect(summary.width).toBe(64);
    expect(summary.seed).toBe(3);
    const png = readFileSync(join(outs[0], "000000.png"));
    const img = decodePng(png);
    expect([img.width, img.height]).toEqual([64, 64]);
    expect(Buffer.compare(png, readFileSync(join(outs[1], "000000.png")))).toBe(0);
    expect(readFileSync(join(outs[0], "prompt.txt"), "utf8")).toBe("a red heart");
    expect(readdirSync(outs[0]).sort()).toEqual(["000000.png", "prompt.txt"]);
    const other = join(temp(), "c");
    await hart(["generate", "--model", tiny, "--prompt", "a red heart", "--seed", "4", "--out", other]);
    expect(Buffer.compare(png, readFileSync(join(other, "000000.png")))).not.toBe(0);
  });

  it("saves a grid for several prompts (the release's layout; 4 default prompts without any), or separate files", async () => {
    const grid = join(temp(), "grid");
    const r = await hart(["generate", "--model", tiny, "--out", grid, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).prompts).toHaveLength(4);
    expect(readFileSync(join(grid, "prompt.txt"), "utf8").split("\n")).toHaveLength(4);
    const g = decodePng(readFileSync(join(grid, "sample_images.png")));
    expect([g.width, g.height]).toEqual([4 * (64 + 2) + 2, 64 + 4]);
    // Black 2-px padding around and between the images.
    for (const x of [0, 1, 66, 67, 264, 265]) {
      expect([...g.data.subarray((10 * g.width + x) * 3, (10 * g.width + x) * 3 + 3)]).toEqual([0, 0, 0]);
    }

    const dir = temp();
    const file = join(dir, "prompts.txt");
    writeFileSync(file, "a red heart\n\na blue cat\r\n");
    const sep = join(dir, "sep");
    expect((await hart(["generate", "--model", tiny, "--prompt-file", file, "--out", sep, "--separate"])).code).toBe(0);
    expect(readdirSync(sep).sort()).toEqual(["000000.png", "000001.png", "prompt.txt"]);
    expect(readFileSync(join(sep, "prompt.txt"), "utf8")).toBe("a red heart\na blue cat");
  });

  it("fails clearly on bad input, with a non-zero exit code and no files", async () => {
    const dir = temp();
    const out = join(dir, "out");
    const cases: [string[], number, RegExp][] = [
      [["--model", join(dir, "missing"), "--prompt", "x"], 1, /model: folder .*missing does not exist/],
      [["--model", join(tiny, "text_model"), "--prompt", "x"], 1, /model_type "qwen2"/],
      [["--model", tiny, "--prompt", ""], 2, /--prompt 1 is empty/],
      [["--model", tiny, "--prompt", "x", "--cfg", "-1"], 2, /--cfg must be ≥ 0/],
      [["--model", tiny, "--prompt", "x", "--cfg", "abc"], 2, /--cfg must be a number/],
      [
        ["--model", tiny, "--prompt-file", join(dir, "nope.txt")],
        2,
        /cannot read the prompt file .*nope\.txt \(ENOENT\)/,
      ],
      [["--model", tiny, "--prompt", "x", "--prompt-file", join(dir, "nope.txt")], 2, /cannot be used with/],
      [["--model", tiny, "--prompt", "x", "--max-token-length", "7"], 1, /context_token = 300/],
    ];
    for (const [args, code, message] of cases) {
      const r = await hart(["generate", ...args, "--out", out]);
      expect(r.code, args.join(" ")).toBe(code);
      expect(r.stderr).toMatch(message);
      expect(existsSync(out), `${args.join(" ")} left files`).toBe(false);
    }
    const file = join(dir, "a-file");
    writeFileSync(file, "");
    const r = await hart(["generate", "--model", tiny, "--prompt", "x", "--out", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is a file, not a folder/);
  });

  it("stops on Ctrl-C (the abort signal) with exit code 130 and writes nothing", async () => {
    const out = join(temp(), "e");
    const controller = new AbortController();
    const r = await hart(["generate", "--model", tiny, "--prompt", "x", "--out", out], {
      tty: true,
      signal: controller.signal,
      onErr: (s) => {
        if (s.includes("Transformer")) controller.abort();
      },
    });
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/interrupted; nothing was written/);
    expect(existsSync(out)).toBe(false);
  });
});

describe("hart info, reconstruct, bench", () => {
  it("info: configuration, parameter counts and memory estimate", async () => {
    const r = await hart(["info", tiny, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout);
    const llm = readConfig(join(tiny, "llm"));
    const schema = transformerSchema(llm, readConfig(join(tiny, "tokenizer")));
    expect(info.parameters.transformer).toBe(countParameters(schema, (k) => !k.startsWith("diffloss.")));
    expect(info.tokenizer.imageSize).toBe(64);
    expect(info.transformer.patchNums).toEqual(llm.patch_nums);
    expect(info.memoryEstimate.totalBytes).toBeGreaterThan(info.memoryEstimate.weightsBytes);
    expect(info.files.map((f: { path: string }) => f.path)).toContain(join("llm", "ema_model.safetensors"));
    const text = await hart(["info", tiny]);
    expect(text.stdout).toMatch(/Image {9}64×64 pixels, 10 scales/);
  });

  it("reconstruct: PSNR of the hybrid and the discrete-only round trips", async () => {
    const dir = temp();
    const r = await hart(["reconstruct", firstPng, "--model", tiny, "--out", join(dir, "rec"), "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(Number.isFinite(result.psnrHybridDb)).toBe(true);
    expect(Number.isFinite(result.psnrDiscreteDb)).toBe(true);
    expect(readdirSync(join(dir, "rec")).sort()).toEqual(["000000.discrete.png", "000000.hybrid.png"]);
    const small = join(dir, "small.png");
    writeFileSync(small, encodePng({ width: 8, height: 8, data: new Uint8Array(192) }));
    const wrong = await hart(["reconstruct", small, "--model", tiny]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/is 8×8; this tokenizer takes 64×64 images/);
  });

  it("bench: per-stage latency after warm-up", async () => {
    const r = await hart(["bench", "--model", tiny, "--warmup", "0", "--iters", "1", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const b = JSON.parse(r.stdout);
    for (const k of ["textMs", "arMs", "diffusionMs", "decodeMs", "totalMs"])
      expect(b.stagesMs[k].mean).toBeGreaterThan(0);
    expect(b.arScaleMeanMs).toHaveLength(10);
    expect(b.imagesPerSecond).toBeGreaterThan(0);
  });

  it("bench --random-weights refuses a resolution the release schedule cannot end at, before building anything", async () => {
    const r = await hart(["bench", "--random-weights", "--resolution", "1000", "--json"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/resolution must be a multiple of 16 between 16 and 1024, got 1000/);
  });
});

describe("hart download and info with a hub", () => {
  it("downloads into the cache (HF_ENDPOINT), and info fetches only the configs", async () => {
    const hub = await startFakeHub({ "someone/tiny-hart": repoFromFolder(tiny) });
    const saved = process.env.HF_ENDPOINT;
    process.env.HF_ENDPOINT = hub.url;
    try {
      const cacheDir = temp();
      const info = await hart(["info", "someone/tiny-hart", "--cache-dir", cacheDir, "--json"]);
      expect(info.code, info.stderr).toBe(0);
      expect(JSON.parse(info.stdout).tokenizer.imageSize).toBe(64);
      const fetched = hub.requests.filter((r) => r.path.includes("/resolve/") && r.range !== "bytes=0-0");
      expect(fetched.map((r) => r.path.split("/").slice(-2).join("/")).sort()).toEqual([
        "llm/config.json",
        "text_model/config.json",
        "tokenizer/config.json",
      ]);
      const r = await hart(["download", "someone/tiny-hart", "--cache-dir", cacheDir, "--json"]);
      expect(r.code, r.stderr).toBe(0);
      const snapshot = JSON.parse(r.stdout).snapshots["someone/tiny-hart"];
      expect(
        Buffer.compare(
          readFileSync(join(snapshot, "llm/model.safetensors")),
          readFileSync(join(tiny, "llm/model.safetensors")),
        ),
      ).toBe(0);
      const missing = await hart(["download", "someone/absent", "--cache-dir", cacheDir]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/someone\/absent@main was not found on the hub/);
      const offline = await hart(["download", "someone/other", "--cache-dir", temp(), "--local-files-only"]);
      expect(offline.code).toBe(1);
    } finally {
      if (saved === undefined) delete process.env.HF_ENDPOINT;
      else process.env.HF_ENDPOINT = saved;
      await hub.close();
    }
  });
});

describe("the hart executable", () => {
  it("runs as a process: usage errors exit 2, help exits 0", () => {
    const entry = join(import.meta.dirname, "../src/hart.ts");
    const run = (args: string[]) =>
      spawnSync(process.execPath, ["--import", "tsx", entry, ...args], { encoding: "utf8", timeout: 60_000 });
    const help = run(["--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/generate .*reconstruct|generate[\s\S]*reconstruct/);
    const bad = run(["generate", "--cfg", "-2"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--cfg must be ≥ 0/);
  });
});
