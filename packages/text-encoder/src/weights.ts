import {
  HartError,
  loadStateDict,
  type StateDict,
  type Tensor,
  takeTensor,
  toBFloat16,
  toFloat16,
  toFloat32,
} from "@hart/core";
import type { Qwen2Config } from "./config";
import type { Qwen2LayerWeights, Qwen2PartWeights } from "./qwen2-graph";

/** How the large matrices are stored in the graphs. */
export type WeightDType = "float32" | "float16" | "bfloat16";

/**
 * Hands out weights by their `Qwen2Model` key (`layers.3.mlp.up_proj.weight`,
 * no `model.` prefix), a few at a time, so that a large checkpoint is never
 * resident twice. Returned tensors may be in any float dtype.
 */
export type WeightSource = (keys: readonly string[]) => StateDict;

const PREFIX = "model.";

/** `layers.N.*` key of each layer weight. */
export function layerKeys(i: number): Record<keyof Qwen2LayerWeights, string> {
  const p = `layers.${i}.`;
  return {
    inputNorm: `${p}input_layernorm.weight`,
    qW: `${p}self_attn.q_proj.weight`,
    qB: `${p}self_attn.q_proj.bias`,
    kW: `${p}self_attn.k_proj.weight`,
    kB: `${p}self_attn.k_proj.bias`,
    vW: `${p}self_attn.v_proj.weight`,
    vB: `${p}self_attn.v_proj.bias`,
    oW: `${p}self_attn.o_proj.weight`,
    postNorm: `${p}post_attention_layernorm.weight`,
    gateW: `${p}mlp.gate_proj.weight`,
    upW: `${p}mlp.up_proj.weight`,
    downW: `${p}mlp.down_proj.weight`,
  };
}

/** Expected shape of each layer weight. */
function layerShapes(c: Qwen2Config): Record<keyof Qwen2LayerWeights, number[]> {
  const D = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const I = c.intermediateSize;
  return {
    inputNorm: [D],
    qW: [q, D],
    qB: [q],
    kW: [kv, D],
    kB: [kv],
    vW: [kv, D],
    vB: [kv],
    oW: [D, q],
    postNorm: [D],
    gateW: [I, D],
    upW: [I, D],
    downW: [D, I],
  };
}

/** Weights kept in full precision whatever the storage dtype (norms and biases: tiny, and they feed Mul/Add directly). */
const SMALL = new Set<keyof Qwen2LayerWeights>(["inputNorm", "postNorm", "qB", "kB", "vB"]);

/** Bytes of one decoder layer's weights and of the embedding table when stored as `dtype`. */
export function weightBytes(
  c: Qwen2Config,
  dtype: WeightDType,
): {
  /** Bytes of one decoder layer (projections as `dtype`, norms and biases as float32). */
  layer: number;
  /** Bytes of the `[vocab, hidden]` embedding table as `dtype`. */
  embed: number;
} {
  const size = dtype === "float32" ? 4 : 2;
  let layer = 0;
  for (const [name, shape] of Object.entries(layerShapes(c))) {
    const n = shape.reduce((a, b) => a * b, 1);
    layer += n * (SMALL.has(name as keyof Qwen2LayerWeights) ? 4 : size);
  }
  return { layer, embed: c.vocabSize * c.hiddenSize * size };
}

/** Which layers each compiled part holds. */
export interface PartPlan {
  /** Whether the part starts with the token embedding (takes `input_ids`); true only for the first part. */
  embed: boolean;
  /** Index of the part's first decoder layer in the whole model. */
  firstLayer: number;
  /** Number of consecutive decoder layers in the part (may be 0). */
  numLayers: number;
  /** Whether the part ends with the final RMSNorm (returns `last_hidden_state`); true only for the last part. */
  finalNorm: boolean;
}

/**
 * Splits the model into parts of at most `partBytes` of weights (at least the
 * embedding or one layer each): the embedding starts the first part, the
 * final norm ends the last one.
 */
