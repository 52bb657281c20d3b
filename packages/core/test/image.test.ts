import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PNG } from "pngjs";
import { afterAll, describe, expect, it } from "vitest";
import { readSafetensors } from "../src/checkpoint/safetensors";
import { HartError } from "../src/errors";
import { imageGrid, imagesToTensor, tensorToImages } from "../src/io/image";
import { decodePng, encodePng, type RgbImage, readPng, writePng } from "../src/io/png";
import { createRng } from "../src/rng";
import { tensor } from "../src/tensor";

const dir = mkdtempSync(join(tmpdir(), "hart-core-image-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const rng = createRng(7);
const randomImage = (width: number, height: number): RgbImage => {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = rng.randint(0, 256);
  return { width, height, data };
};

describe("PNG", () => {
  it("round-trips RGB8 through bytes and through a file", async () => {
    const img = randomImage(37, 23);
    const back = decodePng(encodePng(img));
    expect(back.width).toBe(37);
    expect(back.height).toBe(23);
    expect(back.data).toEqual(img.data);
    const file = join(dir, "round.png");
    await writePng(file, img);
    expect((await readPng(file)).data).toEqual(img.data);
    expect((await readPng(readFileSync(file))).data).toEqual(img.data);
    // A real PNG signature and IHDR saying 8-bit RGB (colour type 2).
    const bytes = readFileSync(file);
    expect([...bytes.subarray(1, 4)].map((c) => String.fromCharCode(c)).join("")).toBe("PNG");
    expect(bytes[24]).toBe(8);
    expect(bytes[25]).toBe(2);
  });

  it("reads RGBA (alpha dropped) and greyscale PNGs as RGB", () => {
    const rgba = new PNG({ width: 2, height: 1 });
    rgba.data = Buffer.from([10, 20, 30, 0, 40, 50, 60, 255]);
    const fromRgba = decodePng(PNG.sync.write(rgba, { colorType: 6 }));
    expect(Array.from(fromRgba.data)).toEqual([10, 20, 30, 40, 50, 60]);
    const grey = new PNG({ width: 2, height: 1 });
    grey.data = Buffer.from([7, 7, 7, 255, 200, 200, 200, 255]);
    const fromGrey = decodePng(PNG.sync.write(grey, { colorType: 0, inputColorType: 6 }));
    expect(Array.from(fromGrey.data)).toEqual([7, 7, 7, 200, 200, 200]);
  });

  it("writes atomically: a failed write leaves neither a partial file nor a temp file", async () => {
    const target = join(dir, "atomic.png");
    writeFileSync(target, "old contents");
    await expect(writePng(target, { width: 2, height: 2, data: new Uint8Array(5) })).rejects.toThrow(HartError);
    expect(readFileSync(target, "utf8")).toBe("old contents");
    // The target is a directory: the rename fails after the temp file was written.
    const blocked = join(dir, "blocked.png");
    await import("node:fs/promises").then((fs) => fs.mkdir(join(blocked, "child"), { recursive: true }));
    await expect(writePng(blocked, randomImage(4, 4))).rejects.toThrow(/blocked\.png: cannot write the PNG/);
    await expect(writePng(join(dir, "no-such-dir", "x.png"), randomImage(4, 4))).rejects.toThrow(/cannot write/);
    expect(readdirSync(dir).filter((n) => n.endsWith(".tmp"))).toEqual([]);
    await expect(readPng(join(dir, "missing.png"))).rejects.toThrow(/missing\.png: cannot read the file/);
    await expect(readPng(new Uint8Array([1, 2, 3]))).rejects.toThrow(/not a readable PNG/);
    expect(existsSync(join(dir, "no-such-dir"))).toBe(false);
  });
});

describe("tensor ⇄ RGB8", () => {
  // The golden AR cases store the decoder output in [-1, 1] and the official `(img + 1) * 0.5`.
  // Same location rule as the conformance harness: $HART_GOLDEN_DIR, else ../shared/golden next to the repo.
  const golden = resolve(process.env.HART_GOLDEN_DIR ?? join(import.meta.dirname, "../../../../shared/golden"));
  const sets = existsSync(golden) ? readdirSync(golden).filter((s) => existsSync(join(golden, s, "cases"))) : [];
  it("finds the golden sets", () => {
    expect(sets.length, `no golden sets under ${golden} (set HART_GOLDEN_DIR)`).toBeGreaterThan(0);
  });
  for (const set of sets) {
    const file = join(golden, set, "cases", "ar_generate.safetensors");
    it.skipIf(!existsSync(file))(
      `${set}: [-1, 1] and [0, 1] give the same bytes as the official (x+1)·0.5 → uint8(x·255)`,
      () => {
        const sd = readSafetensors(file, (k) => k === "final.image_m11" || k === "final.image");
        const m11 = sd.get("final.image_m11")!;
        const unit = sd.get("final.image")!;
        const [B, , H, W] = unit.shape;
        const fromM11 = tensorToImages(m11 as never);
        const fromUnit = tensorToImages(unit as never, { valueRange: [0, 1] });
        expect(fromM11.length).toBe(B);
        let diffs = 0;
        for (let b = 0; b < B; b++) {
          expect(fromM11[b].width).toBe(W);
          expect(fromM11[b].height).toBe(H);
          // numpy astype(uint8) of float32(x·255), written out independently in HWC order.
          const u = unit.data as Float32Array;
          for (let c = 0; c < 3; c++)
            for (let p = 0; p < H * W; p++) {
              const want = Math.trunc(Math.fround(u[(b * 3 + c) * H * W + p] * 255));
              if (fromUnit[b].data[p * 3 + c] !== want) diffs++;
              if (fromM11[b].data[p * 3 + c] !== want) diffs++;
            }
        }
        expect(diffs).toBe(0);
      },
    );
  }

  it("truncation vs torchvision save_image rounding, clamping and NaN", () => {
    const x = tensor("float32", [1, 3, 1, 4], Float32Array.from([-1, 0, 1, 2, 0.5, -5, Number.NaN, 0.999, 0, 0, 0, 0]));
    const t = tensorToImages(x)[0].data;
    const r = tensorToImages(x, { rounding: "round" })[0].data;
    // pixel p, channel c at data[p*3 + c]; channel 0 = [-1, 0, 1, 2]
    expect([t[0], t[3], t[6], t[9]]).toEqual([0, 127, 255, 255]);
    expect([r[0], r[3], r[6], r[9]]).toEqual([0, 128, 255, 255]);
    // channel 1 = [0.5, -5, NaN, 0.999]: 0.75·255 = 191.25; clamped; NaN → 0; 0.9995·255 = 254.87
    expect([t[1], t[4], t[7], t[10]]).toEqual([191, 0, 0, 254]);
    expect([r[1], r[4], r[7], r[10]]).toEqual([191, 0, 0, 255]);
    expect(() => tensorToImages(tensor("float32", [1, 1, 2, 2], new Float32Array(4)))).toThrow(/\[B, 3, H, W\]/);
  });

  it("RGB8 → tensor → RGB8 is the identity (both ranges), like ToTensor + Normalize(0.5, 0.5)", () => {
    const imgs = [randomImage(5, 3), randomImage(5, 3)];
    for (const valueRange of [[-1, 1] as const, [0, 1] as const]) {
      const t = imagesToTensor(imgs, { valueRange });
      expect(t.shape).toEqual([2, 3, 3, 5]);
      const back = tensorToImages(t, { valueRange, rounding: "round" });
      expect(back.map((i) => Array.from(i.data))).toEqual(imgs.map((i) => Array.from(i.data)));
    }
    const t = imagesToTensor(imgs);
    const b = imgs[1].data[(2 * 5 + 4) * 3 + 1]; // image 1, y 2, x 4, green
    expect(t.data[((1 * 3 + 1) * 3 + 2) * 5 + 4]).toBe(Math.fround(Math.fround(Math.fround(b / 255) - 0.5) / 0.5));
    expect(() => imagesToTensor([imgs[0], randomImage(4, 3)])).toThrow(/image 1 is 4×3/);
  });
});

describe("imageGrid (torchvision make_grid layout)", () => {
  it("places n images in min(cols, n) columns with padding around and between", () => {
    const imgs = Array.from({ length: 5 }, () => randomImage(4, 3));
    const grid = imageGrid(imgs, { cols: 2, padding: 2, padValue: 9 });
    // make_grid: xmaps = 2, ymaps = 3, size (3·(3+2)+2) × (2·(4+2)+2)
    expect([grid.width, grid.height]).toEqual([14, 17]);
    const px = (img: RgbImage, x: number, y: number) =>
      Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));
    for (const [k, img] of imgs.entries()) {
      const x0 = (k % 2) * 6 + 2;
      const y0 = Math.floor(k / 2) * 5 + 2;
      for (let y = 0; y < 3; y++) for (let x = 0; x < 4; x++) expect(px(grid, x0 + x, y0 + y)).toEqual(px(img, x, y));
    }
    expect(px(grid, 0, 0)).toEqual([9, 9, 9]);
    expect(px(grid, 6, 2)).toEqual([9, 9, 9]); // the gap between columns
    expect(px(grid, 8, 12)).toEqual([9, 9, 9]); // the unused sixth cell
    const painted = grid.data.reduce((n, v) => n + (v === 9 ? 1 : 0), 0);
    expect(painted).toBeGreaterThanOrEqual((14 * 17 - 5 * 12) * 3);
  });

  it("defaults to 8 columns and padding 2; one image comes back unpadded (make_grid quirk)", () => {
    const imgs = Array.from({ length: 10 }, () => randomImage(2, 2));
    const grid = imageGrid(imgs);
    expect([grid.width, grid.height]).toEqual([8 * 4 + 2, 2 * 4 + 2]);
    const one = imageGrid([imgs[0]]);
    expect([one.width, one.height]).toEqual([2, 2]);
    expect(one.data).toEqual(imgs[0].data);
    expect(() => imageGrid([])).toThrow(/no images/);
    expect(() => imageGrid(imgs, { cols: 0 })).toThrow(/cols/);
  });
});
