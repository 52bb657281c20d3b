/**
 * Which Phi conv refines each scale. HART shares K convs over the scales: scale
 * `si` of SN uses the conv whose tick is nearest to `si / (SN − 1)`. The ticks
 * and the pick replicate the official float64 numpy arithmetic, because at
 * ratio 0.5 two ticks are equally far apart up to 1e-16 and the rounding decides.
 */
import { HartError } from "@hart/core";
import type { TokenizerConfig } from "./config";

/** `numpy.linspace(start, stop, num)` in float64 exactly as numpy computes it: `i·step + start`, last = stop. */
export function linspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

/** The official Phi ticks for K convs: `linspace(1/3/K, 1 − 1/3/K, K)` when K = 4, else with 1/2/K. */
export function phiTicks(K: number): number[] {
  const margin = K === 4 ? 1 / 3 / K : 1 / 2 / K;
  return linspace(margin, 1 - margin, K);
}

/** `argmin |ticks − si/(SN−1)|` (the first on ties), as `PhiPartiallyShared.__getitem__` computes it. */
export function nearestTick(ticks: readonly number[], si: number, SN: number): number {
  const at = si / (SN - 1);
  let best = 0;
  for (let k = 1; k < ticks.length; k++) if (Math.abs(ticks[k] - at) < Math.abs(ticks[best] - at)) best = k;
  return best;
}

/**
 * How the Phi convs of a config are laid out: the number of convs, their state-dict
 * key prefixes (relative to `quantize.`) and the conv index used by each scale.
 */
export interface PhiLayout {
  /** False when |quant_resi| ≤ 1e-6: Phi is the identity and no conv weights exist. */
  enabled: boolean;
  /** Weight key prefix of conv k, e.g. `quant_resi.qresi_ls.2`. */
  keys: string[];
  /** Conv index of scale `si` in a schedule of `SN` scales. */
  indexOf(si: number, SN: number): number;
}

/** The Phi layout of `config` (`PhiShared`, `PhiPartiallyShared` or `PhiNonShared`). */
export function phiLayout(config: TokenizerConfig): PhiLayout {
  const enabled = Math.abs(config.quantResi) > 1e-6;
  const share = config.shareQuantResi;
  if (share === 1) return { enabled, keys: ["quant_resi.qresi"], indexOf: () => 0 };
  const K = share === 0 ? config.defaultQresiCounts || config.patchNums.length : share;
  const ticks = phiTicks(K);
  const prefix = share === 0 ? "quant_resi" : "quant_resi.qresi_ls";
  return {
    enabled,
    keys: Array.from({ length: K }, (_, k) => `${prefix}.${k}`),
    indexOf(si, SN) {
      if (!Number.isInteger(si) || si < 0 || si >= SN) {
        throw new HartError("argument", `scale index ${si} is outside the schedule of ${SN} scales`);
      }
      return nearestTick(ticks, si, SN);
    },
  };
}
