import { existsSync } from "node:fs";
import { join } from "node:path";
import { createSession, GraphBuilder, HartError, resolveDevice, setDeviceProbe } from "@hart/core";
import { afterEach, describe, expect, it } from "vitest";
import {
  describeDevices,
  onnxruntimeBinaryDir,
  probeCuda,
  probeWebGpu,
  registerGpuProviders,
  verifyDevice,
} from "../src/index";

const tiny = () => {
  const g = new GraphBuilder("tiny");
  g.output(g.op("Relu", [g.input("x", "float32", [1])]), "y");
  return g.build();
};

afterEach(() => setDeviceProbe(undefined));

describe("CUDA provisioning", () => {
  it("finds onnxruntime-node's binary folder", () => {
    const dir = onnxruntimeBinaryDir();
    expect(dir).toBeDefined();
    expect(existsSync(join(dir!, "onnxruntime_binding.node"))).toBe(true);
  });

  it("reports CUDA as usable exactly when the provider libraries and a driver are present", () => {
    const report = probeCuda();
    const dir = onnxruntimeBinaryDir()!;
    const libsPresent = existsSync(join(dir, "libonnxruntime_providers_cuda.so"));
    const driver = existsSync("/proc/driver/nvidia/version");
    expect(report.usable).toBe(libsPresent && driver);
    if (!libsPresent) expect(report.reason).toMatch(/--onnxruntime-node-install=cuda12/);
  });

  it("makes device: 'cuda' fail with one actionable message when not usable", async () => {
    registerGpuProviders();
    if (probeCuda().usable) return; // a GPU machine: covered by the GPU checks instead
    const err = await createSession(tiny(), { device: "cuda" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HartError);
    expect((err as HartError).message).toMatch(/device "cuda" is not usable: .*cuda12/);
  });

  it("without the package registered, core still refuses cuda with a pointer to this package", async () => {
    const err = await createSession(tiny(), { device: "cuda" }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/@hart\/kernels-cuda/);
  });

  it("verifies WebGPU by running a graph, reporting the provider's reason on failure", async () => {
    const report = await verifyDevice("webgpu");
    expect(report.device).toBe("webgpu");
    if (!report.usable) expect(report.reason).toBeTruthy();
  });

  it("lets device: 'auto' pick WebGPU only with a GPU device node (not a software adapter)", () => {
    const report = probeWebGpu();
    if (!report.usable) return; // no Vulkan loader: nothing to pick
    const nodes = report.details.gpuDeviceNodes;
    expect(nodes).toBeDefined();
    expect(report.autoSelect).toBe(!nodes.startsWith("none"));
    registerGpuProviders();
    if (!probeCuda().usable) expect(resolveDevice("auto")).toBe(report.autoSelect ? "webgpu" : "cpu");
  });

  it("describes the devices for `hart info --device`", () => {
    const report = describeDevices();
    expect(report.onnxruntime).toMatch(/^\d+\.\d+\.\d+/);
    expect(report.cuda.device).toBe("cuda");
    expect(Array.isArray(report.gpus)).toBe(true);
  });
});
