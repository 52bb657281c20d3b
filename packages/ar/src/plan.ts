/**
 * The per-scale scalars of a generation (guidance, top-k, Gumbel smoothing),
 * as the reference computes them. Pure data, so they can be inspected and
 * tested on their own.
 */

/** The scalars used at one scale. */
export interface ScaleStep {
  /** Scale index. */
  si: number;
  /** Side of the scale's token map. */
  pn: number;
  /** `ratio = si/(S−1)`; the last scale keeps the previous one by default (released-code quirk). */
  ratio: number;
  /** Guidance `t = cfg·ratio`: guided logits are `f32(1+t)·cond − f32(t)·uncond`. */
  t: number;
  /** Top-k of this scale (0 = none). */
  topK: number;
  /** Gumbel-softmax temperature `max(0.27·(1 − 0.95·ratio), 0.005)` (used with `moreSmooth`). */
  gumbelTau: number;
  /** Logit scale `1 + ratio` before the Gumbel softmax. */
  gumbelLogitScale: number;
}

/** The reference's hard-coded top-k: 600 for scales 0–6, 300 after. */
export const defaultTopK = (si: number): number => (si < 7 ? 600 : 300);

/**
 * The scalars of every scale of a schedule.
 *
 * @param patchNums the scale schedule (at least 2 scales)
 * @param cfg guidance scale
 * @param options `topK` (number or per-scale function, default {@link defaultTopK});
 *   `lastScaleRatio`: `"previous"` (default, as released) or `"last"` (ratio 1)
 */
export function scalePlan(
  patchNums: readonly number[],
  cfg: number,
  options: { topK?: number | ((si: number) => number); lastScaleRatio?: "previous" | "last" } = {},
): ScaleStep[] {
  const S = patchNums.length;
  return patchNums.map((pn, si) => {
    let ratio = si / (S - 1);
    if (si === S - 1 && (options.lastScaleRatio ?? "previous") === "previous") ratio = (S - 2) / (S - 1);
    const topK = typeof options.topK === "function" ? options.topK(si) : (options.topK ?? defaultTopK(si));
    return {
      si,
      pn,
      ratio,
      t: cfg * ratio,
      topK,
      gumbelTau: Math.max(0.27 * (1 - ratio * 0.95), 0.005),
      gumbelLogitScale: 1 + ratio,
    };
  });
}
