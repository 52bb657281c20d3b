import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  HartError,
  loadStateDict,
  readConfig,
  readSafetensors,
  readTorchBin,
  type StateDict,
  type Tensor,
  takeTensor,
  tensor,
  tensorBytes,
  writeSafetensors,
} from "../src/index";
import { PickleWriter, type StorageSpec, stateDictPickle, type TensorSpec, torchSaveBytes } from "./helpers/torch-save";

const GOLDEN_DIR = resolve(process.env.HART_GOLDEN_DIR ?? join(import.meta.dirname, "../../../../shared/golden"));
const SETS = existsSync(GOLDEN_DIR)
  ? readdirSync(GOLDEN_DIR).filter((s) => existsSync(join(GOLDEN_DIR, s, "llm", "config.json")))
  : [];
const tmp = mkdtempSync(join(tmpdir(), "hart-ckpt-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function sameBytes(a: Tensor, b: Tensor): boolean {
  return Buffer.from(tensorBytes(a)).equals(Buffer.from(tensorBytes(b)));
}

/** Asserts two state dicts hold the same keys, dtypes, shapes and bytes. */
function expectIdentical(actual: StateDict, expected: StateDict, what: string) {
  expect([...actual.keys()].sort(), what).toEqual([...expected.keys()].sort());
  for (const [key, e] of expected) {
    const a = actual.get(key)!;
    expect(a.dtype, `${what}: ${key} dtype`).toBe(e.dtype);
    expect(a.shape, `${what}: ${key} shape`).toEqual(e.shape);
    expect(sameBytes(a, e), `${what}: ${key} bytes`).toBe(true);
  }
}

function expectHartError(fn: () => unknown, ...parts: (string | RegExp)[]): HartError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, "expected a HartError").toBeInstanceOf(HartError);
  for (const p of parts) expect((caught as HartError).message).toMatch(p);
  return caught as HartError;
}

describe("golden checkpoints", () => {
  it("finds golden sets", () => {
    expect(SETS.length, `no golden sets under ${GOLDEN_DIR} (set HART_GOLDEN_DIR)`).toBeGreaterThan(0);
  });

  for (const set of SETS) {
    const dir = join(GOLDEN_DIR, set);

    it(`${set}: pytorch_model.bin and model.safetensors hold identical tensors (llm and tokenizer)`, () => {
      for (const part of ["llm", "tokenizer"]) {
        const bin = loadStateDict(join(dir, part), { file: "pytorch_model.bin" });
        const st = readSafetensors(join(dir, part, "model.safetensors"));
        expect(bin.size).toBeGreaterThan(0);
        expectIdentical(bin, st, `${set}/${part}`);
        // the folder default is model.safetensors
        expectIdentical(loadStateDict(join(dir, part)), st, `${set}/${part} default`);
      }
    });

    it(`${set}: ema_model.bin has the same keys and shapes and different learned values`, () => {
      const base = loadStateDict(join(dir, "llm", "pytorch_model.bin"));
      const ema = loadStateDict(join(dir, "llm"), { file: "ema_model.bin" });
      expect([...ema.keys()].sort()).toEqual([...base.keys()].sort());
      let differing = 0;
      for (const [key, t] of base) {
        const e = ema.get(key)!;
        expect(e.dtype, key).toBe(t.dtype);
        expect(e.shape, key).toEqual(t.shape);
        if (!sameBytes(e, t)) differing++;
        // integer tensors are buffers (e.g. level ids), never perturbed
        if (t.dtype === "int64") expect(sameBytes(e, t), key).toBe(true);
      }
      expect(differing).toBeGreaterThan(base.size / 2);
    });

    it(`${set}: prefix selection and stripping`, () => {
      const all = loadStateDict(join(dir, "llm"));
      const prefix = [...all.keys()].find((k) => k.includes("."))!.split(".")[0] + ".";
      const expected = [...all.keys()].filter((k) => k.startsWith(prefix));
      const picked = loadStateDict(join(dir, "llm", "pytorch_model.bin"), { prefix, stripPrefix: true });
      expect([...picked.keys()].sort()).toEqual(expected.map((k) => k.slice(prefix.length)).sort());
      for (const k of expected) expect(sameBytes(picked.get(k.slice(prefix.length))!, all.get(k)!)).toBe(true);
      const filtered = loadStateDict(join(dir, "llm"), { filter: (k) => k === expected[0] });
      expect([...filtered.keys()]).toEqual([expected[0]]);
      expectHartError(() => loadStateDict(join(dir, "llm"), { prefix: "no.such.prefix." }), "no.such.prefix.");
    });

    it(`${set}: readConfig`, () => {
      const raw = JSON.parse(readFileSync(join(dir, "llm", "config.json"), "utf8"));
      const cfg = readConfig(join(dir, "llm"), { modelType: raw.model_type });
      expect(cfg).toEqual(raw);
      expectHartError(
        () => readConfig(join(dir, "llm"), { modelType: "qwen2" }),
        "config.json",
        "qwen2",
        raw.model_type,
      );
    });
  }
});

