/** `hart info --device`: what the GPU path can use on this machine, without touching any model. */
import { describeDevices } from "@hart/kernels-cuda";
import { describe, expect, it } from "vitest";
import { hart } from "./run-cli";

describe("hart info --device", () => {
  it("reports onnxruntime, driver, GPUs and each provider's status (JSON and text)", async () => {
    const expected = describeDevices();
    const json = await hart(["info", "--device", "--json"]);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout);
    expect(report.onnxruntime).toBe(expected.onnxruntime);
    expect(report.cuda.device).toBe("cuda");
    expect(report.cuda.usable).toBe(expected.cuda.usable && report.cuda.usable);
    if (!expected.cuda.usable) expect(report.cuda.reason).toBe(expected.cuda.reason);
    const text = await hart(["info", "--device"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`onnxruntime-node  ${expected.onnxruntime}`);
    expect(text.stdout).toMatch(/^cuda {14}(usable \(a test graph ran\)|not usable: .+)$/m);
    expect(text.stdout).toMatch(/^webgpu {12}(usable \(a test graph ran\)(; no GPU device node.*)?|not usable: .+)$/m);
  });
});

describe("hart generate --device cuda", () => {
  it("fails at once with the provider's reason when CUDA is not usable here", async () => {
    if (describeDevices().cuda.usable) return; // a GPU machine: nothing to refuse
    const r = await hart(["generate", "-p", "a cat", "--model", "/nonexistent-model", "--device", "cuda"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/device "cuda" is not usable: .*(cuda12|NVIDIA driver)/);
  });
});
