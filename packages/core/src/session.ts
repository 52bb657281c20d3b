import * as ort from "onnxruntime-node";
import { HartError } from "./errors";
import type { BuiltModel } from "./graph/builder";
import { type DType, type Tensor, tensor } from "./tensor";

/** Where graphs run. `cpu` always works; the others need a usable provider (see `@hart/kernels-cuda`). */
export type Device = "cpu" | "cuda" | "webgpu";

/** Options for {@link createSession}. */
export interface SessionOptions {
  /** Execution provider (default `"cpu"`). */
  device?: Device;
  /** Threads inside one op (default: onnxruntime's choice, all cores). */
  intraOpThreads?: number;
  /** onnxruntime graph optimization level (default `"all"`). */
  graphOptimizationLevel?: "disabled" | "basic" | "extended" | "all";
  /** Memory pattern / arena settings; turn off for graphs run once at many shapes. */
  enableCpuMemArena?: boolean;
  /** A label used in error messages. */
  label?: string;
}

/**
 * Decides whether a device other than `cpu` may be used. `@hart/kernels-cuda`
 * registers the CUDA probe here; without one, asking for `cuda` fails with a
 * clear message instead of a provider error deep inside onnxruntime.
 */
export type DeviceProbe = (device: Device) => { usable: boolean; reason?: string };

let deviceProbe: DeviceProbe | undefined;

/** Installs the probe that says whether a GPU device is usable (called by `@hart/kernels-cuda`). */
export function setDeviceProbe(probe: DeviceProbe | undefined): void {
  deviceProbe = probe;
}

/** Throws a {@link HartError} naming the fix when `device` cannot be used here. */
export function assertDeviceUsable(device: Device): void {
  if (device === "cpu") return;
  const verdict = deviceProbe?.(device) ?? {
    usable: false,
    reason: `no GPU provider is registered; install and import @hart/kernels-cuda (and the CUDA provider libraries: npm install --onnxruntime-node-install=cuda12) to use device "${device}"`,
  };
  if (!verdict.usable) throw new HartError("device", `device "${device}" is not usable: ${verdict.reason ?? "unknown reason"}`);
}

/** A compiled graph: run it with hart tensors in, hart tensors out. */
export interface Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Runs the graph. Returns the requested outputs (all by default). */
  run(feeds: Record<string, Tensor>, outputs?: readonly string[]): Promise<Record<string, Tensor>>;
  /** Frees the native session. */
  release(): Promise<void>;
}

/** hart tensor → onnxruntime tensor (no copy). */
export function toOrt(t: Tensor): ort.Tensor {
  if (t.dtype === "bfloat16") throw new HartError("dtype", "toOrt: onnxruntime-node cannot take bfloat16 inputs; cast first");
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

/** Compiles a built model into a session on the chosen device. */
export async function createSession(model: BuiltModel, options: SessionOptions = {}): Promise<Session> {
  const device = options.device ?? "cpu";
  assertDeviceUsable(device);
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: [device],
    graphOptimizationLevel: options.graphOptimizationLevel ?? "all",
    externalData: model.externalData.map((e) => ({ path: e.path, data: e.data })),
    enableCpuMemArena: options.enableCpuMemArena ?? true,
  };
  if (options.intraOpThreads !== undefined) sessionOptions.intraOpNumThreads = options.intraOpThreads;
  let inner: ort.InferenceSession;
  try {
    inner = await ort.InferenceSession.create(model.bytes, sessionOptions);
  } catch (err) {
    throw new HartError(
      "session",
      `could not create the onnxruntime session${options.label ? ` for ${options.label}` : ""}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return {
    inputNames: inner.inputNames,
    outputNames: inner.outputNames,
    async run(feeds, outputs) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrt(v);
      let result: ort.InferenceSession.ReturnType;
      try {
        result = outputs ? await inner.run(ortFeeds, [...outputs]) : await inner.run(ortFeeds);
      } catch (err) {
        throw new HartError("session", `${options.label ?? "graph"}: run failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
      const out: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(result)) out[k] = fromOrt(v);
      return out;
    },
    release: () => inner.release(),
  };
}
