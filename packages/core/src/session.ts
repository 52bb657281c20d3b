import * as ort from "onnxruntime-node";
import {
  type AnyTensor,
  type DeviceTensor,
  isDeviceTensor,
  unwrapDeviceTensor,
  wrapDeviceTensor,
} from "./device-tensor";
import { HartError } from "./errors";
import type { BuiltModel, ValueSpec } from "./graph/builder";
import { type DType, type Tensor, tensor } from "./tensor";

/** Where graphs run. `cpu` always works; the others need a usable provider (see `@hart/kernels-cuda`). */
export type Device = "cpu" | "cuda" | "webgpu";

/**
 * A device request: a {@link Device}, or `"auto"` for the first usable GPU device
 * (`cuda`, then `webgpu`, as the registered {@link DeviceProbe} says; not a software WebGPU adapter) and `cpu`
 * otherwise.
 */
export type DeviceChoice = Device | "auto";

/**
 * Options for {@link createSession} and {@link SessionCache}.
 *
 * What weights cost in memory (onnxruntime-node 1.30, CPU, measured with 3 × 800 MB MatMul
 * weights by `npm run bench -w @hart/core`; see packages/core/README.md):
 * - **In-memory weights** ({@link GraphBuilder.weight}, passed as in-memory external data) are
 *   **copied** by onnxruntime: every session holds a private copy of all its weights (+2.4 GB per
 *   session, two sessions +4.8 GB) on top of the caller's buffers, whatever `disablePrepacking` or
 *   `useEnvAllocators` say; creating the session peaks about one weight higher still. The caller's
 *   buffers are only read while the session is created (later changes are not seen).
 * - **File-backed weights** ({@link GraphBuilder.fileWeight}) are memory-mapped: with
 *   {@link SessionOptions.disablePrepacking} a session adds ~0 private memory (+7 MB for 2.4 GB)
 *   and any number of sessions share the file's page cache. With prepacking (the default) each
 *   session again holds a private, re-laid-out copy of its MatMul/Gemm weights.
 * - Prepacking is faster for MatMul with few rows: without it, measured 2–10× slower at 16 rows,
 *   1.2–1.6× at 256–1024 rows, about equal at 1 row (noisy shared machine).
 */
export interface SessionOptions {
  /** Execution provider (default `"cpu"`; `"auto"`: a GPU when the device probe says it is usable). */
  device?: DeviceChoice;
  /** Threads inside one op (default: the `HART_NUM_THREADS` environment variable, else onnxruntime's choice: all cores). */
  intraOpThreads?: number;
  /** Threads running independent nodes in parallel (default: onnxruntime's choice). */
  interOpThreads?: number;
  /** onnxruntime graph optimization level (default `"all"`). */
  graphOptimizationLevel?: "disabled" | "basic" | "extended" | "all";
  /** CPU memory arena (default true); turn off for graphs run once at many shapes. */
  enableCpuMemArena?: boolean;
  /** Memory pattern planning (default true). */
  enableMemPattern?: boolean;
  /**
   * Sets onnxruntime's `session.disable_prepacking`: constant MatMul/Gemm weights are used as they
   * are instead of being re-laid-out into a private per-session copy. With file-backed weights this
   * removes the session's last private copy (zero-copy sessions sharing the file's pages); with
   * in-memory weights it saves nothing (onnxruntime copies those anyway). Costs MatMul speed when
   * few rows are multiplied (see above). Default false.
   */
  disablePrepacking?: boolean;
  /**
   * Sets onnxruntime's `session.use_env_allocators` (use allocators registered on the shared
   * environment). onnxruntime-node registers none: measured without any effect on memory (the
   * weights are still copied per session). Here for completeness and future versions.
   */
  useEnvAllocators?: boolean;
  /**
   * Raw onnxruntime session config entries, keys as in `onnxruntime_session_options_config_keys.h`
   * (e.g. `{ "session.intra_op.allow_spinning": "0" }`). They override the entries set by the
   * options above.
   */
  config?: Readonly<Record<string, string>>;
  /**
   * Outputs left in device memory instead of being copied to the host: {@link Session.runWithDevice} returns them
   * as {@link DeviceTensor}s, which later runs take as feeds (a KV cache that never leaves the GPU). WebGPU only:
   * onnxruntime-node 1.30 can keep outputs on the device only for its WebGPU provider (`preferredOutputLocation:
   * "gpu-buffer"`); with another device this is an error.
   */
  deviceOutputs?: readonly string[];
  /** A label used in error messages (default: the graph's name). */
  label?: string;
}

