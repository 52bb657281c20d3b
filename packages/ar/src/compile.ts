/**
 * Turning a `HARTForT2I` state dict into onnxruntime sessions: checks the
 * weights against the config and the quantizer, then compiles one session per
 * block and the small graphs around them, releasing each block's tensors from
 * the state dict once its session holds them (with `consumeWeights`).
 */
import {
  type AttentionImpl,
  type BuiltModel,
  createSession,
  type Device,
  emitProgress,
  type GraphFlavour,
  type GraphForm,
  graphForm,
  HartError,
  type OnProgress,
  type ProgressEvent,
  resolveDevice,
  type Session,
  type SessionOptions,
  type StateDict,
  type Tensor,
  tensor,
} from "@hart/core";
import type { ScaleQuantizer } from "@hart/tokenizer";
import { blocksAreModulated, type HartTransformerConfig, headDim, mlpHidden } from "./config";
import { type BlockWeights, buildBlockGraph, type FfnWeights } from "./graphs/block";
import { buildLevelGraph, buildRopeGraph } from "./graphs/encodings";
import { buildCondGraph, buildEmbedGraph, buildHeadGraph } from "./graphs/head";
import { buildPrologueGraph, type PrologueWeights } from "./graphs/prologue";
import { type LoadWeightsOptions, WeightReader } from "./weights";

/** Load-time progress: one event per compiled graph. */
export interface ARLoadProgressEvent extends ProgressEvent {
  readonly stage: "ar:load";
  /** Graphs compiled so far. */
  readonly step: number;
  /** Graphs to compile. */
  readonly total: number;
  /** Same as `step` (for callers that read `done`). */
  readonly done: number;
  /** The graph just compiled (`prologue`, `block 3`, …). */
  readonly graph: string;
}

/** Options of {@link HartTransformer.fromStateDict}. */
export interface HartTransformerOptions {
  /** Where the graphs run (default `"cpu"`). */
  device?: Device;
  /**
   * Graph operator forms (default: `"fused"` on `cuda`, `"plain"` elsewhere). Fused: onnxruntime's
   * `SimplifiedLayerNormalization`/`SkipSimplifiedLayerNormalization`, `RotaryEmbedding` and `MultiHeadAttention`
   * with past/present keys/values (cache layout `[N, H, P, hd]`); all have CPU kernels, so `"fused"` also runs
   * (more slowly) on CPU, which is how it is tested.
   */
  graphFlavour?: GraphFlavour;
  /**
   * Precision of the transformer blocks (default `"float32"`). `"float16"` runs the blocks' weights, activations
   * and KV cache in float16 (the small graphs around them stay float32; norms keep float32 statistics); it needs
   * the fused flavour (`device: "cuda"` or `graphFlavour: "fused"`) or MatMul/Softmax attention (`device:
   * "webgpu"` or `attention: "matmul"`), and the llama attention of the released models. `"int8"` (CPU only) stores
   * the blocks' linear weights as per-channel int8 and quantizes their inputs on the fly (`DynamicQuantizeMatMul`,
   * `@hart/core`'s `linearInt8`): about 2–3× faster on CPU and a quarter of the block weights' memory, not exact
   * (activations, norms, attention and the KV cache stay float32).
   */
  dtype?: "float32" | "float16" | "int8";
  /**
   * How the plain flavour computes attention (default `"matmul"` on `webgpu`, `"mha"` elsewhere; see
   * `@hart/core`'s `AttentionImpl`).
   */
  attention?: AttentionImpl;
  /** Threads per onnxruntime op (default: onnxruntime's choice). */
  intraOpThreads?: number;
  /**
   * Keep the KV cache in device memory between scales (default true on `webgpu`, the only device where
   * onnxruntime-node leaves outputs on the device; an error elsewhere). The blocks then return the whole updated
   * cache, which stays a WebGPU buffer; `false` keeps it in host memory and uploads it every scale.
   */
  kvCacheOnDevice?: boolean;
  /** Overrides the scale schedule `patch_nums` (research, e.g. a shorter one); the quantizer must use the same. */
  patchNums?: readonly number[];
  /** Extra onnxruntime session options for every graph. */
  sessionOptions?: SessionOptions;
  /** Remove tensors from the given state dict as they are compiled, so only one copy of the weights is alive (default false). */
  consumeWeights?: boolean;
  /** Load progress. */
  onProgress?: (event: ARLoadProgressEvent) => void;
  /** Name of the weights' origin used in error messages. */
  source?: string;
}