/** Float32 storage 0..23, shared by a strided and two contiguous views. */
function handMade(): { tensors: TensorSpec[]; storages: Map<string, StorageSpec>; expected: StateDict } {
  const f32 = Float32Array.from({ length: 24 }, (_, i) => i * 1.5 - 7);
  const f16 = Uint16Array.from([0x3c00, 0xc000, 0x7c00, 0x0001, 0x7bff, 0x8000]); // 1, -2, inf, tiny, max, -0
  const bf16 = Uint16Array.from([0x3f80, 0x4000, 0xbf80, 0x7f80, 0x0000, 0x4049, 0x1234]);
  const f64 = Float64Array.from([Math.PI, -1e300, 5e-324, Number.NaN]);
  const i64 = BigInt64Array.from([-(2n ** 62n), 1n, 2n, 3n, 2n ** 40n]);
  const i32 = Int32Array.from([-5, 2147483647, 7]);
  const i8 = Int8Array.from([-128, 127, 0]);
  const u8 = Uint8Array.from([255, 0, 9]);
  const bool = Uint8Array.from([1, 0, 0, 1, 1]);
  const big = Float32Array.from({ length: 130 * 70 + 3 }, (_, i) => i * 0.25);
  const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const storages = new Map<string, StorageSpec>([
    ["0", { type: "FloatStorage", numel: 24, bytes: bytes(f32) }],
    ["1", { type: "HalfStorage", numel: 6, bytes: bytes(f16) }],
    ["2", { type: "BFloat16Storage", numel: 7, bytes: bytes(bf16) }],
    ["3", { type: "DoubleStorage", numel: 4, bytes: bytes(f64) }],
    ["4", { type: "LongStorage", numel: 5, bytes: bytes(i64) }],
    ["5", { type: "IntStorage", numel: 3, bytes: bytes(i32) }],
    ["6", { type: "CharStorage", numel: 3, bytes: bytes(i8) }],
    ["7", { type: "ByteStorage", numel: 3, bytes: bytes(u8) }],
    ["8", { type: "BoolStorage", numel: 5, bytes: bytes(bool) }],
    ["9", { type: "FloatStorage", numel: big.length, bytes: bytes(big) }],
  ]);
  const tensors: TensorSpec[] = [
    // a transposed [2,3] view starting at element 4: element (i, j) = storage[4 + i + 2j]
    { key: "strided", storage: "0", offset: 4, shape: [2, 3], stride: [1, 2] },
    { key: "shared.a", storage: "0", offset: 10, shape: [2, 5], stride: [5, 1] },
    { key: "shared.b", storage: "0", offset: 0, shape: [4], stride: [1], parameter: true },
    // a permuted 3-D view (element (a, b, c) = storage[1 + 12a + b + 4c])
    { key: "stepped", storage: "0", offset: 1, shape: [2, 2, 3], stride: [12, 1, 4] },
    // a transposed matrix larger than the copy tiles, and rows with gaps between them
    { key: "big.t", storage: "9", offset: 3, shape: [130, 70], stride: [1, 130] },
    { key: "rows", storage: "0", offset: 2, shape: [3, 4], stride: [8, 1] },
    { key: "half", storage: "1", offset: 0, shape: [3, 2], stride: [2, 1] },
    { key: "bf16.t", storage: "2", offset: 1, shape: [3, 2], stride: [1, 3] },
    { key: "double.t", storage: "3", offset: 0, shape: [2, 2], stride: [1, 2] },
    { key: "long", storage: "4", offset: 1, shape: [2, 2], stride: [2, 1] },
    { key: "long.scalar", storage: "4", offset: 4, shape: [], stride: [] },
    { key: "int", storage: "5", offset: 0, shape: [3], stride: [1] },
    { key: "char", storage: "6", offset: 0, shape: [3], stride: [1] },
    { key: "byte", storage: "7", offset: 0, shape: [1, 3], stride: [3, 1] },
    { key: "mask", storage: "8", offset: 0, shape: [5], stride: [1] },
    { key: "empty", storage: "0", offset: 0, shape: [0, 3], stride: [3, 1] },
  ];
  // expected values by plain index arithmetic on the storages
  const gather = <A extends { length: number; [i: number]: unknown }>(
    src: A,
    make: (n: number) => A,
    offset: number,
    shape: number[],
    stride: number[],
  ): A => {
    const n = shape.reduce((x, y) => x * y, 1);
    const out = make(n);
    for (let flat = 0; flat < n; flat++) {
      let rem = flat;
      let at = offset;
      for (let d = shape.length - 1; d >= 0; d--) {
        at += (rem % shape[d]) * stride[d];
        rem = Math.floor(rem / shape[d]);
      }
      out[flat] = src[at];
    }
    return out;
  };
  const f = (t: TensorSpec) =>
    tensor(
      "float32",
      t.shape,
      gather(f32, (n) => new Float32Array(n), t.offset, t.shape, t.stride),
    );
  const expected: StateDict = new Map<string, Tensor>([
    ["strided", f(tensors[0])],
    ["shared.a", f(tensors[1])],
    ["shared.b", f(tensors[2])],
    ["stepped", f(tensors[3])],
    [
      "big.t",
      tensor(
        "float32",
        [130, 70],
        gather(big, (n) => new Float32Array(n), 3, [130, 70], [1, 130]),
      ),
    ],
    ["rows", f(tensors[5])],
    ["half", tensor("float16", [3, 2], f16)],
    [
      "bf16.t",
      tensor(
        "bfloat16",
        [3, 2],
        gather(bf16, (n) => new Uint16Array(n), 1, [3, 2], [1, 3]),
      ),
    ],
    [
      "double.t",
      tensor(
        "float64",
        [2, 2],
        gather(f64, (n) => new Float64Array(n), 0, [2, 2], [1, 2]),
      ),
    ],
    ["long", tensor("int64", [2, 2], i64.slice(1, 5))],
    ["long.scalar", tensor("int64", [], i64.slice(4, 5))],
    ["int", tensor("int32", [3], i32)],
    ["char", tensor("int8", [3], i8)],
    ["byte", tensor("uint8", [1, 3], u8)],
    ["mask", tensor("bool", [5], bool)],
    ["empty", tensor("float32", [0, 3], new Float32Array(0))],
  ]);
  return { tensors, storages, expected };
}

