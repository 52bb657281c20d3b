import { describe, expect, it } from "vitest";
import { relativeError } from "../src/compare";
import { HartError } from "../src/errors";
import { GraphBuilder } from "../src/graph/builder";
import { graphForm, linearOf } from "../src/graph/fused";
import { quantizeLinearInt8 } from "../src/graph/int8";
import { createRng } from "../src/rng";
import { createSession } from "../src/session";
import { tensor } from "../src/tensor";

describe("int8 linear layers", () => {
  const rng = createRng(3);
  const [O, I, M] = [48, 64, 5];
  const wOI = tensor(
    "float32",
    [O, I],
    rng.normal(O * I).map((v) => v / 8),
  );
  wOI.data.fill(0, 7 * I, 8 * I); // an all-zero output channel

  it("quantizeLinearInt8: symmetric per output channel, [in, out], every weight within half a step", () => {
    const q = quantizeLinearInt8(wOI);
    expect(q.wIO.shape).toEqual([I, O]);
    expect(q.scaleO.shape).toEqual([O]);
    expect([...q.zeroO.data].every((z) => z === 0)).toBe(true);
    expect(q.scaleO.data[7]).toBe(1);
    for (let o = 0; o < O; o++) {
      const s = q.scaleO.data[o];
      let maxQ = 0;
      for (let i = 0; i < I; i++) {
        const qi = q.wIO.data[i * O + o];
        maxQ = Math.max(maxQ, Math.abs(qi));
        expect(Math.abs(qi * s - wOI.data[o * I + i])).toBeLessThanOrEqual(s / 2 + 1e-7);
      }
      if (o !== 7) expect(maxQ).toBe(127); // the largest weight of each channel uses the full range
    }
    expect(() => quantizeLinearInt8(tensor("float32", [O * I], wOI.data))).toThrow(/2-D float weight \[out, in\]/);
  });

  it("linearOf with an int8 form matches the float32 layer to int8 accuracy (bias included)", async () => {
    const b = tensor("float32", [O], rng.normal(O));
    const x = tensor("float32", [M, I], rng.normal(M * I));
    const run = async (linear: "float" | "int8") => {
      const g = new GraphBuilder(`linear-${linear}`);
      g.output(linearOf(g, graphForm({ linear }), g.input("x", "float32", [M, I]), wOI, b), "y");
      const session = await createSession(g.build(), { intraOpThreads: 1 });
      const { y } = await session.run({ x });
      await session.release();
      return y;
    };
    const [ref, int8] = [await run("float"), await run("int8")];
    const err = relativeError(int8, ref);
    console.log(`int8 linear vs float32: relative error ${err.toExponential(2)}`);
    expect(err).toBeLessThan(2e-2);
    expect(err).toBeGreaterThan(0);
  });

  it("int8 forms only on the CPU's plain float32 graphs", () => {
    for (const bad of [
      { linear: "int8", graphFlavour: "fused" },
      { linear: "int8", precision: "float16", attention: "matmul" },
    ] as const) {
      expect(() => graphForm(bad)).toThrow(HartError);
    }
    expect(() => graphForm({ linear: "int4" as "int8" })).toThrow(/linear must be "float" or "int8"/);
    expect(graphForm({ linear: "int8" }).linear).toBe("int8");
  });
});
