import { closeSync, fstatSync, openSync } from "node:fs";
import { HartError } from "../errors";
import { DTYPE_BYTES, type DType, fromBytes, numel, type Tensor } from "../tensor";
import { describe, PickleCallable, unpickle } from "./pickle";
import { readExact } from "./safetensors";
import type { StateDict } from "./state-dict";
import { crc32, openZip, readZipEntry, type ZipArchive } from "./zip";

/** A torch dtype as pickles name it; `int16` is recognised only to reject it clearly. */
type TorchDType = DType | "int16";

const ELEMENT_BYTES: Record<TorchDType, number> = { ...DTYPE_BYTES, int16: 2 };

/** `torch.<X>Storage` classes → element type (`null`: untyped bytes). */
const STORAGE_TYPES: Record<string, TorchDType | null> = {
  FloatStorage: "float32",
  DoubleStorage: "float64",
  HalfStorage: "float16",
  BFloat16Storage: "bfloat16",
  LongStorage: "int64",
  IntStorage: "int32",
  ShortStorage: "int16",
  CharStorage: "int8",
  ByteStorage: "uint8",
  BoolStorage: "bool",
  UntypedStorage: null,
};

/** `torch.<dtype>` objects (used by `_rebuild_tensor_v3` and typed storages). */
const TORCH_DTYPES: Record<string, TorchDType> = {
  float32: "float32",
  float: "float32",
  float64: "float64",
  double: "float64",
  float16: "float16",
  half: "float16",
  bfloat16: "bfloat16",
  int64: "int64",
  long: "int64",
  int32: "int32",
  int: "int32",
  int16: "int16",
  short: "int16",
  int8: "int8",
  uint8: "uint8",
  bool: "bool",
};

class StorageType {
  constructor(
    readonly name: string,
    readonly dtype: TorchDType | null,
  ) {}
}

class TorchDTypeRef {
  constructor(readonly dtype: TorchDType) {}
}

/** A plain class reference (`torch.Tensor`, `torch.nn.Parameter`), usable only as a type tag. */
class ClassRef {
  constructor(readonly name: string) {}
}

/** A storage record of the archive, read lazily (only if a kept tensor uses it). */
class StorageRef {
  bytes?: Uint8Array;
  constructor(
    readonly key: string,
    readonly byteLength: number,
  ) {}
}

/** A tensor as the pickle describes it: a strided view of a storage. */
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly dtype: TorchDType,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

function intList(v: unknown, what: string, source: string): number[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === "number" && Number.isInteger(x) && x >= 0)) {
    throw new HartError("checkpoint", `${source}: tensor ${what} is not a tuple of non-negative ints (${describe(v)})`);
  }
  return [...v] as number[];
}

/**
 * The globals a state-dict pickle may name. Everything else — `os.system`,
 * `builtins.eval`, any custom class — is refused before anything runs.
 */