describe("hand-made torch.save checkpoints", () => {
  const { tensors, storages, expected } = handMade();
  const variants = [
    { name: "protocol 2, stored", proto: 2 as const, zip: {} },
    { name: "protocol 4, deflated", proto: 4 as const, zip: { deflate: true } },
    { name: "protocol 2, zip64", proto: 2 as const, zip: { zip64: true } },
  ];
  for (const v of variants) {
    it(`reads offsets, strides, shared storages and every dtype (${v.name})`, () => {
      const file = join(tmp, `hand-${v.proto}-${Object.keys(v.zip).join("")}.bin`);
      writeFileSync(file, torchSaveBytes("archive", stateDictPickle(tensors, storages, v.proto), storages, v.zip));
      const sd = readTorchBin(file);
      expectIdentical(sd, expected, v.name);
      expect([...sd.keys()]).toEqual(tensors.map((t) => t.key)); // insertion order kept
      // contiguous views of one storage share its memory (read once, no copies)
      expect(sd.get("shared.a")!.data.buffer).toBe(sd.get("shared.b")!.data.buffer);
    });
  }

  it("reads only the storages of kept keys", () => {
    // storage "1" record is broken (too short): only tensors that need it fail
    const broken = new Map(storages);
    broken.set("1", { ...storages.get("1")!, bytes: storages.get("1")!.bytes.subarray(0, 4) });
    const file = join(tmp, "broken-storage.bin");
    writeFileSync(file, torchSaveBytes("model", stateDictPickle(tensors, broken), broken));
    const sd = readTorchBin(file, (k) => k !== "half");
    expect(sd.has("half")).toBe(false);
    expect(sameBytes(sd.get("mask")!, expected.get("mask")!)).toBe(true);
    expectHartError(() => readTorchBin(file), "broken-storage.bin", "model/data/1", /truncated or corrupt/);
  });

  it("rejects a tensor that reaches past its storage", () => {
    const bad: TensorSpec[] = [{ key: "w", storage: "0", offset: 20, shape: [2, 3], stride: [3, 1] }];
    const file = join(tmp, "overrun.bin");
    writeFileSync(file, torchSaveBytes("overrun", stateDictPickle(bad, storages), storages));
    expectHartError(() => readTorchBin(file), "overrun.bin", '"w"', "past its storage");
  });

  for (const [module, name] of [
    ["os", "system"],
    ["builtins", "eval"],
    ["posix", "system"],
    ["torch", "load"],
  ]) {
    it(`refuses the global ${module}.${name} without running anything`, () => {
      const w = new PickleWriter(2);
      w.global(module, name).mark().str("touch /tmp/hart-pwned").tuple().reduce();
      const file = join(tmp, `evil-${name}.bin`);
      writeFileSync(file, torchSaveBytes("evil", w.bytes(), new Map()));
      const err = expectHartError(() => readTorchBin(file), `evil-${name}.bin`, `"${module}.${name}"`);
      expect(err.code).toBe("unsafe-pickle");
    });
  }

  it("refuses a global hidden in a protocol-4 STACK_GLOBAL and calls of non-callables", () => {
    const w = new PickleWriter(4);
    w.global("subprocess", "Popen").mark().str("ls").tuple().reduce();
    const file = join(tmp, "evil4.bin");
    writeFileSync(file, torchSaveBytes("evil4", w.bytes(), new Map()));
    expectHartError(() => readTorchBin(file), "evil4.bin", '"subprocess.Popen"');

    const v = new PickleWriter(2);
    v.str("not callable").emptyTuple().reduce();
    writeFileSync(file, torchSaveBytes("evil4", v.bytes(), new Map()));
    expectHartError(() => readTorchBin(file), "evil4.bin", /refusing to call/);
  });
});

