/**
 * Tensors that stay in device memory between runs. onnxruntime-node exposes no IO binding; the one way it keeps an
 * output off the host is WebGPU's `preferredOutputLocation: "gpu-buffer"`, whose tensors can be fed back as inputs
 * of any WebGPU session. hart wraps them as {@link DeviceTensor}s: a session created with
 * {@link SessionOptions.deviceOutputs} returns them from {@link Session.runWithDevice}, and every session takes them
 * as feeds.
 */
import * as ort from "onnxruntime-node";
import { HartError } from "./errors";
import { GraphBuilder } from "./graph/builder";
import { type Device, fromOrt } from "./session";
import type { DType, Tensor } from "./tensor";

/**
 * A tensor held in a device's memory (a WebGPU buffer). It has a dtype and shape but no host data: feed it to a
 * session on the same device, read it with {@link deviceTensorToHost}, and free it with {@link DeviceTensor.dispose}
 * when done (device memory is not reclaimed by the garbage collector in time).
 */
export interface DeviceTensor {
  /** Discriminant telling it apart from a host {@link Tensor} (see {@link isDeviceTensor}). */
  readonly location: "device";
  /** The device whose memory holds it. */
  readonly device: Device;
  /** Element type of the device buffer. */
  readonly dtype: DType;
  /** Dimensions, outermost first (row-major). */
  readonly shape: readonly number[];
  /** Whether {@link DeviceTensor.dispose} was called. */
  readonly disposed: boolean;
  /** Frees the device memory (idempotent); the tensor cannot be used afterwards. */
  dispose(): void;
}

/** A host tensor or a device-resident one: what sessions take as feeds. */
export type AnyTensor = Tensor | DeviceTensor;

/** Whether a feed is a {@link DeviceTensor}. */
export function isDeviceTensor(t: AnyTensor): t is DeviceTensor {
  return (t as DeviceTensor).location === "device";
}

class OrtDeviceTensor implements DeviceTensor {
  readonly location = "device" as const;
  private released = false;
  constructor(
    readonly device: Device,
    readonly inner: ort.Tensor,
  ) {}
  get dtype(): DType {
    return this.inner.type as DType;
  }
  get shape(): readonly number[] {
    return this.inner.dims;
  }
  get disposed(): boolean {
    return this.released;
  }
  dispose(): void {
    if (this.released) return;
    this.released = true;
    this.inner.dispose();
  }
}

/** Wraps an onnxruntime output that stayed on `device` (internal to `@hart/core`'s sessions). */
export function wrapDeviceTensor(device: Device, t: ort.Tensor): DeviceTensor {
  return new OrtDeviceTensor(device, t);
}

/** The onnxruntime tensor behind a {@link DeviceTensor} (throws naming `what` when it was disposed or is foreign). */
export function unwrapDeviceTensor(t: DeviceTensor, what: string): ort.Tensor {
  if (!(t instanceof OrtDeviceTensor)) {
    throw new HartError("feed", `${what}: a device tensor must come from a @hart/core session (runWithDevice)`);
  }
  if (t.disposed) throw new HartError("feed", `${what}: the device tensor was disposed`);
  return t.inner;
}

/** One Identity session per device, dtype and rank, whose (host) output is the download. */
const downloaders = new Map<string, Promise<ort.InferenceSession>>();

/**
 * Copies a device tensor to host memory. onnxruntime-node 1.30's own `Tensor.getData()` aborts the process for
 * WebGPU buffers (measured: `terminate called after throwing an instance of 'char const*'`), so the copy runs as an
 * Identity graph on the device whose output is left to the host.
 */
export async function deviceTensorToHost(t: DeviceTensor): Promise<Tensor> {
  const inner = unwrapDeviceTensor(t, "deviceTensorToHost");
  const key = `${t.device}/${t.dtype}/${t.shape.length}`;
  let session = downloaders.get(key);
  if (!session) {
    const g = new GraphBuilder("device-to-host");
    const x = g.input(
      "x",
      t.dtype,
      t.shape.map((_, i) => `d${i}`),
    );
    g.output(g.op("Identity", [x]), "y", t.dtype);
    session = ort.InferenceSession.create(g.build().bytes, { executionProviders: [t.device] });
    downloaders.set(key, session);
  }
  return fromOrt((await (await session).run({ x: inner })).y);
}
