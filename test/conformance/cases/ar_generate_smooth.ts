/**
 * `ar_generate_smooth`: the scale loop with `more_smooth` (Gumbel-softmax soft
 * code embeddings, replayed noise), checked with the looser float32 tolerance
 * the small temperatures call for (README section 6).
 */
import type { CaseRunner } from "../harness";
import { runArCase } from "./ar_shared";

export const arGenerateSmooth: CaseRunner = (ctx) => runArCase(ctx, true);