/** {@link SessionOptions} after defaults, environment variables and the device probe have been applied. */
export interface ResolvedSessionOptions {
  /** The concrete execution provider (`"auto"` resolved, usability checked by the device probe). */
  readonly device: Device;
  /** Threads inside one op: the option, else `HART_NUM_THREADS`; `undefined` leaves onnxruntime's default. */
  readonly intraOpThreads?: number;
  /** Threads running independent nodes in parallel; `undefined` leaves onnxruntime's default. */
  readonly interOpThreads?: number;
  /** onnxruntime graph optimization level (default `"all"`). */
  readonly graphOptimizationLevel: "disabled" | "basic" | "extended" | "all";
  /** Whether onnxruntime's CPU memory arena is on (default true). */
  readonly enableCpuMemArena: boolean;
  /** Whether onnxruntime's memory pattern planning is on (default true). */
  readonly enableMemPattern: boolean;
  /** Session config entries passed to onnxruntime (flat keys). */
  readonly config: Readonly<Record<string, string>>;
  /** Outputs kept in device memory (empty unless the device is `webgpu`); see {@link SessionOptions.deviceOutputs}. */
  readonly deviceOutputs: readonly string[];
  /** Label for error messages as given; `undefined` means the graph's name is used. */
  readonly label?: string;
}

/**
 * Decides whether a device other than `cpu` may be used. `@hart/kernels-cuda`
 * registers the CUDA probe here; without one, asking for `cuda` fails with a
 * clear message instead of a provider error deep inside onnxruntime.
 */
export type DeviceProbe = (device: Device) => DeviceVerdict;

/** A {@link DeviceProbe}'s answer for one device. */
export interface DeviceVerdict {
  /** Whether sessions on the device are expected to work. */
  usable: boolean;
  /** Why not (when not usable). */
  reason?: string;
  /** Whether `"auto"` may pick it (default: when usable); false e.g. for a software WebGPU adapter. */
  autoSelect?: boolean;
}

let deviceProbe: DeviceProbe | undefined;

/** Installs the probe that says whether a GPU device is usable (called by `@hart/kernels-cuda`). */
export function setDeviceProbe(probe: DeviceProbe | undefined): void {
  deviceProbe = probe;
}

function verdictFor(device: Device): DeviceVerdict {
  if (device === "cpu") return { usable: true };
  return (
    deviceProbe?.(device) ?? {
      usable: false,
      reason: `no GPU provider is registered; install and import @hart/kernels-cuda (and the CUDA provider libraries: npm install --onnxruntime-node-install=cuda12) to use device "${device}"`,
    }
  );
}

/** Throws a {@link HartError} naming the fix when `device` cannot be used here. */
export function assertDeviceUsable(device: Device): void {
  if (device !== "cpu" && device !== "cuda" && device !== "webgpu") {
    throw new HartError("device", `device ${JSON.stringify(device)} is unknown; expected "cpu", "cuda" or "webgpu"`);
  }
  const verdict = verdictFor(device);
  if (!verdict.usable)
    throw new HartError("device", `device "${device}" is not usable: ${verdict.reason ?? "unknown reason"}`);
}

/**
 * The device a request resolves to: `cpu` by default; `"auto"` picks `cuda`, then `webgpu`,
 * when the registered probe says it is usable; an explicit GPU device must be usable
 * ({@link assertDeviceUsable} throws otherwise).
 */
