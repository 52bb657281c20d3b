/**
 * The golden conformance suite without vitest, for machines that have node and nothing else (the device bundle,
 * `npm run device-bundle`, runs it bundled as `conformance.mjs`):
 *
 *   npx tsx test/conformance/run.ts [filter…]
 *
 * Runs every case of every set under `$HART_GOLDEN_DIR` on the target of `HART_DEVICE` / `HART_DTYPE` /
 * `HART_GRAPH_FLAVOUR` (see harness.ts), or only the `<set>/<case>` names that contain one of the filters
 * (e.g. `release/ar_generate`, `text_encode`), prints the same summary as golden.test.ts and exits 1 if a case
 * failed, or if no case ran.
 */
import { runners } from "./cases/index";
import { type CaseStatus, findGoldenSets, GOLDEN_DIR, goldenSummary, runGoldenCase, TARGET } from "./harness";

const filters = process.argv.slice(2).filter((arg) => arg !== "--");
const sets = findGoldenSets();
if (sets.length === 0) {
  console.error(`no golden sets under ${GOLDEN_DIR} (set HART_GOLDEN_DIR)`);
  process.exit(1);
}

const lines: string[] = [];
const counts: Record<CaseStatus, number> = { pass: 0, fail: 0, skip: 0 };
const started = performance.now();
for (const set of sets) {
  for (const caseName of set.cases) {
    const name = `${set.name}/${caseName}`;
    if (filters.length > 0 && !filters.some((f) => name.includes(f))) continue;
    console.log(`${name} (${TARGET.device}) …`);
    const t0 = performance.now();
    const outcome = await runGoldenCase(set, caseName, runners[caseName]);
    lines.push(outcome.line);
    counts[outcome.status]++;
    console.log(`${outcome.line} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (outcome.error !== undefined) {
      console.error(`  ${name}: ${(outcome.error as Error)?.stack ?? outcome.error}`);
    } else if (outcome.status === "fail") {
      console.error(
        `  ${name}: ${outcome.checked === 0 ? "the runner checked no tensor" : `tensors outside tolerance: ${outcome.failed.join(", ")}`}`,
      );
    }
  }
}

if (lines.length === 0) {
  console.error(`no case matches ${filters.map((f) => JSON.stringify(f)).join(" or ")} under ${GOLDEN_DIR}`);
  process.exit(1);
}
console.log(`\n${goldenSummary(lines)}`);
console.log(
  `\n${counts.pass} passed, ${counts.fail} failed, ${counts.skip} skipped in ${((performance.now() - started) / 1000).toFixed(1)} s`,
);
// exit now: a GPU session can keep handles open that would hold the process
process.exit(counts.fail > 0 ? 1 : 0);
