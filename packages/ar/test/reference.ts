/**
 * A float64, loop-by-loop re-implementation of the official
 * `HARTForT2I.autoregressive_infer_cfg` (hart/modules/models/transformer/
 * hart_transformer_t2i.py, hart/modules/networks/basic_hart.py), written from
 * the reference code for the tests: it replays given codes (and MaskGIT
 * orders) and returns the guided logits of every step and the diffusion
 * conditioning. Covers every config variant, including those the golden sets
 * do not (gpt2 attention, shared_aln, attn_l2_norm, several MaskGIT steps).
 */
import type { StateDict, Tensor } from "@hart/core";
import { tensor } from "@hart/core";
import type { ScaleQuantizer } from "@hart/tokenizer";
import { type HartTransformerConfig, mlpHidden } from "../src/index";

type M = Float64Array; // row-major matrix [rows, cols]

function get(sd: StateDict, key: string): Float64Array {
  const t = sd.get(key);
  if (!t) throw new Error(`reference: missing ${key}`);
  return Float64Array.from(t.data as Float32Array);
}

/** y[r, o] = Σ_i x[r, i] W[o, i] + b[o] (PyTorch Linear). */
function linear(x: M, rows: number, W: Float64Array, out: number, inp: number, b?: Float64Array): M {
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let acc = b ? b[o] : 0;
      for (let i = 0; i < inp; i++) acc += x[r * inp + i] * W[o * inp + i];
      y[r * out + o] = acc;
    }
  }
  return y;
}

const silu = (v: number) => v / (1 + Math.exp(-v));
const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));

function norm(x: M, rows: number, C: number, kind: "rms" | "ln", eps: number, w?: Float64Array, b?: Float64Array): M {
  const y = new Float64Array(rows * C);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * C, (r + 1) * C);
    let mean = 0;
    if (kind === "ln") for (const v of row) mean += v / C;
    let sq = 0;
    for (const v of row) sq += (v - mean) ** 2 / C;
    const inv = 1 / Math.sqrt(sq + eps);
    for (let c = 0; c < C; c++) y[r * C + c] = (row[c] - mean) * inv * (w ? w[c] : 1) + (b ? b[c] : 0);
  }
  return y;
}

/** What {@link referenceGenerate} replays and returns. */
export interface ReferenceRun {
  /** Guided logits per step: one per scale, the last scale once per MaskGIT iteration. */
  guided: Float64Array[];
  /** `last.stage_cond` `[2B, HW², C]`. */
  stageCond: Float64Array;
}

/**
 * @param codes per scale `[B, pn²]` (scale 0: `[B, 1]`) — the codes to replay
 * @param orders MaskGIT generation order per image (only with `iters > 1`)
 */
