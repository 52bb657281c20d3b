/**
 * Turning guided logits into codes: the replaceable pieces (random source,
 * token sampler) and their defaults (seeded multinomial after top-k/top-p,
 * replay of recorded draws).
 */
import { createRng, HartError, numel, type Session, type Tensor, tensor } from "@hart/core";

/** The random draws the scale loop takes. Replace it to control or record randomness. */
export interface RandomSource {
  /** `count` independent uniform draws in [0, 1). */
  uniform(count: number): ArrayLike<number>;
  /** Standard Gumbel noise (`−log(−log(u))`) of `shape`, for `moreSmooth`. */
  gumbel(shape: readonly number[]): Tensor<"float32">;
}

/** What a {@link TokenSampler} is asked to sample. */
export interface SampleRequest {
  /** Scale index. */
  si: number;
  /** Guided logits after top-k/top-p filtering, −inf where removed, `[B, l, V]`. */
  filteredBLV: Tensor<"float32">;
  /** `softmax(filteredBLV)` `[B, l, V]` (computed in onnxruntime). */
  probsBLV: Tensor<"float32">;
  /**
   * Grid position (row-major index into the pn×pn map) of each sampled token,
   * per batch row: `0..l-1` except when the last scale is generated in several
   * MaskGIT iterations.
   */
  positions: readonly Int32Array[];
  /** The generation's random source. */
  random: RandomSource;
}

/** Picks one code per token. The default draws from `probsBLV` (multinomial); swap it for argmax, replay, … */
export interface TokenSampler {
  /** Returns the codes `[B, l]` (int64). A code outside the filtered set is an error of the sampler. */
  sample(request: SampleRequest): Tensor<"int64"> | Promise<Tensor<"int64">>;
}

/**
 * The default sampler: one uniform draw per token, inverted through the
 * cumulative distribution (float64 sums of the float32 probabilities, so the
 * result depends only on the draws and the probabilities).
 */
export const multinomialSampler: TokenSampler = {
  sample({ probsBLV, random }) {
    const [B, l, V] = probsBLV.shape;
    const p = probsBLV.data;
    const u = random.uniform(B * l);
    const out = new BigInt64Array(B * l);
    for (let r = 0; r < B * l; r++) {
      const base = r * V;
      let total = 0;
      for (let v = 0; v < V; v++) total += p[base + v];
      const target = u[r] * total;
      let acc = 0;
      let pick = -1;
      for (let v = 0; v < V; v++) {
        const pv = p[base + v];
        if (pv <= 0) continue;
        pick = v;
        acc += pv;
        if (acc > target) break;
      }
      if (pick < 0)
        throw new HartError("sampling", `scale row ${r}: every code has probability 0 (non-finite logits?)`);
      out[r] = BigInt(pick);
    }
    return tensor("int64", [B, l], out);
  },
};

/** Greedy decoding: the most likely code of each token (first on ties). */
export const argmaxSampler: TokenSampler = {
  sample({ probsBLV }) {
    const [B, l, V] = probsBLV.shape;
    const p = probsBLV.data;
    const out = new BigInt64Array(B * l);
    for (let r = 0; r < B * l; r++) {
      let best = 0;
      for (let v = 1; v < V; v++) if (p[r * V + v] > p[r * V + best]) best = v;
      out[r] = BigInt(best);
    }
    return tensor("int64", [B, l], out);
  },
};

/** Recorded draws to feed back in place of sampling (e.g. the golden reference's `s{si}.idx` and `s{si}.gumbel`). */
export interface ReplayDraws {
  /** Per scale, the codes `[B, pn²]` (scale 0: `[B, 1]`). */
  indices: readonly Tensor<"int64">[];
  /** Per scale, the Gumbel noise `[B, pn², V]` (scale 0: `[B, 1, V]`), for `moreSmooth`. */
  gumbel?: readonly Tensor<"float32">[];
}

/**
 * A sampler returning recorded codes, taken at the requested grid positions.
 * It checks that each code lies inside the filtered set (probability > 0).
 */
export function replaySampler(indices: readonly Tensor<"int64">[]): TokenSampler {
  return {
    sample({ si, probsBLV, positions }) {
      const rec = indices[si];
      if (!rec) throw new HartError("argument", `replay: no recorded indices for scale ${si}`);
      const [B, l, V] = probsBLV.shape;
      const full = rec.shape[rec.shape.length - 1];
      if (rec.shape[0] !== B)
        throw new HartError("shape", `replay: indices of scale ${si} are [${rec.shape}], batch ${B} expected`);
      const out = new BigInt64Array(B * l);
      for (let b = 0; b < B; b++) {
        for (let j = 0; j < l; j++) {
          const pos = positions[b][j];
          if (pos >= full)
            throw new HartError("shape", `replay: indices of scale ${si} [${rec.shape}] have no position ${pos}`);
          const code = rec.data[b * full + pos];
          const c = Number(code);
          if (!(c >= 0 && c < V) || !(probsBLV.data[(b * l + j) * V + c] > 0)) {
            throw new HartError(
              "sampling",
              `replay: code ${code} at scale ${si}, row ${b}, token ${pos} is outside the filtered set`,
            );
          }
          out[b * l + j] = code;
        }
      }
      return tensor("int64", [B, l], out);
    },
  };
}

/** A random source that hands out recorded Gumbel noise scale by scale and refuses other draws. */
export function replayRandom(gumbel: readonly Tensor<"float32">[] = []): RandomSource {
  let next = 0;
  return {
    uniform() {
      throw new HartError("argument", "replay: the replay random source has no uniform draws (replay the indices too)");
    },
    gumbel(shape) {
      const t = gumbel[next++];
      if (!t) throw new HartError("argument", `replay: no recorded Gumbel noise for draw ${next - 1}`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new HartError("shape", `replay: recorded Gumbel noise ${next - 1} is [${t.shape}], [${shape}] needed`);
      }
      return t;
    },
  };
}

/** Runs the filter graph: top-k (k clamped to V) and optional top-p, returning filtered logits and probabilities. */
export async function filterLogits(
  session: Session,
  guidedBLV: Tensor<"float32">,
  topK: number,
  topP: number,
): Promise<{
  /** Guided logits after top-k/top-p filtering, −inf where removed, `[B, l, V]`. */
  filteredBLV: Tensor<"float32">;
  /** `softmax(filteredBLV)`, `[B, l, V]`; 0 outside the kept set. */
  probsBLV: Tensor<"float32">;
}> {
  const V = guidedBLV.shape[2];
  const k = topK > 0 ? Math.min(Math.floor(topK), V) : V;
  const feeds: Record<string, Tensor> = { logits: guidedBLV, k: tensor("int64", [1], BigInt64Array.of(BigInt(k))) };
  if (topP > 0) feeds.keep = tensor("float32", [1], Float32Array.of(1 - topP));
  const out = await session.run(feeds);
  return { filteredBLV: out.filtered as Tensor<"float32">, probsBLV: out.probs as Tensor<"float32"> };
}

/**
 * The default random source: core's seeded generator (`createRng`), one
 * stream per kind of draw (`split("ar.uniform")`, `split("ar.gumbel")`), so
 * turning `moreSmooth` on does not change the uniform draws. The generator is
 * pure integer arithmetic: same seed, same draws on every JavaScript runtime.
 */
export function seededRandom(seed: number | bigint): RandomSource {
  const root = createRng(seed);
  const uniform = root.split("ar.uniform");
  const gumbel = root.split("ar.gumbel");
  return {
    uniform: (count) => uniform.uniform(count),
    gumbel: (shape) => tensor("float32", shape, gumbel.gumbel(numel(shape))),
  };
}
