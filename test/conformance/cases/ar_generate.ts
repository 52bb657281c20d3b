/**
 * `ar_generate`: the transformer's scale loop with sampled codes (EMA weights,
 * replayed indices), every scale's inputs, block outputs, logits and f_hat,
 * then the residual diffusion and the decoded image.
 */
import type { CaseRunner } from "../harness";
import { runArCase } from "./ar_shared";

export const arGenerate: CaseRunner = (ctx) => runArCase(ctx, false);