export function resolveDevice(choice: DeviceChoice = "cpu"): Device {
  if (choice === "auto") {
    for (const d of ["cuda", "webgpu"] as const) {
      const verdict = verdictFor(d);
      if (verdict.usable && verdict.autoSelect !== false) return d;
    }
    return "cpu";
  }
  assertDeviceUsable(choice);
  return choice;
}

/** Reads an environment variable; `undefined` where the runtime denies access (Deno without --allow-env). */
function env(name: string): string | undefined {
  try {
    return typeof process === "undefined" ? undefined : process.env[name];
  } catch {
    return undefined;
  }
}

function threadCount(value: number | string | undefined, what: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = typeof value === "number" ? value : Number(value);
  if (!Number.isInteger(n) || n < 1) throw new HartError("threads", `${what} must be a positive integer, got ${value}`);
  return n;
}

/**
 * The one place session settings are decided: applies defaults, the `HART_NUM_THREADS`
 * environment variable (intra-op threads when the option is not given) and the device probe.
 */
export function resolveSessionOptions(options: SessionOptions = {}): ResolvedSessionOptions {
  const config: Record<string, string> = {};
  if (options.disablePrepacking) config["session.disable_prepacking"] = "1";
  if (options.useEnvAllocators) config["session.use_env_allocators"] = "1";
  Object.assign(config, options.config);
  const device = resolveDevice(options.device ?? "cpu");
  const deviceOutputs = options.deviceOutputs ?? [];
  if (deviceOutputs.length > 0 && device !== "webgpu") {
    throw new HartError(
      "unsupported",
      `unsupported: deviceOutputs (${deviceOutputs.join(", ")}) on device "${device}": onnxruntime-node keeps outputs on the device only with "webgpu"`,
    );
  }
  return {
    device,
    intraOpThreads:
      threadCount(options.intraOpThreads, "intraOpThreads") ??
      threadCount(env("HART_NUM_THREADS"), "the HART_NUM_THREADS environment variable"),
    interOpThreads: threadCount(options.interOpThreads, "interOpThreads"),
    graphOptimizationLevel: options.graphOptimizationLevel ?? "all",
    enableCpuMemArena: options.enableCpuMemArena ?? true,
    enableMemPattern: options.enableMemPattern ?? true,
    config,
    deviceOutputs,
    label: options.label,
  };
}

/** A compiled graph: run it with hart tensors in, hart tensors out. */
export interface Session {
  /** The graph's input names, i.e. the feed keys {@link Session.run} expects. */
  readonly inputNames: readonly string[];
  /** The graph's output names, in graph order. */
  readonly outputNames: readonly string[];
  /**
   * Runs the graph. Returns the requested outputs (by default all but {@link SessionOptions.deviceOutputs}, which
   * only {@link Session.runWithDevice} returns). Feeds are checked against the
   * graph's declared inputs first (missing/unknown names, dtype, rank, fixed dimensions): a bad feed
   * is a {@link HartError} (code `"feed"`) naming the graph and the input.
   */
  run(feeds: Record<string, AnyTensor>, outputs?: readonly string[]): Promise<Record<string, Tensor>>;
  /**
   * Runs the graph and returns the requested outputs (all by default) split by where they are: those named in
   * {@link SessionOptions.deviceOutputs} as {@link DeviceTensor}s (the caller disposes them), the rest on the host.
   */
  runWithDevice(
    feeds: Record<string, AnyTensor>,
    outputs?: readonly string[],
  ): Promise<{
    /** Requested outputs copied to host memory, by output name. */
    host: Record<string, Tensor>;
    /** Requested outputs left in device memory (those in {@link SessionOptions.deviceOutputs}), by output name. */
    device: Record<string, DeviceTensor>;
  }>;
  /** Frees the native session (idempotent). */
  release(): Promise<void>;
}

/** hart tensor → onnxruntime tensor (no copy); a {@link DeviceTensor} gives the buffer it holds. */
export function toOrt(t: AnyTensor): ort.Tensor {
  if (isDeviceTensor(t)) return unwrapDeviceTensor(t, "toOrt");
  if (t.dtype === "bfloat16")
    throw new HartError("dtype", "toOrt: onnxruntime-node cannot take bfloat16 inputs; cast first");
  return new ort.Tensor(t.dtype as ort.Tensor.Type, t.data as ort.Tensor.DataType, [...t.shape]);
}