export function planParts(c: Qwen2Config, dtype: WeightDType, partBytes: number): PartPlan[] {
  const { layer, embed } = weightBytes(c, dtype);
  const parts: PartPlan[] = [];
  let current: PartPlan = { embed: true, firstLayer: 0, numLayers: 0, finalNorm: false };
  let bytes = embed;
  for (let i = 0; i < c.numLayers; i++) {
    if (bytes + layer > partBytes && (current.embed || current.numLayers > 0)) {
      parts.push(current);
      current = { embed: false, firstLayer: i, numLayers: 0, finalNorm: false };
      bytes = 0;
    }
    current.numLayers++;
    bytes += layer;
  }
  current.finalNorm = true;
  parts.push(current);
  return parts;
}

/** The keys a part needs. */
export function partKeys(plan: PartPlan): string[] {
  const keys: string[] = plan.embed ? ["embed_tokens.weight"] : [];
  for (let i = plan.firstLayer; i < plan.firstLayer + plan.numLayers; i++) keys.push(...Object.values(layerKeys(i)));
  if (plan.finalNorm) keys.push("norm.weight");
  return keys;
}

function convert(t: Tensor, dtype: WeightDType): Tensor {
  if (dtype === "float32") return toFloat32(t);
  return dtype === "float16" ? toFloat16(t) : toBFloat16(t);
}

/**
 * Takes a part's weights from `source`, checks every shape against the
 * config (errors name the key and `sourceName`) and converts them to the
 * storage dtype (norms and biases: float32).
 */
export function takePart(
  c: Qwen2Config,
  plan: PartPlan,
  source: WeightSource,
  dtype: WeightDType,
  sourceName: string,
): Qwen2PartWeights {
  const sd = source(partKeys(plan));
  const take = (key: string, shape: number[], to: WeightDType) =>
    convert(takeTensor(sd, key, { shape, source: sourceName, dtype: ["float32", "float16", "bfloat16"] }), to);
  const shapes = layerShapes(c);
  const layers: Qwen2LayerWeights[] = [];
  for (let i = plan.firstLayer; i < plan.firstLayer + plan.numLayers; i++) {
    const keys = layerKeys(i);
    const w = {} as Qwen2LayerWeights;
    for (const name of Object.keys(keys) as (keyof Qwen2LayerWeights)[]) {
      w[name] = take(keys[name], shapes[name], SMALL.has(name) ? "float32" : dtype);
    }
    layers.push(w);
  }
  return {
    embed: plan.embed ? take("embed_tokens.weight", [c.vocabSize, c.hiddenSize], dtype) : undefined,
    layers,
    firstLayer: plan.firstLayer,
    finalNorm: plan.finalNorm ? take("norm.weight", [c.hiddenSize], "float32") : undefined,
  };
}

/** `key` without the `model.` prefix of `Qwen2ForCausalLM`-style checkpoints. */
function bare(key: string): string {
  return key.startsWith(PREFIX) ? key.slice(PREFIX.length) : key;
}

/** A {@link WeightSource} over a state dict whose keys may carry the `model.` prefix. */
export function stateDictSource(sd: StateDict): WeightSource {
  const byBare = new Map<string, Tensor>();
  for (const [key, t] of sd) if (!byBare.has(bare(key)) || !key.startsWith(PREFIX)) byBare.set(bare(key), t);
  return (keys) => new Map(keys.filter((k) => byBare.has(k)).map((k) => [k, byBare.get(k)!]));
}

/**
 * A {@link WeightSource} reading a checkpoint (a folder or file as
 * `loadStateDict` takes it: safetensors, sharded safetensors or PyTorch
 * `.bin`) a few keys at a time; `lm_head.*` and other unneeded tensors are
 * never read.
 */
export function checkpointSource(path: string, file?: string): WeightSource {
  return (keys) => {
    const wanted = new Set(keys);
    let sd: StateDict;
    try {
      sd = loadStateDict(path, { file, filter: (k) => wanted.has(bare(k)) });
    } catch (err) {
      if (err instanceof HartError && err.code === "missing-weight") {
        throw new HartError(
          "missing-weight",
          `${path}: none of the Qwen2 weights (e.g. "${keys[0]}") is in the checkpoint`,
        );
      }
      throw err;
    }
    return stateDictSource(sd)(keys);
  };
}
