/**
 * Nominal floating-point operations of one scale of the scale loop (2 per
 * multiply-add; matrix products only: projections, FFN, attention scores and
 * values, head). Norms, RoPE and softmax are left out.
 */
import { type HartTransformerConfig, mlpHidden } from "../src/index";

/**
 * @param rows N (2B with guidance)
 * @param tokens new tokens per row at this scale
 * @param past cached tokens per row before this scale
 * @param headTokens tokens per row the head runs on (1 at the first scale)
 */
export function scaleFlops(
  cfg: HartTransformerConfig,
  vocab: number,
  rows: number,
  tokens: number,
  past: number,
  headTokens: number,
): number {
  const C = cfg.embedDim;
  const hidden = mlpHidden(cfg);
  const ffn = cfg.mlpType === "llama" ? 3 * C * hidden : 2 * C * hidden;
  const proj = 2 * rows * tokens * (3 * C * C + C * C + ffn);
  const attention = 4 * rows * tokens * (past + tokens) * C;
  return cfg.depth * (proj + attention) + 2 * rows * headTokens * C * vocab;
}