/** onnxruntime tensor → hart tensor (no copy). */
export function fromOrt(t: ort.Tensor): Tensor {
  const dtype = t.type as DType;
  let data = t.data as Tensor["data"];
  // onnxruntime may hand float16 back as Float16Array where the runtime has it; hart keeps raw bits.
  if (dtype === "float16" && !(data instanceof Uint16Array)) {
    const d = data as unknown as ArrayBufferView;
    data = new Uint16Array(d.buffer, d.byteOffset, d.byteLength / 2);
  }
  return tensor(dtype, t.dims as number[], data);
}

const fmtShape = (shape: readonly (number | string)[]) => `[${shape.join(", ")}]`;

/** Throws when a {@link SessionOptions.deviceOutputs} name is not one of the graph's outputs. */
function checkDeviceOutputs(deviceOutputs: readonly string[], outputNames: readonly string[], label: string): void {
  const unknown = deviceOutputs.find((o) => !outputNames.includes(o));
  if (unknown !== undefined) {
    throw new HartError(
      "argument",
      `graph "${label}": deviceOutputs names "${unknown}", which is not an output; the outputs are ${outputNames.join(", ")}`,
    );
  }
}

/** Checks feeds against the graph's declared inputs; throws a HartError naming the graph and input. */
function checkFeeds(specs: readonly ValueSpec[], feeds: Record<string, AnyTensor>, label: string): void {
  const fail = (msg: string): never => {
    throw new HartError("feed", `graph "${label}": ${msg}`);
  };
  if (typeof feeds !== "object" || feeds === null) fail("feeds must be an object of input name → tensor");
  const expected = specs.map((s) => s.name);
  for (const name of Object.keys(feeds)) {
    if (!expected.includes(name)) fail(`unknown input "${name}"; the graph's inputs are ${expected.join(", ")}`);
  }
  for (const spec of specs) {
    const t = feeds[spec.name];
    const want = `${spec.dtype} ${spec.shape ? fmtShape(spec.shape) : "[?]"}`;
    if (t === undefined) fail(`input "${spec.name}" (${want}) is missing`);
    if (typeof t !== "object" || t === null || !("dtype" in t) || !("shape" in t)) {
      fail(`input "${spec.name}" must be a hart Tensor (${want})`);
    }
    if (isDeviceTensor(t) && t.disposed) fail(`input "${spec.name}" is a disposed device tensor`);
    const got = `${t.dtype} ${fmtShape(t.shape)}`;
    const shapeOk =
      !spec.shape ||
      (spec.shape.length === t.shape.length && spec.shape.every((d, i) => typeof d === "string" || d === t.shape[i]));
    if (t.dtype !== spec.dtype || !shapeOk) fail(`input "${spec.name}" expects ${want}, got ${got}`);
  }
}

/** Nests flat config keys (`a.b.c`) the way onnxruntime-node's `extra` option expects them. */
function nestConfig(config: Readonly<Record<string, string>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    const parts = key.split(".");
    let node = out;
    for (const p of parts.slice(0, -1)) {
      if (typeof node[p] !== "object") node[p] = {};
      node = node[p] as Record<string, unknown>;
    }
    node[parts[parts.length - 1]] = value;
  }
  return out;
}

/**
 * Compiles a built model into a session (settings from {@link resolveSessionOptions}).
 * In-memory weights reach onnxruntime as external data without a copy on the JS side, but
 * onnxruntime copies them into the session; file-backed weights are memory-mapped. See
 * {@link SessionOptions} for the measured costs.
 */