/** Options of {@link HartTransformer.fromPretrained}. */
export interface HartTransformerLoadOptions
  extends Omit<HartTransformerOptions, "consumeWeights" | "source">,
    LoadWeightsOptions {}

/** Whether two scale schedules are equal. */
export function sameSchedule(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** The compiled model: sessions plus the small tables the scale loop feeds them. */
export interface CompiledTransformer {
  patchNums: number[];
  sessions: {
    prologue: Session;
    rope?: Session;
    blocks: Session[];
    head: Session;
    embed: Session;
    cond: Session;
  };
  /** Level embedding per scale `[S, C]`. */
  levels: Float32Array;
  /** `pos_1LC` (gpt2 attention only). */
  posEmbed?: Tensor<"float32">;
  /** Options every session was created with (for graphs compiled later). */
  sessionDefaults: SessionOptions;
  /** Whether the blocks leave `presentK`/`presentV` on the device (see {@link HartTransformerOptions.kvCacheOnDevice}). */
  kvOnDevice: boolean;
  /** The graph form of the graphs around the blocks (float32). */
  form: GraphForm;
  /** The graph form of the blocks (the form's precision is the KV cache's dtype). */
  blockForm: GraphForm;
}

/** Checks the state dict against the config and the quantizer and compiles every graph. */
export async function compileTransformer(
  cfg: HartTransformerConfig,
  stateDict: StateDict,
  quantizer: ScaleQuantizer,
  options: HartTransformerOptions = {},
): Promise<CompiledTransformer> {
  const source = options.source ?? "the transformer state dict";
  const w = new WeightReader(stateDict, source, options.consumeWeights ?? false);
  const C = cfg.embedDim;
  const hd = headDim(cfg);
  const patchNums = [...(options.patchNums ?? cfg.patchNums)];
  if (patchNums.length < 2 || !patchNums.every((p) => Number.isInteger(p) && p > 0)) {
    throw new HartError("argument", `patchNums must list at least 2 positive integers, got [${patchNums}]`);
  }
  if (!sameSchedule(quantizer.patchNums, patchNums)) {
    throw new HartError(
      "argument",
      `the quantizer's schedule [${quantizer.patchNums}] differs from the transformer's [${patchNums}]; load the tokenizer with the same patchNums`,
    );
  }
  const headW = stateDict.get("head.weight");
  if (!headW) throw new HartError("missing-weight", `missing weight "head.weight" in ${source}`);
  const V = headW.shape[0];
  const wordW = stateDict.get("word_embed.weight");
  if (!wordW) throw new HartError("missing-weight", `missing weight "word_embed.weight" in ${source}`);
  const Cvae = wordW.shape[1];
  if (quantizer.vocabSize !== V || quantizer.latentChannels !== Cvae) {
    throw new HartError(
      "shape",
      `the quantizer has V=${quantizer.vocabSize}, Cvae=${quantizer.latentChannels} but ${source} has V=${V} (head.weight), Cvae=${Cvae} (word_embed.weight)`,
    );
  }
  if (quantizer.codebook.shape[0] !== V || quantizer.codebook.shape[1] !== Cvae) {
    throw new HartError("shape", `the quantizer's codebook is [${quantizer.codebook.shape}], expected [${V}, ${Cvae}]`);
  }
  if (cfg.attnType === "gpt2" && !sameSchedule(patchNums, cfg.patchNums)) {
    throw new HartError(
      "unsupported",
      `unsupported: patchNums override with attn_type=gpt2 (its absolute position embeddings follow patch_nums)`,
    );
  }

  const sessionDefaults: SessionOptions = {
    device: options.device,
    intraOpThreads: options.intraOpThreads,
    // Every graph runs at a new shape per scale; per-session arenas would each keep the largest
    // scale's activations (one arena per block), so allocations go straight to the system.
    enableCpuMemArena: false,
    ...options.sessionOptions,
    // Each session has its own intra-op thread pool, and the blocks run one after the other: a pool whose
    // threads spin-wait after its run takes the cores from the next block's pool (measured on 2 cores: a
    // 1-token block 45–53 ms with spinning, 9–10 ms without; large scales unchanged).
    config: { "session.intra_op.allow_spinning": "0", ...options.sessionOptions?.config },
  };
  const form = graphForm({ device: options.device, graphFlavour: options.graphFlavour, attention: options.attention });
  // graphForm refuses float16 where the form cannot run it (and a dtype that is not a precision) with a clear message
  const dtype = options.dtype ?? "float32";
  if (dtype !== "float32" && dtype !== "float16" && dtype !== "int8") {
    throw new HartError("argument", `dtype must be "float32", "float16" or "int8", got ${JSON.stringify(dtype)}`);
  }
  const blockForm = graphForm({
    device: options.device,
    graphFlavour: options.graphFlavour,
    precision: dtype === "int8" ? "float32" : dtype,
    attention: options.attention,
    linear: dtype === "int8" ? "int8" : undefined,
  });
  if (blockForm.precision !== "float32" && cfg.attnType !== "llama") {
    throw new HartError("unsupported", `unsupported: dtype=${options.dtype} with attn_type=${cfg.attnType}`);
  }
  const device = resolveDevice(sessionDefaults.device);
  const kvOnDevice = options.kvCacheOnDevice ?? device === "webgpu";
  if (kvOnDevice && device !== "webgpu") {
    throw new HartError(
      "unsupported",
      `unsupported: kvCacheOnDevice on device "${device}": onnxruntime-node keeps outputs on the device only with "webgpu"`,
    );
  }
  const modulated = blocksAreModulated(cfg);
  const total = cfg.depth + 5 + (cfg.useTimestepEmbed ? 1 : 0);
  let done = 0;
  const compile = async (graph: string, build: () => BuiltModel, extra: SessionOptions = {}) => {
    const session = await createSession(build(), { ...sessionDefaults, ...extra, label: `hart transformer ${graph}` });
    const step = ++done;
    const event: ARLoadProgressEvent = {
      stage: "ar:load",
      step,
      done: step,
      total,
      graph,
      message: `compiled ${graph}`,
    };
    emitProgress(options.onProgress as OnProgress | undefined, event);
    return session;
  };
  const lin = (key: string, out: number, inp: number) => w.take(`${key}.weight`, [out, inp]);
  const vec = (key: string, n: number) => w.take(key, [n]);

  // level embeddings per scale (and gpt2's absolute positions)
  const S = patchNums.length;
  let levels: Float32Array;
  if (cfg.useTimestepEmbed) {
    const session = await compile("level embedding", () =>
      buildLevelGraph(cfg, {
        fc1OI: lin("lvl_embed.mlp.0", C, 256),
        fc1B: vec("lvl_embed.mlp.0.bias", C),
        fc2OI: lin("lvl_embed.mlp.2", C, C),
        fc2B: vec("lvl_embed.mlp.2.bias", C),
      }),
    );
    const steps = tensor(
      "float32",
      [S, 1],
      Float32Array.from({ length: S }, (_, i) => i),
    );
    levels = (await session.run({ level: steps })).lvl.data as Float32Array;
    await session.release();
  } else {
    const table = w.take("lvl_embed.weight", [cfg.patchNums.length, C]);
    if (S > cfg.patchNums.length) {
      throw new HartError(
        "argument",
        `patchNums has ${S} scales but the learned level embedding has ${cfg.patchNums.length}`,
      );
    }
    levels = table.data.slice(0, S * C);
  }
  const L = cfg.contextToken + patchNums.slice(1).reduce((a, p) => a + p * p, 0);
  const posEmbed = cfg.attnType === "gpt2" ? w.take("pos_1LC", [1, L, C]) : undefined;

  const prologueW: PrologueWeights = {
    contextNormW: cfg.useContextNorm ? vec("context_norm.weight", cfg.contextDim) : undefined,
    contextEmbedOI: lin("context_embed", C, cfg.contextDim),
    contextEmbedB: vec("context_embed.bias", C),
    posStart: cfg.attnType === "gpt2" ? w.take("pos_start", [1, cfg.contextToken, C]) : undefined,
    headAdaOI: lin("head_nm.ada_lin.1", 2 * C, C),
    headAdaB: vec("head_nm.ada_lin.1.bias", 2 * C),
  };
  if (!cfg.disableAln) {
    prologueW.blocks = Array.from({ length: cfg.depth }, (_, i) => ({
      adaOI: lin(`blocks.${i}.ada_lin.1`, 6 * C, C),
      adaB: vec(`blocks.${i}.ada_lin.1.bias`, 6 * C),
    }));
  } else if (cfg.sharedAln) {
    prologueW.blocks = Array.from({ length: cfg.depth }, (_, i) => ({
      table: w.take(`blocks.${i}.scale_shift_table`, [6, C]),
    }));
  }
  const prologue = await compile("prologue", () => buildPrologueGraph(cfg, prologueW, form));
  const rope = cfg.attnType === "llama" ? await compile("rope", () => buildRopeGraph(hd)) : undefined;

  const hidden = mlpHidden(cfg);
  const blocks: Session[] = [];
  for (let i = 0; i < cfg.depth; i++) {
    const p = `blocks.${i}`;
    const attn = cfg.attnType === "llama" ? `${p}.attn.qkv_proj` : `${p}.attn.mat_qkv`;
    const kBias = w.maybe(`${p}.attn.zero_k_bias`, [C]);
    const qkvBias = new Float32Array(3 * C);
    qkvBias.set(vec(`${p}.attn.q_bias`, C).data, 0);
    if (kBias) qkvBias.set(kBias.data, C);
    qkvBias.set(vec(`${p}.attn.v_bias`, C).data, 2 * C);
    let ffn: FfnWeights;
    if (cfg.mlpType === "llama") {
      const gate = lin(`${p}.ffn.gate_proj`, hidden, C);
      const up = lin(`${p}.ffn.up_proj`, hidden, C);
      // one [2·hidden, C] product instead of two
      const gateUp = new Float32Array(2 * hidden * C);
      gateUp.set(gate.data, 0);
      gateUp.set(up.data, hidden * C);
      ffn = {
        kind: "llama",
        gateUpOI: tensor("float32", [2 * hidden, C], gateUp),
        downOI: lin(`${p}.ffn.down_proj`, C, hidden),
      };
    } else {
      ffn = {
        kind: "gpt2",
        fc1OI: lin(`${p}.ffn.fc1`, hidden, C),
        fc1B: vec(`${p}.ffn.fc1.bias`, hidden),
        fc2OI: lin(`${p}.ffn.fc2`, C, hidden),
        fc2B: vec(`${p}.ffn.fc2.bias`, C),
      };
    }
    let l2Scale: Tensor<"float32"> | undefined;
    if (cfg.attnL2Norm) {
      const raw = w.take(`${p}.attn.scale_mul_1H11`, [1, cfg.numHeads, 1, 1]).data;
      const cap = Math.fround(Math.log(100));
      l2Scale = tensor(
        "float32",
        [cfg.numHeads, 1],
        Float32Array.from(raw, (s) => Math.exp(Math.min(s, cap))),
      );
    }
    const bw: BlockWeights = {
      qkvOI: lin(attn, 3 * C, C),
      qkvBias: tensor("float32", [3 * C], qkvBias),
      projOI: lin(`${p}.attn.proj`, C, C),
      projB: vec(`${p}.attn.proj.bias`, C),
      normW: cfg.attnType === "llama" ? vec(`${p}.ln_wo_grad.weight`, C) : undefined,
      ffn,
      l2Scale,
    };
    blocks.push(
      await compile(`block ${i}`, () => buildBlockGraph(cfg, i, bw, modulated, blockForm, kvOnDevice), {
        deviceOutputs: kvOnDevice ? ["presentK", "presentV"] : undefined,
      }),
    );
  }
  const head = await compile("head", () =>
    buildHeadGraph(
      cfg,
      {
        normW: cfg.attnType === "llama" ? vec("head_nm.ln_wo_grad.weight", C) : undefined,
        headOI: lin("head", V, C),
        headB: vec("head.bias", V),
      },
      form,
    ),
  );
  const wordOI = lin("word_embed", C, Cvae);
  const wordB = vec("word_embed.bias", C);
  const embed = await compile("embed", () => buildEmbedGraph(cfg, wordOI, wordB));
  const cond = await compile("diffusion condition", () =>
    buildCondGraph(
      cfg,
      {
        wordOI,
        wordB,
        normW: vec("decoder_norm.weight", C),
        normB: cfg.attnType === "gpt2" ? vec("decoder_norm.bias", C) : undefined,
      },
      form,
    ),
  );
  return {
    patchNums,
    sessions: { prologue, rope, blocks, head, embed, cond },
    levels,
    posEmbed,
    sessionDefaults,
    form,
    blockForm,
    kvOnDevice,
  };
}