function makeFindGlobal(source: string) {
  const storageDTypes = new WeakMap<StorageRef, TorchDType | null>();
  const rebuildV2 = (args: unknown[], dtypeArg?: unknown): TensorRef => {
    const [storage, offset, size, stride] = args;
    if (!(storage instanceof StorageRef)) {
      throw new HartError("checkpoint", `${source}: tensor storage is ${describe(storage)}, expected a storage record`);
    }
    if (typeof offset !== "number" || !Number.isInteger(offset) || offset < 0) {
      throw new HartError("checkpoint", `${source}: bad storage offset ${describe(offset)}`);
    }
    const storageDType = storageDTypes.get(storage);
    const dtype = dtypeArg instanceof TorchDTypeRef ? dtypeArg.dtype : storageDType;
    if (!dtype) throw new HartError("checkpoint", `${source}: tensor on an untyped storage has no dtype`);
    const shape = intList(size, "size", source);
    const strides = intList(stride, "stride", source);
    if (shape.length !== strides.length) {
      throw new HartError("checkpoint", `${source}: tensor size [${shape}] and stride [${strides}] differ in rank`);
    }
    return new TensorRef(storage, dtype, offset, shape, strides);
  };
  const callables: Record<string, PickleCallable> = {
    "collections.OrderedDict": new PickleCallable("collections.OrderedDict", (args) => {
      if (args.length) throw new HartError("checkpoint", `${source}: OrderedDict with arguments is not supported`);
      return new Map();
    }),
    "torch._utils._rebuild_tensor": new PickleCallable("torch._utils._rebuild_tensor", (a) => rebuildV2(a)),
    "torch._utils._rebuild_tensor_v2": new PickleCallable("torch._utils._rebuild_tensor_v2", (a) => rebuildV2(a)),
    // (storage, offset, size, stride, requires_grad, hooks, dtype, metadata?)
    "torch._utils._rebuild_tensor_v3": new PickleCallable("torch._utils._rebuild_tensor_v3", (a) => rebuildV2(a, a[6])),
    "torch._utils._rebuild_parameter": new PickleCallable("torch._utils._rebuild_parameter", (a) => a[0]),
    "torch._utils._rebuild_parameter_with_state": new PickleCallable(
      "torch._utils._rebuild_parameter_with_state",
      (a) => a[0],
    ),
    // (func, type, args, state): a Tensor/Parameter rebuilt by func, the python-level type is irrelevant here.
    "torch._tensor._rebuild_from_type_v2": new PickleCallable("torch._tensor._rebuild_from_type_v2", (a) => {
      const [fn, type, args] = a;
      if (!(type instanceof ClassRef)) {
        throw new HartError("checkpoint", `${source}: tensor subclass ${describe(type)} is not supported`);
      }
      if (!(fn instanceof PickleCallable) || !Array.isArray(args)) {
        throw new HartError("checkpoint", `${source}: malformed _rebuild_from_type_v2 call`);
      }
      return fn.call(args);
    }),
  };
  const classes: Record<string, ClassRef> = {
    "torch.Tensor": new ClassRef("torch.Tensor"),
    "torch.nn.parameter.Parameter": new ClassRef("torch.nn.parameter.Parameter"),
  };
  const findGlobal = (module: string, name: string): unknown => {
    const qualified = `${module}.${name}`;
    if (qualified in callables) return callables[qualified];
    if (qualified in classes) return classes[qualified];
    if (module === "torch" && name in STORAGE_TYPES) return new StorageType(qualified, STORAGE_TYPES[name]);
    if (module === "torch" && name in TORCH_DTYPES) return new TorchDTypeRef(TORCH_DTYPES[name]);
    throw new HartError(
      "unsafe-pickle",
      `${source}: refusing to load global "${qualified}" — only plain PyTorch state dicts (tensors in an OrderedDict) can be read; nothing in the file is executed`,
    );
  };
  return { findGlobal, storageDTypes };
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

/**
 * Copies a strided view into a fresh contiguous buffer, bit-exact (elements
 * move as 1/2/4-byte words). The innermost output dim is walked together with
 * the dim of smallest storage stride in 64×64 tiles, so a transposed matrix is
 * read and written cache-friendly instead of one cache miss per element.
 */
function materialize(t: TensorRef, bytes: Uint8Array, elementBytes: number): Uint8Array {
  const word = Math.min(elementBytes, 4);
  const wpe = elementBytes / word;
  const Words = word === 1 ? Uint8Array : word === 2 ? Uint16Array : Uint32Array;
  const src = new Words(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / word);
  const out = new Words(numel(t.shape) * wpe);
  // size-1 dims never move the index
  const dims = t.shape.map((n, d) => ({ n, s: t.stride[d], o: 0 })).filter((x) => x.n !== 1);
  for (let d = dims.length - 1, acc = 1; d >= 0; d--) {
    dims[d].o = acc;
    acc *= dims[d].n;
  }
  const a = dims[dims.length - 1];
  let bIndex = -1;
  for (let d = 0; d < dims.length - 1; d++) if (bIndex < 0 || dims[d].s < dims[bIndex].s) bIndex = d;
  if (bIndex >= 0 && dims[bIndex].s >= a.s) bIndex = -1; // rows already the most local: no tiling needed
  const b = bIndex >= 0 ? dims[bIndex] : { n: 1, s: 0, o: 0 };
  const outer = dims.slice(0, -1).filter((_, d) => d !== bIndex);
  const outerCount = numel(outer.map((d) => d.n));
  const tile = 64;
  const tileA = bIndex >= 0 ? tile : a.n;
  const index = new Array<number>(outer.length).fill(0);
  let srcBase = t.offset;
  let outBase = 0;
  for (let it = 0; it < outerCount; it++) {
    for (let i0 = 0; i0 < b.n; i0 += tile) {
      const i1 = Math.min(i0 + tile, b.n);
      for (let j0 = 0; j0 < a.n; j0 += tileA) {
        const j1 = Math.min(j0 + tileA, a.n);
        for (let i = i0; i < i1; i++) {
          let si = (srcBase + i * b.s + j0 * a.s) * wpe;
          let oi = (outBase + i * b.o + j0) * wpe;
          if (a.s === 1) {
            out.set(src.subarray(si, si + (j1 - j0) * wpe), oi);
          } else if (wpe === 1) {
            for (let j = j0; j < j1; j++, si += a.s) out[oi++] = src[si];
          } else {
            for (let j = j0; j < j1; j++, si += a.s * 2, oi += 2) {
              out[oi] = src[si];
              out[oi + 1] = src[si + 1];
            }
          }
        }
      }
    }
    // odometer over the remaining dims
    for (let k = outer.length - 1; k >= 0; k--) {
      const d = outer[k];
      index[k]++;
      srcBase += d.s;
      outBase += d.o;
      if (index[k] < d.n) break;
      srcBase -= d.s * d.n;
      outBase -= d.o * d.n;
      index[k] = 0;
    }
  }
  return new Uint8Array(out.buffer);
}

/**
 * Reads a PyTorch checkpoint written by `torch.save` (zip format, PyTorch ≥
 * 1.6) holding a state dict: an (Ordered)dict of tensors. The pickle is
 * interpreted by a small safe reader that only accepts the globals such a
 * state dict needs and rejects everything else with a {@link HartError}
 * naming the global; nothing in the file is executed.
 *
 * Each storage record is read once straight from the file (files over 2 GiB
 * work); contiguous tensors are views of it (tensors sharing a storage share
 * its memory, so treat the tensors as read-only), strided ones are copied
 * into contiguous order. `filter` skips keys before their storages are read.
 * Supported dtypes: float32/64, float16, bfloat16, int64/32, int8, uint8, bool.
 */
export function readTorchBin(file: string, filter?: (key: string) => boolean): StateDict {
  const fd = openSync(file, "r");
  try {
    const magic = readExact(fd, 0, Math.min(4, fstatSync(fd).size), file);
    if (!(magic[0] === 0x50 && magic[1] === 0x4b)) {
      const legacy = magic[0] === 0x80;
      throw new HartError(
        "checkpoint",
        legacy
          ? `${file}: legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with a newer PyTorch or convert it to safetensors`
          : `${file}: not a PyTorch zip checkpoint (no zip signature)`,
      );
    }
    const zip = openZip(fd, file);
    const pklName = [...zip.entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (!pklName)
      throw new HartError("checkpoint", `${file}: no <name>/data.pkl in the archive; not a torch.save file`);
    const stem = pklName.slice(0, -"data.pkl".length);
    const byteorder = zip.entries.get(`${stem}byteorder`);
    if (byteorder) {
      const order = new TextDecoder().decode(readZipEntry(zip, byteorder)).trim();
      if (order !== "little")
        throw new HartError("checkpoint", `${file}: ${order}-endian checkpoints are not supported`);
    }
    const pklEntry = zip.entries.get(pklName)!;
    const pkl = readZipEntry(zip, pklEntry);
    if (crc32(pkl) !== pklEntry.crc32)
      throw new HartError("checkpoint", `${file}: ${pklName} fails its CRC check (corrupt file)`);
    const root = parseStateDictPickle(pkl, `${file}:${pklName}`, zip, stem);
    const kept = [...root].filter(([key]) => !filter || filter(key));
    // Drop each storage buffer after its last user so copies made for strided views do not pin it.
    const users = new Map<StorageRef, number>();
    for (const [, t] of kept) users.set(t.storage, (users.get(t.storage) ?? 0) + 1);
    const out: StateDict = new Map();
    for (const [key, t] of kept) {
      out.set(key, toTensor(zip, stem, key, t));
      const left = users.get(t.storage)! - 1;
      users.set(t.storage, left);
      if (left === 0) t.storage.bytes = undefined;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

function parseStateDictPickle(pkl: Uint8Array, source: string, zip: ZipArchive, stem: string): Map<string, TensorRef> {
  const { findGlobal, storageDTypes } = makeFindGlobal(source);
  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: unknown): StorageRef => {
    // ('storage', storage_type, key, location, numel)
    if (!Array.isArray(pid) || pid[0] !== "storage" || pid.length < 5) {
      throw new HartError("checkpoint", `${source}: unsupported persistent id ${describe(pid)}`);
    }
    const [, type, key, , count] = pid;
    if (!(type instanceof StorageType) && !(type instanceof TorchDTypeRef)) {
      throw new HartError("checkpoint", `${source}: storage type is ${describe(type)}`);
    }
    if (typeof key !== "string" || typeof count !== "number") {
      throw new HartError("checkpoint", `${source}: malformed storage record ${describe(pid)}`);
    }
    const dtype = type.dtype;
    const byteLength = count * (dtype ? ELEMENT_BYTES[dtype] : 1);
    let ref = storages.get(key);
    if (!ref) {
      if (!zip.entries.has(`${stem}data/${key}`)) {
        throw new HartError(
          "checkpoint",
          `${source}: storage "${key}" has no record ${stem}data/${key} in the archive`,
        );
      }
      ref = new StorageRef(key, byteLength);
      storages.set(key, ref);
      storageDTypes.set(ref, dtype);
    } else if (ref.byteLength !== byteLength) {
      throw new HartError("checkpoint", `${source}: storage "${key}" is declared with two different sizes`);
    }
    return ref;
  };
  const root = unpickle(pkl, {
    source,
    findGlobal,
    persistentLoad,
    build: (obj, state) => {
      // OrderedDict state (e.g. state_dict()._metadata) and Parameter python state carry no tensor data.
      if (obj instanceof Map || obj instanceof TensorRef) return obj;
      throw new HartError("checkpoint", `${source}: cannot restore the state of ${describe(obj)} (${describe(state)})`);
    },
  });
  if (!(root instanceof Map)) {
    throw new HartError("checkpoint", `${source}: the pickled object is ${describe(root)}, expected a state dict`);
  }
  for (const [key, value] of root) {
    if (typeof key !== "string")
      throw new HartError("checkpoint", `${source}: state dict key ${describe(key)} is not a string`);
    if (!(value instanceof TensorRef)) {
      throw new HartError(
        "checkpoint",
        `${source}: entry "${key}" is ${describe(value)}, not a tensor (only flat state dicts of tensors are supported)`,
      );
    }
  }
  return root as Map<string, TensorRef>;
}

function toTensor(zip: ZipArchive, stem: string, key: string, t: TensorRef): Tensor {
  if (t.dtype === "int16")
    throw new HartError("dtype", `${zip.file}: tensor "${key}" is int16, which hart does not support`);
  const elementBytes = ELEMENT_BYTES[t.dtype];
  const storage = t.storage;
  const count = numel(t.shape);
  if (count === 0) return fromBytes(t.dtype, t.shape, new Uint8Array(0));
  let last = t.offset;
  for (let d = 0; d < t.shape.length; d++) last += (t.shape[d] - 1) * t.stride[d];
  if ((last + 1) * elementBytes > storage.byteLength) {
    throw new HartError(
      "checkpoint",
      `${zip.file}: tensor "${key}" (offset ${t.offset}, size [${t.shape}], stride [${t.stride}]) reaches past its storage "${storage.key}"`,
    );
  }
  if (!storage.bytes) {
    const entry = zip.entries.get(`${stem}data/${storage.key}`)!;
    storage.bytes = readZipEntry(zip, entry, storage.byteLength);
  }
  if (isContiguous(t.shape, t.stride)) {
    const begin = t.offset * elementBytes;
    return fromBytes(t.dtype, t.shape, storage.bytes.subarray(begin, begin + count * elementBytes));
  }
  return fromBytes(t.dtype, t.shape, materialize(t, storage.bytes, elementBytes));
}