export async function createSession(model: BuiltModel, options: SessionOptions = {}): Promise<Session> {
  const resolved = resolveSessionOptions(options);
  const label = resolved.label ?? model.name ?? "graph";
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: [resolved.device],
    graphOptimizationLevel: resolved.graphOptimizationLevel,
    externalData: model.externalData.map((e) => ({ path: e.path, data: e.data })),
    enableCpuMemArena: resolved.enableCpuMemArena,
    enableMemPattern: resolved.enableMemPattern,
  };
  if (resolved.intraOpThreads !== undefined) sessionOptions.intraOpNumThreads = resolved.intraOpThreads;
  if (resolved.interOpThreads !== undefined) sessionOptions.interOpNumThreads = resolved.interOpThreads;
  const config = model.externalFolder
    ? { "session.model_external_initializers_file_folder_path": model.externalFolder, ...resolved.config }
    : resolved.config;
  if (Object.keys(config).length > 0) sessionOptions.extra = nestConfig(config);
  if (resolved.deviceOutputs.length > 0) {
    sessionOptions.preferredOutputLocation = Object.fromEntries(
      resolved.deviceOutputs.map((name) => [name, "gpu-buffer" as const]),
    );
  }
  checkDeviceOutputs(resolved.deviceOutputs, model.outputNames, label);
  let inner: ort.InferenceSession;
  try {
    inner = await ort.InferenceSession.create(model.bytes, sessionOptions);
  } catch (err) {
    throw new HartError(
      "session",
      `graph "${label}": could not create the onnxruntime session: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  let released = false;
  // Keep only the input specs: holding `model` would keep its weight views (and so every JS weight buffer) alive
  // for the session's lifetime, although onnxruntime has copied them. No closure in this function may name
  // `model`: V8 keeps every variable any closure names alive for as long as any closure of the scope lives.
  const inputSpecs = model.inputs;
  const onDevice = new Set(resolved.deviceOutputs);
  const runOrt = async (feeds: Record<string, AnyTensor>, outputs: readonly string[] | undefined) => {
    if (released) throw new HartError("session", `graph "${label}": run() after release()`);
    // Models assembled by hand (not by GraphBuilder) may lack input specs; onnxruntime checks those.
    if (inputSpecs) checkFeeds(inputSpecs, feeds, label);
    if (outputs) {
      const unknown = outputs.find((o) => !inner.outputNames.includes(o));
      if (unknown !== undefined) {
        throw new HartError(
          "feed",
          `graph "${label}": unknown output "${unknown}"; the graph's outputs are ${inner.outputNames.join(", ")}`,
        );
      }
    }
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrt(v);
    // onnxruntime-node 1.30 applies preferredOutputLocation by position in the *requested* list and reuses the
    // bound buffers' shapes (measured: a subset of outputs comes back mislabelled, or fails with "Tensor size
    // mismatch"), so a session with device outputs always runs for all of them, in graph order.
    const fetchAll = onDevice.size > 0 || !outputs;
    let result: ort.InferenceSession.ReturnType;
    try {
      result = fetchAll ? await inner.run(ortFeeds) : await inner.run(ortFeeds, [...(outputs ?? [])]);
    } catch (err) {
      throw new HartError("session", `graph "${label}": run failed: ${(err as Error).message}`, { cause: err });
    }
    const wanted = new Set(outputs ?? inner.outputNames);
    const host: Record<string, Tensor> = {};
    const device: Record<string, DeviceTensor> = {};
    for (const [k, v] of Object.entries(result)) {
      const kept = v.location === "gpu-buffer";
      if (!wanted.has(k)) {
        if (kept) v.dispose();
      } else if (kept) device[k] = wrapDeviceTensor(resolved.device, v);
      else host[k] = fromOrt(v);
    }
    return { host, device };
  };
  return {
    inputNames: inner.inputNames,
    outputNames: inner.outputNames,
    async run(feeds, outputs) {
      const requested = outputs ?? inner.outputNames.filter((o) => !onDevice.has(o));
      const kept = requested.find((o) => onDevice.has(o));
      if (kept !== undefined) {
        throw new HartError("feed", `graph "${label}": output "${kept}" stays on the device; use runWithDevice()`);
      }
      return (await runOrt(feeds, requested)).host;
    },
    runWithDevice: (feeds, outputs) => runOrt(feeds, outputs),
    async release() {
      if (released) return;
      released = true;
      await inner.release();
    },
  };
}
