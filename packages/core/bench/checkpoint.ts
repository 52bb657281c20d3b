/**
 * Checkpoint IO bench: writes a synthetic torch.save checkpoint of `--mib`
 * MiB (default 2300, i.e. over 2 GiB) chunk by chunk, then measures
 * `readTorchBin`, `writeSafetensors` and `readSafetensors`: wall time and the
 * resident-memory growth relative to the checkpoint size (the loaders should
 * hold about one copy of the weights, no more).
 *
 *   npx tsx bench/checkpoint.ts [--mib 2300] [--dir /tmp]
 */
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchArgs, readSafetensors, readTorchBin, type StateDict, writeSafetensors } from "../src/index";
import { type StorageSpec, stateDictPickle, type TensorSpec, ZipWriter } from "../test/helpers/torch-save";

const { arg } = benchArgs();
const totalMiB = Number(arg("mib", "2300"));
const dir = mkdtempSync(join(arg("dir", tmpdir()), "hart-ckpt-bench-"));
const GiB = 2 ** 30;
const CHUNK = 64 * 2 ** 20;

/** The value stored at float index i (cheap to generate and to check). */
const valueAt = (i: number) => (i % 1009) - 504;

function* floatChunks(count: number): Generator<Uint8Array> {
  const buf = new Float32Array(CHUNK / 4);
  for (let start = 0; start < count; start += buf.length) {
    const n = Math.min(buf.length, count - start);
    for (let j = 0; j < n; j++) buf[j] = valueAt(start + j);
    yield new Uint8Array(buf.buffer, 0, n * 4);
  }
}

const rssGiB = () => process.memoryUsage().rss / GiB;

try {
  // Two big matrices (one saved transposed, as a strided view of its storage) plus a small shared view.
  const bigElems = Math.floor((totalMiB * 2 ** 20 * 0.75) / 4 / 4096) * 4096;
  const midElems = Math.floor((totalMiB * 2 ** 20 * 0.25) / 4 / 1024) * 1024;
  const storages = new Map<string, StorageSpec>([
    ["0", { type: "FloatStorage", numel: bigElems, bytes: new Uint8Array(0) }],
    ["1", { type: "FloatStorage", numel: midElems, bytes: new Uint8Array(0) }],
  ]);
  const tensors: TensorSpec[] = [
    { key: "big.weight", storage: "0", offset: 0, shape: [bigElems / 4096, 4096], stride: [4096, 1] },
    { key: "big.head", storage: "0", offset: 4096, shape: [8, 4096], stride: [4096, 1] },
    { key: "mid.weight_t", storage: "1", offset: 0, shape: [1024, midElems / 1024], stride: [1, 1024] },
  ];
  const file = join(dir, "pytorch_model.bin");
  let t0 = performance.now();
  const fd = openSync(file, "w");
  const zip = new ZipWriter((b) => {
    for (let done = 0; done < b.length; ) done += writeSync(fd, b, done, b.length - done);
  });
  zip.add("pytorch_model/data.pkl", [stateDictPickle(tensors, storages)]);
  zip.add("pytorch_model/data/0", floatChunks(bigElems));
  zip.add("pytorch_model/data/1", floatChunks(midElems));
  zip.add("pytorch_model/version", [new TextEncoder().encode("3\n")]);
  zip.finish();
  closeSync(fd);
  const fileGiB = statSync(file).size / GiB;
  console.log(`wrote ${file}: ${fileGiB.toFixed(2)} GiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  let rss0 = rssGiB();
  t0 = performance.now();
  let sd: StateDict | undefined = readTorchBin(file);
  const binSeconds = (performance.now() - t0) / 1000;
  const binRss = rssGiB() - rss0;
  const big = sd.get("big.weight")!.data as Float32Array;
  const mid = sd.get("mid.weight_t")!.data as Float32Array;
  const cols = midElems / 1024;
  for (const i of [0, 1, 4095, 4096, big.length - 1]) if (big[i] !== valueAt(i)) throw new Error(`big[${i}] wrong`);
  // mid.weight_t[r, c] = storage[r + 1024 c]
  for (const [r, c] of [
    [0, 0],
    [1, 0],
    [0, 1],
    [1023, cols - 1],
  ]) {
    if (mid[r * cols + c] !== valueAt(r + 1024 * c)) throw new Error(`mid[${r},${c}] wrong`);
  }
  if (sd.get("big.head")!.data.buffer !== big.buffer) throw new Error("shared storage was copied");
  console.log(
    `readTorchBin: ${binSeconds.toFixed(2)} s (${(fileGiB / binSeconds).toFixed(2)} GiB/s), RSS +${binRss.toFixed(2)} GiB for a ${fileGiB.toFixed(2)} GiB file (ratio ${(binRss / fileGiB).toFixed(2)})`,
  );

  const st = join(dir, "model.safetensors");
  t0 = performance.now();
  writeSafetensors(st, sd);
  const writeSeconds = (performance.now() - t0) / 1000;
  const stGiB = statSync(st).size / GiB;
  console.log(`writeSafetensors: ${writeSeconds.toFixed(2)} s for ${stGiB.toFixed(2)} GiB`);
  sd = undefined;
  (globalThis as { gc?: () => void }).gc?.();

  rss0 = rssGiB();
  t0 = performance.now();
  const back = readSafetensors(st);
  const stSeconds = (performance.now() - t0) / 1000;
  const stRss = rssGiB() - rss0;
  const big2 = back.get("big.weight")!.data as Float32Array;
  if (big2[big2.length - 1] !== valueAt(big2.length - 1)) throw new Error("safetensors round trip wrong");
  console.log(
    `readSafetensors: ${stSeconds.toFixed(2)} s, RSS +${stRss.toFixed(2)} GiB for ${stGiB.toFixed(2)} GiB (RSS growth is a lower bound if the previous dict was not collected)`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
