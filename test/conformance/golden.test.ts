import { afterAll, describe, expect, it } from "vitest";
import { runners } from "./cases/index";
import { findGoldenSets, GOLDEN_DIR, goldenSummary, runGoldenCase, summaryLine } from "./harness";

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
        summary.push(summaryLine(set.name, caseName, "skip"));
        it.skip(`${set.name}/${caseName} (no package covers it yet)`, () => {});
        continue;
      }
      it(`${set.name}/${caseName}`, async () => {
        const outcome = await runGoldenCase(set, caseName, runner);
        summary.push(outcome.line);
        if (outcome.error !== undefined) throw outcome.error;
        expect(outcome.checked, "the runner checked no tensor").toBeGreaterThan(0);
        expect(outcome.failed, "tensors outside tolerance").toEqual([]);
      });
    }
  }

  afterAll(() => {
    console.log(`\n${goldenSummary(summary)}`);
  });
});
