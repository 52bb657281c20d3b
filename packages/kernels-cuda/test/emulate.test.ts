/**
 * A fused graph whose GroupNorm is CUDA-only runs on CPU once emulated, and matches the plain graph: this checks
 * the whole fused form (NHWC transposes, SiLU flag, float32 gamma/beta) end to end, in float32 and float16.
 */
import {
  createRng,
  createSession,
  GraphBuilder,
  type GraphForm,
  groupNormOf,
  PLAIN_FORM,
  relativeError,
  type Tensor,
  toFloat16,
} from "@hart/core";
import { describe, expect, it } from "vitest";
import { emulateCudaOnlyOps } from "../src/index";

const rng = createRng(7);
const randn = (shape: number[], scale = 1) => {
  const t = rng.normal(shape);
  for (let i = 0; i < t.data.length; i++) t.data[i] *= scale;
  return t;
};

/** ‖a − b‖₂ / ‖b‖₂, printed so the run shows the measured error. */
function relErr(label: string, actual: Tensor, expected: Tensor): number {
  const err = relativeError(actual, expected);
  console.log(`${label}: relative error ${err.toExponential(2)}`);
  return err;
}

describe("emulateCudaOnlyOps", () => {
  const [N, C, H, W, groups, eps] = [2, 128, 4, 6, 32, 1e-6];
  const gamma = randn([C], 0.5);
  const beta = randn([C], 0.2);
  const conv = randn([C, C, 3, 3], 1 / Math.sqrt(9 * C));

  /** conv → GroupNorm+SiLU → conv → GroupNorm, as in a ResnetBlock of the tokenizer decoder. */
  function build(form: GraphForm) {
    const g = new GraphBuilder(`gn-${form.flavour}-${form.precision}`);
    const dtype = form.precision;
    const x = g.input("x", dtype, ["N", C, "H", "W"]);
    const w = g.weight(form.precision === "float16" ? toFloat16(conv) : conv);
    const c1 = g.op("Conv", [x, w], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    const h = groupNormOf(g, form, c1, gamma, beta, { groups, eps, silu: true });
    const c2 = g.op("Conv", [h, w], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    g.output(groupNormOf(g, form, c2, gamma, beta, { groups, eps }), "y", dtype);
    return g.build();
  }

  async function run(model: ReturnType<typeof build>, x: Tensor) {
    const session = await createSession(model, { intraOpThreads: 1 });
    try {
      return (await session.run({ x })).y;
    } finally {
      await session.release();
    }
  }

  it("a fused GroupNorm graph has no CPU kernel and does not load until emulated", async () => {
    const fused = build({ flavour: "fused", precision: "float32" });
    await expect(run(fused, randn([N, C, H, W]))).rejects.toThrow(/GroupNorm/);
    expect(fused.bytes).not.toEqual(emulateCudaOnlyOps(fused).bytes);
  });

  it("the emulated fused graph matches the plain graph (float32 and float16)", async () => {
    const x = randn([N, C, H, W], 2);
    const plain = await run(build(PLAIN_FORM), x);
    const fused = await run(emulateCudaOnlyOps(build({ flavour: "fused", precision: "float32" })), x);
    expect(relErr("GroupNorm chain fused (emulated) vs plain, float32", fused, plain)).toBeLessThan(1e-5);
    const half = await run(emulateCudaOnlyOps(build({ flavour: "fused", precision: "float16" })), toFloat16(x));
    expect(half.dtype).toBe("float16");
    expect(relErr("GroupNorm chain fused (emulated) float16 vs plain float32", half, plain)).toBeLessThan(1e-2);
  });

  it("leaves graphs without CUDA-only ops computing the same", async () => {
    const model = build(PLAIN_FORM);
    const x = randn([1, C, 3, 3]);
    expect(relErr("plain graph emulated vs itself", await run(emulateCudaOnlyOps(model), x), await run(model, x))).toBe(
      0,
    );
  });
});
