/**
 * An independent float64 Qwen2Model forward (Hugging Face eager semantics),
 * written per token and per head with plain loops, for checking the graphs
 * on small models.
 */
import { type StateDict, type Tensor, toFloat32 } from "@hart/core";
import type { Qwen2Config } from "../src/index";

const cache = new WeakMap<Tensor, Float64Array>();

function get(sd: StateDict, key: string): Float64Array {
  const t = sd.get(key) ?? sd.get(`model.${key}`);
  if (!t) throw new Error(`reference: no weight ${key}`);
  let f = cache.get(t);
  if (!f) {
    f = Float64Array.from(toFloat32(t).data);
    cache.set(t, f);
  }
  return f;
}

/** `y[o] = Σ_i w[o, i] x[i] (+ b[o])` with `w` as stored `[out, in]`. */
function linear(x: Float64Array, w: Float64Array, out: number, b?: Float64Array): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b ? b[o] : 0;
    for (let i = 0; i < n; i++) s += w[o * n + i] * x[i];
    y[o] = s;
  }
  return y;
}

function rms(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  let ms = 0;
  for (const v of x) ms += v * v;
  const inv = 1 / Math.sqrt(ms / x.length + eps);
  return x.map((v, i) => v * inv * w[i]);
}

function rope(x: Float64Array, heads: number, hd: number, pos: number, theta: number): void {
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < hd / 2; i++) {
      const angle = pos / theta ** ((2 * i) / hd);
      const [c, s] = [Math.cos(angle), Math.sin(angle)];
      const a = x[h * hd + i];
      const b = x[h * hd + i + hd / 2];
      x[h * hd + i] = a * c - b * s;
      x[h * hd + i + hd / 2] = b * c + a * s;
    }
  }
}

const FLOAT32_MIN = -3.4028234663852886e38;

/** `last_hidden_state` `[B, S, D]` of `Qwen2Model(ids, attention_mask=mask)` with position ids 0..S-1. */
export function qwen2Reference(c: Qwen2Config, sd: StateDict, idsBS: Tensor, maskBS: Tensor): Float64Array {
  const [B, S] = idsBS.shape;
  const { hiddenSize: D, headDim: hd, numHeads: H, numKvHeads: KV, intermediateSize: I } = c;
  const ids = Array.from(idsBS.data as ArrayLike<number | bigint>, Number);
  const mask = Array.from(maskBS.data as ArrayLike<number | bigint>, Number);
  const embed = get(sd, "embed_tokens.weight");
  const out = new Float64Array(B * S * D);
  for (let b = 0; b < B; b++) {
    let xs = Array.from({ length: S }, (_, s) => embed.slice(ids[b * S + s] * D, (ids[b * S + s] + 1) * D));
    for (let l = 0; l < c.numLayers; l++) {
      const p = `layers.${l}.`;
      const w = (k: string) => get(sd, p + k);
      const hs = xs.map((x) => rms(x, w("input_layernorm.weight"), c.rmsNormEps));
      const qs = hs.map((h, s) => {
        const q = linear(h, w("self_attn.q_proj.weight"), H * hd, w("self_attn.q_proj.bias"));
        rope(q, H, hd, s, c.ropeTheta);
        return q;
      });
      const ks = hs.map((h, s) => {
        const k = linear(h, w("self_attn.k_proj.weight"), KV * hd, w("self_attn.k_proj.bias"));
        rope(k, KV, hd, s, c.ropeTheta);
        return k;
      });
      const vs = hs.map((h) => linear(h, w("self_attn.v_proj.weight"), KV * hd, w("self_attn.v_proj.bias")));
      const oProj = w("self_attn.o_proj.weight");
      xs = xs.map((x, i) => {
        const o = new Float64Array(H * hd);
        for (let h = 0; h < H; h++) {
          const kv = Math.floor(h / (H / KV));
          const scores = ks.map((k, j) => {
            let dot = 0;
            for (let d = 0; d < hd; d++) dot += qs[i][h * hd + d] * k[kv * hd + d];
            return dot / Math.sqrt(hd) + (j <= i && mask[b * S + j] ? 0 : FLOAT32_MIN);
          });
          const max = Math.max(...scores);
          const e = scores.map((s) => Math.exp(s - max));
          const sum = e.reduce((a, v) => a + v, 0);
          e.forEach((p, j) => {
            for (let d = 0; d < hd; d++) o[h * hd + d] += (p / sum) * vs[j][kv * hd + d];
          });
        }
        const attn = linear(o, oProj, D);
        return x.map((v, d) => v + attn[d]);
      });
      xs = xs.map((x) => {
        const h = rms(x, w("post_attention_layernorm.weight"), c.rmsNormEps);
        const gate = linear(h, w("mlp.gate_proj.weight"), I);
        const up = linear(h, w("mlp.up_proj.weight"), I);
        const act = gate.map((g, k) => (g / (1 + Math.exp(-g))) * up[k]);
        const down = linear(act, w("mlp.down_proj.weight"), D);
        return x.map((v, d) => v + down[d]);
      });
    }
    xs.forEach((x, s) => {
      out.set(rms(x, get(sd, "norm.weight"), c.rmsNormEps), (b * S + s) * D);
    });
  }
  return out;
}

/** max |a − b| / (atol + rtol·|b|) over all elements (≤ 1 means within tolerance). */
export function toleranceRatio(a: ArrayLike<number>, b: ArrayLike<number>, atol = 1e-4, rtol = 1e-4): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const r = Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i]));
    if (!(r <= worst)) worst = Number.isNaN(r) ? Number.POSITIVE_INFINITY : r;
  }
  return worst;
}
