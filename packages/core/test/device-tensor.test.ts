/**
 * Outputs kept on the device (`deviceOutputs`): refused off WebGPU with a clear message; on WebGPU (when an adapter
 * exists here, e.g. Mesa's llvmpipe Vulkan driver) a KV-cache-like chain stays on the device run after run, whatever
 * subset of outputs is asked for, and reads back exactly.
 */
import { afterAll, describe, expect, it } from "vitest";
import { deviceTensorToHost, isDeviceTensor } from "../src/device-tensor";
import { HartError } from "../src/errors";
import { GraphBuilder } from "../src/graph/builder";
import { createSession, setDeviceProbe } from "../src/session";
import { tensor } from "../src/tensor";

/** present = cat(past, new) along the token axis, plus a host output that depends on both. */
function cacheGraph() {
  const g = new GraphBuilder("device-cache");
  const past = g.input("past", "float32", [2, "P", 4]);
  const add = g.input("add", "float32", [2, "l", 4]);
  const present = g.op("Concat", [past, add], { axis: 1 });
  g.output(present, "present", "float32", [2, "T", 4]);
  g.output(g.op("ReduceSum", [present, g.ints([1, 2])], { keepdims: 0 }), "sums", "float32", [2]);
  g.output(g.op("Identity", [add]), "k", "float32", [2, "l", 4]);
  return g.build();
}

const fill = (l: number, value: number) => tensor("float32", [2, l, 4], new Float32Array(2 * l * 4).fill(value));

/** Whether a WebGPU adapter exists here (onnxruntime-node bundles the provider; it needs a Vulkan driver). */
async function webgpuSkipReason(): Promise<string | undefined> {
  setDeviceProbe((d) => ({ usable: d === "webgpu" }));
  try {
    const s = await createSession(cacheGraph(), { device: "webgpu" });
    await s.release();
    return undefined;
  } catch (err) {
    return (err as Error).message.split("\n")[0];
  } finally {
    setDeviceProbe(undefined);
  }
}

const skipReason = await webgpuSkipReason();
if (skipReason) console.log(`WebGPU device-output tests skipped: ${skipReason}`);

describe("deviceOutputs", () => {
  it("is refused off WebGPU, naming the outputs and the device", async () => {
    const err = await createSession(cacheGraph(), { deviceOutputs: ["present"] }).catch((e) => e);
    expect(err).toBeInstanceOf(HartError);
    expect(err.message).toMatch(/deviceOutputs \(present\) on device "cpu".*only with "webgpu"/);
  });

  describe.skipIf(skipReason !== undefined)("on WebGPU", () => {
    setDeviceProbe((d) => ({ usable: d === "webgpu" || d === "cpu" }));
    afterAll(() => setDeviceProbe(undefined));

    it("refuses an unknown output name", async () => {
      await expect(createSession(cacheGraph(), { device: "webgpu", deviceOutputs: ["presnt"] })).rejects.toThrow(
        /deviceOutputs names "presnt".*outputs are present, sums, k/,
      );
    });

    it("keeps a growing cache on the device across runs and output subsets, and reads it back", async () => {
      const session = await createSession(cacheGraph(), { device: "webgpu", deviceOutputs: ["present"] });
      let past: Parameters<typeof session.run>[0]["past"] = fill(0, 0);
      const expectedRows: number[] = [];
      // shapes change every run, as a KV cache's do, and the subsets asked for vary
      const steps = [
        { l: 3, value: 1, outputs: ["present", "k"] },
        { l: 1, value: 2, outputs: ["k", "present"] },
        { l: 5, value: 3, outputs: undefined },
        { l: 2, value: 4, outputs: ["present"] },
      ];
      for (const { l, value, outputs } of steps) {
        const { host, device } = await session.runWithDevice({ past, add: fill(l, value) }, outputs);
        for (let i = 0; i < l; i++) expectedRows.push(value);
        expect(isDeviceTensor(device.present)).toBe(true);
        expect(device.present.shape).toEqual([2, expectedRows.length, 4]);
        if (!outputs || outputs.includes("k")) expect(host.k.data).toEqual(fill(l, value).data);
        if (!outputs) {
          const perRow = expectedRows.reduce((a, b) => a + b, 0) * 4;
          expect(Array.from(host.sums.data as Float32Array)).toEqual([perRow, perRow]);
        } else expect(host.sums).toBeUndefined();
        if (isDeviceTensor(past)) past.dispose();
        past = device.present;
      }
      const back = await deviceTensorToHost(past as never);
      const expected = new Float32Array(2 * expectedRows.length * 4);
      for (let r = 0; r < 2; r++)
        for (const [t, value] of expectedRows.entries())
          expected.fill(value, (r * expectedRows.length + t) * 4, (r * expectedRows.length + t + 1) * 4);
      expect(back.shape).toEqual([2, expectedRows.length, 4]);
      expect(back.data).toEqual(expected);

      // run() returns host outputs only, and says where a device output is
      const hostOnly = await session.run({ past, add: fill(1, 5) }, ["sums"]);
      expect(Object.keys(hostOnly)).toEqual(["sums"]);
      await expect(session.run({ past, add: fill(1, 5) }, ["present"])).rejects.toThrow(
        /stays on the device; use runWithDevice/,
      );
      if (isDeviceTensor(past)) {
        past.dispose();
        await expect(session.run({ past, add: fill(1, 5) })).rejects.toThrow(/"past" is a disposed device tensor/);
      }
      await session.release();
    });
  });
});