describe("bad checkpoints", () => {
  const goldenBin = SETS.length ? join(GOLDEN_DIR, SETS[0], "llm", "pytorch_model.bin") : "";

  it("corrupt and truncated .bin files fail clearly", () => {
    const bytes = readFileSync(goldenBin);
    const garbage = join(tmp, "garbage.bin");
    writeFileSync(garbage, new TextEncoder().encode("this is not a checkpoint at all"));
    expectHartError(() => readTorchBin(garbage), "garbage.bin", /not a PyTorch zip checkpoint/);

    const truncated = join(tmp, "truncated.bin");
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    expectHartError(() => loadStateDict(truncated), "truncated.bin", /truncated or corrupt/);

    // flip one byte inside data.pkl (its data starts 64-byte aligned within the first 256 bytes)
    const corrupt = Buffer.from(bytes);
    corrupt[200] ^= 0x5a;
    const corruptFile = join(tmp, "corrupt.bin");
    writeFileSync(corruptFile, corrupt);
    expectHartError(() => readTorchBin(corruptFile), "corrupt.bin", /CRC|corrupt/);

    const legacy = join(tmp, "legacy.bin");
    writeFileSync(legacy, new PickleWriter(2).int(0x1950a86a).bytes());
    expectHartError(() => readTorchBin(legacy), "legacy.bin", /legacy/);
  });

  it("corrupt and truncated .safetensors files fail clearly", () => {
    const st = readFileSync(join(GOLDEN_DIR, SETS[0], "llm", "model.safetensors"));
    const truncated = join(tmp, "truncated.safetensors");
    writeFileSync(truncated, st.subarray(0, st.length - 100));
    expectHartError(() => readSafetensors(truncated), "truncated.safetensors", /past the end of the file/);
    const header = join(tmp, "header.safetensors");
    const bad = Buffer.from(st);
    bad[9] = 0x21; // break the JSON
    writeFileSync(header, bad);
    expectHartError(() => loadStateDict(header), "header.safetensors", /corrupt safetensors header/);
  });

  it("missing checkpoint files, configs and keys fail clearly", () => {
    const empty = mkdtempSync(join(tmp, "empty-"));
    expectHartError(() => loadStateDict(empty), empty, "model.safetensors", "pytorch_model.bin");
    expectHartError(() => loadStateDict(empty, { file: "ema_model.bin" }), "ema_model.bin");
    expectHartError(() => readConfig(empty), "config.json", "not found");
    writeFileSync(join(empty, "config.json"), "{ nope");
    expectHartError(() => readConfig(empty), "config.json", "not valid JSON");
    writeFileSync(join(empty, "config.json"), "[1, 2]");
    expectHartError(() => readConfig(empty), "config.json", "JSON object");

    const sd = loadStateDict(join(GOLDEN_DIR, SETS[0], "tokenizer"), { prefix: "vae.", stripPrefix: true });
    const [someKey, t] = [...sd][0];
    expectHartError(
      () => takeTensor(sd, `vae.${someKey}`, { source: "tokenizer/model.safetensors" }),
      `"vae.${someKey}"`,
      "tokenizer/model.safetensors",
      `similar keys: "${someKey}"`,
    );
    expectHartError(() => takeTensor(sd, someKey, { shape: [...t.shape, 7] }), someKey, `[${t.shape}]`);
    expect(takeTensor(sd, someKey, { shape: t.shape, dtype: t.dtype })).toBe(t);
  });
});

