/**
 * Running fused graphs without a GPU: the fused operators that exist only in onnxruntime's CUDA provider are
 * rewritten into standard ops that compute their documented function, so a whole fused graph (layouts, attributes,
 * the wiring around the op) can be checked on CPU against the plain graph.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { BuiltModel } from "@hart/core";
import { HartError } from "@hart/core";
import {
  type AttributeProto,
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  ModelProtoSchema,
  type NodeProto,
  NodeProtoSchema,
  type TensorProto,
  TensorProto_DataType,
  TensorProtoSchema,
} from "onnx-buf";

/** The `com.microsoft` operators hart's fused graphs use that have no CPU kernel. */
export const CUDA_ONLY_OPS: readonly string[] = ["GroupNorm"];

function attribute(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

/** Emits the replacement nodes and constants of one graph. */
class Rewriter {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private counter = 0;

  constructor(private readonly taken: Set<string>) {}

  private name(hint: string): string {
    let n: string;
    do n = `emulated_${hint}_${this.counter++}`;
    while (this.taken.has(n));
    this.taken.add(n);
    return n;
  }

  op(opType: string, inputs: string[], attrs: AttributeProto[] = [], output?: string): string {
    const out = output ?? this.name(opType.toLowerCase());
    this.nodes.push(
      create(NodeProtoSchema, {
        opType,
        domain: "",
        input: inputs,
        output: [out],
        name: this.name(`n_${opType}`),
        attribute: attrs,
      }),
    );
    return out;
  }

  int64s(values: number[]): string {
    return this.vector("ints", TensorProto_DataType.INT64, new BigInt64Array(values.map((v) => BigInt(v))));
  }

  floats(values: number[]): string {
    return this.vector("floats", TensorProto_DataType.FLOAT, Float32Array.from(values));
  }

  /** A 1-D initializer holding `values`. */
  private vector(
    hint: string,
    dataType: TensorProto_DataType,
    values: BigInt64Array<ArrayBuffer> | Float32Array<ArrayBuffer>,
  ): string {
    const name = this.name(hint);
    const rawData = new Uint8Array(values.buffer);
    this.initializers.push(create(TensorProtoSchema, { name, dataType, dims: [BigInt(values.length)], rawData }));
    return name;
  }
}

const ints = (name: string, values: number[]) =>
  create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: values.map((v) => BigInt(v)) });
const float = (name: string, value: number) =>
  create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f: value });

/**
 * `com.microsoft` `GroupNorm` as standard ops: per group `(x − mean) / sqrt(var + epsilon)` (biased variance),
 * `· gamma + beta` per channel, SiLU when `activation = 1`; NHWC in and out when `channels_last` (the default).
 */
function emulateGroupNorm(node: NodeProto, r: Rewriter): void {
  const [x, gamma, beta] = node.input;
  const groups = Number(attribute(node, "groups")?.i ?? Number.NaN);
  const eps = attribute(node, "epsilon")?.f ?? 1e-5;
  const silu = Number(attribute(node, "activation")?.i ?? 0) === 1;
  const channelsLast = Number(attribute(node, "channels_last")?.i ?? 1) === 1;
  if (!Number.isInteger(groups) || groups < 1) {
    throw new HartError("graph", `GroupNorm node "${node.name}" has no valid "groups" attribute`);
  }
  const nchw = channelsLast ? r.op("Transpose", [x], [ints("perm", [0, 3, 1, 2])]) : x;
  const grouped = r.op("Reshape", [nchw, r.int64s([0, groups, -1])]);
  const like = (v: string) => r.op("CastLike", [v, x]);
  const ones = like(r.floats(new Array(groups).fill(1)));
  const zeros = like(r.floats(new Array(groups).fill(0)));
  const normed = r.op("InstanceNormalization", [grouped, ones, zeros], [float("epsilon", eps)]);
  const perChannel = r.int64s([-1, 1, 1]);
  const scaled = r.op("Mul", [
    r.op("Reshape", [normed, r.op("Shape", [nchw])]),
    like(r.op("Reshape", [gamma, perChannel])),
  ]);
  let y = r.op("Add", [scaled, like(r.op("Reshape", [beta, perChannel]))]);
  if (silu) y = r.op("Mul", [y, r.op("Sigmoid", [y])]);
  if (channelsLast) r.op("Transpose", [y], [ints("perm", [0, 2, 3, 1])], node.output[0]);
  else r.op("Identity", [y], [], node.output[0]);
}

/**
 * Rewrites a built graph so it runs on onnxruntime's CPU provider: every CUDA-only fused operator
 * ({@link CUDA_ONLY_OPS}) becomes standard ops computing its documented function (the rest, including the CPU-capable
 * fused ops, is kept). For checking fused graphs without a GPU — it is a reference, not a fast path. Weights stay
 * shared with `model` (same external data).
 */
export function emulateCudaOnlyOps(model: BuiltModel): BuiltModel {
  const proto = fromBinary(ModelProtoSchema, model.bytes);
  const graph = proto.graph;
  if (!graph) throw new HartError("graph", `graph "${model.name}": the model has no graph`);
  const taken = new Set<string>([
    ...graph.node.flatMap((n) => [...n.input, ...n.output, n.name]),
    ...graph.initializer.map((t) => t.name),
    ...graph.input.map((v) => v.name),
  ]);
  const r = new Rewriter(taken);
  const nodes: NodeProto[] = [];
  for (const node of graph.node) {
    if (node.domain === "com.microsoft" && node.opType === "GroupNorm") {
      r.nodes.length = 0;
      emulateGroupNorm(node, r);
      nodes.push(...r.nodes);
    } else {
      nodes.push(node);
    }
  }
  graph.node = nodes;
  graph.initializer.push(...r.initializers);
  return { ...model, bytes: toBinary(ModelProtoSchema, proto) };
}