export async function referenceGenerate(
  cfg: HartTransformerConfig,
  sd: StateDict,
  quantizer: ScaleQuantizer,
  context: { contextBLD: Tensor<"float32">; mask: Tensor; positionIds: Tensor<"int64"> },
  options: { cfg: number; codes: Tensor<"int64">[]; iters?: number; orders?: Tensor<"int64"> },
): Promise<ReferenceRun> {
  const C = cfg.embedDim;
  const H = cfg.numHeads;
  const hd = C / H;
  const T = cfg.contextToken;
  const Dc = cfg.contextDim;
  const [B] = context.contextBLD.shape;
  const N = 2 * B;
  const pns = quantizer.patchNums;
  const SN = pns.length;
  const HW = pns[SN - 1];
  const V = quantizer.vocabSize;
  const Cvae = quantizer.latentChannels;
  const E = Float64Array.from(quantizer.codebook.data);
  const kind = cfg.attnType === "llama" ? "rms" : "ln";
  const eps = cfg.normEps;
  const hidden = mlpHidden(cfg);

  // guidance batch
  const ctx2 = new Float64Array(N * T * Dc);
  ctx2.set(Float64Array.from(context.contextBLD.data));
  const mask = new Float64Array(N * T);
  const pos = new Float64Array(N * T);
  for (let i = 0; i < B * T; i++) {
    mask[i] = Number(context.mask.data[i]);
    pos[i] = Number(context.positionIds.data[i]);
  }
  for (let b = B; b < N; b++) mask[b * T] = 1;
  const normedCtx = cfg.useContextNorm ? norm(ctx2, N * T, Dc, "rms", eps, get(sd, "context_norm.weight")) : ctx2;
  const cond = linear(normedCtx, N * T, get(sd, "context_embed.weight"), C, Dc, get(sd, "context_embed.bias"));

  const pool = (mode: "avg" | "max") => {
    const out = new Float64Array(N * C);
    for (let n = 0; n < N; n++) {
      let count = 0;
      for (let t = 0; t < T; t++) count += mask[n * T + t];
      for (let c = 0; c < C; c++) {
        let acc = mode === "max" ? Number.NEGATIVE_INFINITY : 0;
        for (let t = 0; t < T; t++) {
          const v = cond[(n * T + t) * C + c];
          acc = mode === "max" ? Math.max(acc, v) : acc + (v * mask[n * T + t]) / Math.max(count, 1);
        }
        out[n * C + c] = acc;
      }
    }
    return out;
  };
  const headMod = linear(
    pool("max").map(silu),
    N,
    get(sd, "head_nm.ada_lin.1.weight"),
    2 * C,
    C,
    get(sd, "head_nm.ada_lin.1.bias"),
  );
  const blockMods: Float64Array[] = [];
  for (let i = 0; i < cfg.depth; i++) {
    if (!cfg.disableAln) {
      const p = pool(cfg.sepAlnPoolingMode).map(silu);
      blockMods.push(
        linear(p, N, get(sd, `blocks.${i}.ada_lin.1.weight`), 6 * C, C, get(sd, `blocks.${i}.ada_lin.1.bias`)),
      );
    } else if (cfg.sharedAln) {
      const table = get(sd, `blocks.${i}.scale_shift_table`);
      const p = pool("avg");
      const m = new Float64Array(N * 6 * C);
      for (let n = 0; n < N; n++) for (let j = 0; j < 6 * C; j++) m[n * 6 * C + j] = table[j] + p[n * C + (j % C)];
      blockMods.push(m);
    }
  }

  // level embedding (+ absolute positions for gpt2 attention) per token position
  const level = (si: number): Float64Array => {
    if (!cfg.useTimestepEmbed) return get(sd, "lvl_embed.weight").slice(si * C, (si + 1) * C);
    const f = new Float64Array(256);
    for (let i = 0; i < 128; i++) {
      const a = si * Math.exp((-Math.log(10000) * i) / 128);
      f[i] = Math.cos(a);
      f[128 + i] = Math.sin(a);
    }
    const h = linear(f, 1, get(sd, "lvl_embed.mlp.0.weight"), C, 256, get(sd, "lvl_embed.mlp.0.bias")).map(silu);
    return linear(h, 1, get(sd, "lvl_embed.mlp.2.weight"), C, C, get(sd, "lvl_embed.mlp.2.bias"));
  };
  const posTable = cfg.attnType === "gpt2" ? get(sd, "pos_1LC") : undefined;
  const addLevel = (x: M, rows: number, l: number, si: number, begin: number) => {
    const lv = level(si);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < l; j++) {
        for (let c = 0; c < C; c++) x[(r * l + j) * C + c] += lv[c] + (posTable ? posTable[(begin + j) * C + c] : 0);
      }
    }
  };

  let x: M = cond.slice();
  if (cfg.attnType === "gpt2") {
    const ps = get(sd, "pos_start");
    for (let i = 0; i < x.length; i++) x[i] += ps[i % (T * C)];
  }
  addLevel(x, N, T, 0, 0);

  // [block][row] → cached per-token key/value vectors
  const cacheK: number[][][][] = Array.from({ length: cfg.depth }, () => Array.from({ length: N }, () => []));
  const cacheV: number[][][][] = Array.from({ length: cfg.depth }, () => Array.from({ length: N }, () => []));
  const l2cap = Math.log(100);

  /** One block on `l` tokens per row with per-token RoPE positions `[N, l, 2]` (or 1-D). */
  const block = (
    i: number,
    x: M,
    l: number,
    ropeOf: (n: number, j: number, d: number) => number,
    store: boolean,
  ): M => {
    const p = `blocks.${i}`;
    const rows = N * l;
    const mod = blockMods[i];
    const modulate = (h: M, scaleIdx: number, shiftIdx: number) => {
      if (!mod) return h;
      for (let n = 0; n < N; n++) {
        for (let j = 0; j < l; j++) {
          for (let c = 0; c < C; c++) {
            const k = (n * l + j) * C + c;
            h[k] = h[k] * (1 + mod[n * 6 * C + scaleIdx * C + c]) + mod[n * 6 * C + shiftIdx * C + c];
          }
        }
      }
      return h;
    };
    const lnW = kind === "rms" ? get(sd, `${p}.ln_wo_grad.weight`) : undefined;
    const h = modulate(norm(x, rows, C, kind, eps, lnW), 2, 4);
    const qkvW = get(sd, cfg.attnType === "llama" ? `${p}.attn.qkv_proj.weight` : `${p}.attn.mat_qkv.weight`);
    const bias = new Float64Array(3 * C);
    bias.set(get(sd, `${p}.attn.q_bias`));
    bias.set(get(sd, `${p}.attn.v_bias`), 2 * C);
    const qkv = linear(h, rows, qkvW, 3 * C, C, bias);
    const scaleMul = cfg.attnL2Norm
      ? get(sd, `${p}.attn.scale_mul_1H11`).map((s) => Math.exp(Math.min(s, l2cap)))
      : undefined;
    const headVec = (r: number, part: number, head: number) =>
      Array.from({ length: hd }, (_, d) => qkv[r * 3 * C + part * C + head * hd + d]);
    const prep = (v: number[], head: number, isQ: boolean, n: number, j: number) => {
      if (cfg.attnL2Norm) {
        const nn = Math.max(Math.hypot(...v), 1e-12);
        v = v.map((a) => (a / nn) * (isQ ? scaleMul![head] : 1));
      }
      if (cfg.attnType === "llama") {
        const rot = v.map((_, d) => (d < hd / 2 ? -v[d + hd / 2] : v[d - hd / 2]));
        v = v.map((a, d) => a * Math.cos(ropeOf(n, j, d)) + rot[d] * Math.sin(ropeOf(n, j, d)));
      }
      return v;
    };
    const attnOut = new Float64Array(rows * C);
    const scale = cfg.attnL2Norm ? 1 : 0.25 / Math.sqrt(hd);
    for (let n = 0; n < N; n++) {
      const newK: number[][] = [];
      const newV: number[][] = [];
      const qs: number[][] = [];
      for (let j = 0; j < l; j++) {
        const r = n * l + j;
        const kRow: number[] = [];
        const vRow: number[] = [];
        for (let hh = 0; hh < H; hh++) {
          qs.push(prep(headVec(r, 0, hh), hh, true, n, j));
          kRow.push(...prep(headVec(r, 1, hh), hh, false, n, j));
          vRow.push(...headVec(r, 2, hh));
        }
        newK.push(kRow);
        newV.push(vRow);
      }
      const keys = [...cacheK[i][n], ...newK];
      const vals = [...cacheV[i][n], ...newV];
      if (store) {
        cacheK[i][n].push(...newK);
        cacheV[i][n].push(...newV);
      }
      for (let j = 0; j < l; j++) {
        for (let hh = 0; hh < H; hh++) {
          const q = qs[j * H + hh];
          const s = keys.map((k) => q.reduce((a, qd, d) => a + qd * k[hh * hd + d], 0) * scale);
          const mx = Math.max(...s);
          const e = s.map((v) => Math.exp(v - mx));
          const z = e.reduce((a, b) => a + b, 0);
          for (let d = 0; d < hd; d++) {
            attnOut[(n * l + j) * C + hh * hd + d] = vals.reduce((a, v, t) => a + (e[t] / z) * v[hh * hd + d], 0);
          }
        }
      }
    }
    const o = linear(attnOut, rows, get(sd, `${p}.attn.proj.weight`), C, C, get(sd, `${p}.attn.proj.bias`));
    const x1 = x.map((v, k) => v + o[k] * (mod ? mod[Math.floor(k / (l * C)) * 6 * C + (k % C)] : 1));
    const h2 = modulate(norm(x1, rows, C, kind, eps, lnW), 3, 5);
    let f: M;
    if (cfg.mlpType === "llama") {
      const g = linear(h2, rows, get(sd, `${p}.ffn.gate_proj.weight`), hidden, C);
      const u = linear(h2, rows, get(sd, `${p}.ffn.up_proj.weight`), hidden, C);
      f = linear(
        g.map((v, k) => silu(v) * u[k]),
        rows,
        get(sd, `${p}.ffn.down_proj.weight`),
        C,
        hidden,
      );
    } else {
      const a = linear(h2, rows, get(sd, `${p}.ffn.fc1.weight`), hidden, C, get(sd, `${p}.ffn.fc1.bias`)).map(gelu);
      f = linear(a, rows, get(sd, `${p}.ffn.fc2.weight`), C, hidden, get(sd, `${p}.ffn.fc2.bias`));
    }
    return x1.map((v, k) => v + f[k] * (mod ? mod[Math.floor(k / (l * C)) * 6 * C + C + (k % C)] : 1));
  };

  const headLogits = (x: M, l: number, t: number): Float64Array => {
    const h = norm(x, N * l, C, kind, eps, kind === "rms" ? get(sd, "head_nm.ln_wo_grad.weight") : undefined);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < l * C; k++)
        h[n * l * C + k] = h[n * l * C + k] * (1 + headMod[n * 2 * C + (k % C)]) + headMod[n * 2 * C + C + (k % C)];
    }
    const logits = linear(h, N * l, get(sd, "head.weight"), V, C, get(sd, "head.bias"));
    const half = B * l * V;
    return logits.slice(0, half).map((v, k) => (1 + t) * v - t * logits[half + k]);
  };

  const ropeInv = (stride: number) => Array.from({ length: hd / stride }, (_, i) => 1 / 10000 ** ((i * stride) / hd));
  const inv1 = ropeInv(2);
  const inv2 = ropeInv(4);
  const offset = (n: number) => pos[n * T + T - 1];
  const image = (pn: number, position: (n: number, j: number) => number) => (n: number, j: number, d: number) => {
    const p = position(n, j);
    const coord = d < hd / 2 ? Math.floor(p / pn) : p % pn;
    return ((coord / pn) * HW + offset(n)) * inv2[d % (hd / 4)];
  };

  const guided: Float64Array[] = [];
  let fHat = tensor("float32", [B, Cvae, HW, HW], new Float32Array(B * Cvae * HW * HW));
  let begin = T;
  let ratio = 0;
  for (let si = 0; si < SN - 1; si++) {
    ratio = si / (SN - 1);
    const t = options.cfg * ratio;
    const pn = pns[si];
    const l = si === 0 ? T : pn * pn;
    const rope =
      si === 0 ? (n: number, j: number, d: number) => pos[n * T + j] * inv1[d % (hd / 2)] : image(pn, (_, j) => j);
    for (let i = 0; i < cfg.depth; i++) x = block(i, x, l, rope, true);
    let g = headLogits(x, l, t);
    if (si === 0) g = Float64Array.from({ length: B * V }, (_, k) => g[(Math.floor(k / V) * l + l - 1) * V + (k % V)]);
    guided.push(g);
    const codes = options.codes[si];
    const hBChw = new Float32Array(B * Cvae * pn * pn);
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < pn * pn; j++) {
        const c = Number(codes.data[b * pn * pn + j]);
        for (let ch = 0; ch < Cvae; ch++) hBChw[(b * Cvae + ch) * pn * pn + j] = E[c * Cvae + ch];
      }
    }
    const next = await quantizer.nextScaleInput(si, fHat, tensor("float32", [B, Cvae, pn, pn], hBChw));
    fHat = next.fHatBCHW;
    const pn2 = pns[si + 1];
    const tokens = new Float64Array(B * pn2 * pn2 * Cvae);
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < pn2 * pn2; j++) {
        for (let ch = 0; ch < Cvae; ch++)
          tokens[(b * pn2 * pn2 + j) * Cvae + ch] = next.nextBChw!.data[(b * Cvae + ch) * pn2 * pn2 + j];
      }
    }
    const e = linear(tokens, B * pn2 * pn2, get(sd, "word_embed.weight"), C, Cvae, get(sd, "word_embed.bias"));
    x = new Float64Array(N * pn2 * pn2 * C);
    x.set(e);
    x.set(e, e.length);
    addLevel(x, N, pn2 * pn2, si + 1, begin);
    begin += pn2 * pn2;
  }

  // last scale, MaskGIT (the ratio of the previous scale is kept, as released)
  const t = options.cfg * ratio;
  const L = HW * HW;
  const iters = options.iters ?? 1;
  const stageCond = new Float64Array(N * L * C);
  const fullX = x;
  let maskLen = L;
  for (let step = 0; step < iters; step++) {
    const next = Math.max(1, Math.min(maskLen - 1, Math.floor(L * Math.cos((Math.PI / 2) * ((step + 1) / iters)))));
    const chosen: number[][] = [];
    for (let b = 0; b < B; b++) {
      const order = options.orders
        ? Array.from(options.orders.data.subarray(b * L, (b + 1) * L), Number)
        : [...Array(L).keys()];
      const masked = new Set(order.slice(0, maskLen));
      const stays = new Set(order.slice(0, next));
      chosen.push([...Array(L).keys()].filter((p) => masked.has(p) && (step === iters - 1 || !stays.has(p))));
    }
    maskLen = next;
    const l = chosen[0].length;
    let xs: M = new Float64Array(N * l * C);
    for (let n = 0; n < N; n++) {
      for (let j = 0; j < l; j++)
        xs.set(fullX.subarray((n * L + chosen[n % B][j]) * C, (n * L + chosen[n % B][j] + 1) * C), (n * l + j) * C);
    }
    const rope = image(HW, (n, j) => chosen[n % B][j]);
    for (let i = 0; i < cfg.depth; i++) xs = block(i, xs, l, rope, step < iters - 1);
    guided.push(headLogits(xs, l, t));
    const last = options.codes[SN - 1];
    const codes = new Float64Array(B * l * Cvae);
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < l; j++) {
        const c = Number(last.data[b * L + chosen[b][j]]);
        codes.set(E.subarray(c * Cvae, (c + 1) * Cvae), (b * l + j) * Cvae);
      }
    }
    const d = linear(codes, B * l, get(sd, "word_embed.weight"), C, Cvae, get(sd, "word_embed.bias"));
    const z = xs.map((v, k) => v + d[k % d.length]);
    const zc =
      kind === "rms"
        ? norm(z, N * l, C, "rms", eps, get(sd, "decoder_norm.weight"))
        : norm(z, N * l, C, "ln", eps, get(sd, "decoder_norm.weight"), get(sd, "decoder_norm.bias"));
    for (let n = 0; n < N; n++) {
      for (let j = 0; j < l; j++)
        stageCond.set(zc.subarray((n * l + j) * C, (n * l + j + 1) * C), (n * L + chosen[n % B][j]) * C);
    }
  }
  return { guided, stageCond };
}