describe("safetensors writing and sharding", () => {
  it("write → read round trip keeps dtypes, shapes, bytes, metadata and alignment", () => {
    const { expected } = handMade();
    const golden = loadStateDict(join(GOLDEN_DIR, SETS[0], "llm"), { file: "ema_model.bin" });
    const sd: StateDict = new Map([...golden, ...expected]);
    const file = join(tmp, "round.safetensors");
    writeSafetensors(file, sd, { format: "pt", source: "test" });
    expectIdentical(readSafetensors(file), sd, "round trip");
    expectIdentical(loadStateDict(file), sd, "round trip via loadStateDict");
    expect(readdirSync(tmp).filter((n) => n.includes(".tmp-"))).toEqual([]);

    const bytes = readFileSync(file);
    const headerLen = Number(bytes.readBigUInt64LE(0));
    expect(headerLen % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString("utf8"));
    expect(header.__metadata__).toEqual({ format: "pt", source: "test" });
    const itemSize: Record<string, number> = { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, I8: 1, U8: 1, BOOL: 1 };
    for (const [key, e] of Object.entries<{ dtype: string; data_offsets: number[] }>(header)) {
      if (key !== "__metadata__") expect(e.data_offsets[0] % itemSize[e.dtype], key).toBe(0);
    }
    expect(() => writeSafetensors(file, sd, { bad: 1 as unknown as string })).toThrow(HartError);
  });

  it("sharded safetensors index loads as one merged state dict", () => {
    const full = loadStateDict(join(GOLDEN_DIR, SETS[0], "llm"));
    const dir = mkdtempSync(join(tmp, "sharded-"));
    const keys = [...full.keys()];
    const half = Math.ceil(keys.length / 2);
    const shards = [keys.slice(0, half), keys.slice(half)];
    const weightMap: Record<string, string> = {};
    shards.forEach((ks, i) => {
      const name = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(join(dir, name), new Map(ks.map((k) => [k, full.get(k)!])));
      for (const k of ks) weightMap[k] = name;
    });
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    expectIdentical(loadStateDict(dir), full, "sharded");
    const one = loadStateDict(join(dir, "model.safetensors.index.json"), {
      filter: (k) => k === keys[keys.length - 1],
    });
    expect([...one.keys()]).toEqual([keys[keys.length - 1]]);

    weightMap[keys[0]] = "model-00002-of-00002.safetensors"; // listed in the wrong shard
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: weightMap }));
    expectHartError(() => loadStateDict(dir), "index.json", `"${keys[0]}"`, "model-00002-of-00002.safetensors");
  });
});
