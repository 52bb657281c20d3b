import { afterAll, describe, expect, it } from "vitest";
import { runners } from "./cases/index";
import { CaseContext, findGoldenSets, GOLDEN_DIR, TARGET } from "./harness";

const sets = findGoldenSets();
const summary: string[] = [];

describe("golden conformance", () => {
  it("finds golden sets", () => {
    expect(sets.length, `no golden sets under ${GOLDEN_DIR} (set HART_GOLDEN_DIR)`).toBeGreaterThan(0);
  });

  for (const set of sets) {
    for (const caseName of set.cases) {
      const runner = runners[caseName];
      if (!runner) {
        summary.push(`${set.name}/${caseName}: skip (max rel err n/a)`);
        it.skip(`${set.name}/${caseName} (no package covers it yet)`, () => {});
        continue;
      }
      it(`${set.name}/${caseName}`, async () => {
        const ctx = new CaseContext(set, caseName);
        let error: unknown;
        try {
          await runner(ctx);
        } catch (err) {
          error = err;
        }
        const ok = !error && ctx.results.length > 0 && ctx.results.every((r) => r.ok);
        summary.push(
          `${set.name}/${caseName}: ${ok ? "pass" : "fail"} (max rel err ${ctx.maxRelErr.toExponential(2)})`,
        );
        if (error) throw error;
        expect(ctx.results.length, "the runner checked no tensor").toBeGreaterThan(0);
        const failed = ctx.results.filter((r) => !r.ok).map((r) => `${r.label} (rel ${r.relErr.toExponential(2)})`);
        expect(failed, "tensors outside tolerance").toEqual([]);
      });
    }
  }

  afterAll(() => {
    console.log(
      `\ngolden conformance summary (${GOLDEN_DIR}; ${TARGET.device}, ${TARGET.dtype}${TARGET.graphFlavour ? `, ${TARGET.graphFlavour}` : ""}):\n${summary.sort().join("\n")}`,
    );
  });
});
