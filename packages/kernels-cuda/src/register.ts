import { createSession, type Device, GraphBuilder, setDeviceProbe, tensor } from "@hart/core";
import { type ProviderReport, probeCuda, probeWebGpu } from "./provision";

const cache = new Map<Device, ProviderReport>();

function probe(device: Device): ProviderReport | undefined {
  if (device === "cpu") return undefined;
  let report = cache.get(device);
  if (!report) {
    report = device === "cuda" ? probeCuda() : probeWebGpu();
    cache.set(device, report);
  }
  return report;
}

/**
 * Installs this package's checks as `@hart/core`'s device probe, so that
 * asking any hart package for `device: "cuda"` or `"webgpu"` either works or
 * fails at once with one actionable message.
 */
export function registerGpuProviders(): void {
  setDeviceProbe((device) => {
    const report = probe(device);
    return report ? { usable: report.usable, reason: report.reason, autoSelect: report.autoSelect } : { usable: true };
  });
}

/**
 * Proves a device works by running a one-op graph on it (the only sure test
 * for WebGPU, whose adapter is found at session creation). Resolves to the
 * report, with `usable: false` and the provider's own message on failure.
 */
export async function verifyDevice(device: Exclude<Device, "cpu">): Promise<ProviderReport> {
  registerGpuProviders();
  const first = probe(device)!;
  if (!first.usable) return first;
  try {
    const g = new GraphBuilder("verify-device");
    g.output(g.op("Relu", [g.input("x", "float32", [2])]), "y");
    const session = await createSession(g.build(), { device, label: `${device} check` });
    const out = await session.run({ x: tensor("float32", [2], Float32Array.of(-1, 2)) });
    await session.release();
    const y = out.y.data as Float32Array;
    if (y[0] !== 0 || y[1] !== 2) throw new Error(`wrong result ${Array.from(y)}`);
    return first;
  } catch (err) {
    const report: ProviderReport = { ...first, usable: false, reason: (err as Error).message };
    cache.set(device, report);
    return report;
  }
}
