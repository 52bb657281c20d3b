import { create, toBinary } from "@bufbuild/protobuf";
import {
  type AttributeProto,
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  type NodeProto,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType,
  type TensorProto,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  type ValueInfoProto,
  ValueInfoProtoSchema,
} from "onnx-buf";
import { HartError } from "../errors";
import { type DType, type Tensor, tensor, tensorBytes } from "../tensor";

/** A named value in a graph under construction (an input, initializer or node output). */
export type Value = string;

/** One dimension of a graph input/output: a fixed size or a symbolic name. */
export type Dim = number | string;

/** A float attribute (plain JS numbers that are integers become int attributes). */
export interface FloatAttr {
  readonly float: number;
}
/** A list-of-floats attribute. */
export interface FloatsAttr {
  readonly floats: readonly number[];
}
/** Attribute values: integers, `{float}`/`{floats}`, int lists, strings and tensors. */
export type AttrValue = number | readonly number[] | string | FloatAttr | FloatsAttr | Tensor;

/** Marks a number as a float attribute, e.g. `{ epsilon: f(1e-6) }`. */
export const f = (x: number): FloatAttr => ({ float: x });
/** Marks a list as a floats attribute. */
export const fs = (xs: readonly number[]): FloatsAttr => ({ floats: xs });

/** ONNX element type of each hart dtype. */
export const ONNX_DTYPE: Readonly<Record<DType, TensorProto_DataType>> = {
  float32: TensorProto_DataType.FLOAT,
  float64: TensorProto_DataType.DOUBLE,
  float16: TensorProto_DataType.FLOAT16,
  bfloat16: TensorProto_DataType.BFLOAT16,
  int64: TensorProto_DataType.INT64,
  int32: TensorProto_DataType.INT32,
  int8: TensorProto_DataType.INT8,
  uint8: TensorProto_DataType.UINT8,
  bool: TensorProto_DataType.BOOL,
};

/**
 * A built model: the serialized ModelProto plus the weight bytes it refers to
 * as in-memory external data. The weights are views of the caller's tensors
 * (never copied here), so graphs of any total size can be built: onnxruntime
 * reads them through `sessionOptions.externalData`.
 */
export interface BuiltModel {
  /** Serialized `ModelProto`. */
  readonly bytes: Uint8Array;
  /** In-memory external data files the model refers to, one per large initializer. */
  readonly externalData: readonly { path: string; data: Uint8Array }[];
  /** Graph input names, in order. */
  readonly inputNames: readonly string[];
  /** Graph output names, in order. */
  readonly outputNames: readonly string[];
}

/** Options of {@link GraphBuilder}. */
export interface GraphBuilderOptions {
  /** ai.onnx opset (default 21). */
  opset?: number;
  /** Initializers at least this large (bytes) are passed as in-memory external data instead of inline (default 1 KiB). */
  externalThreshold?: number;
}

/**
 * Builds an ONNX model from TypeScript. Every op goes through {@link op};
 * weights become initializers via {@link weight} (deduplicated per tensor
 * object, so a weight used twice is stored once).
 *
 * @example
 * ```ts
 * const g = new GraphBuilder("rms");
 * const x = g.input("x", "float32", ["N", 64]);
 * const y = g.op("MatMul", [x, g.weight(w)]);
 * g.output(y, "y");
 * const session = await createSession(g.build());
 * ```
 */
export class GraphBuilder {
  readonly name: string;
  private readonly opset: number;
  private readonly externalThreshold: number;
  private readonly nodes: NodeProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly external: { path: string; data: Uint8Array }[] = [];
  private readonly weightNames = new Map<Tensor, string>();
  private readonly usedNames = new Set<string>();
  private counter = 0;

  constructor(name = "graph", options: GraphBuilderOptions = {}) {
    this.name = name;
    this.opset = options.opset ?? 21;
    this.externalThreshold = options.externalThreshold ?? 1024;
  }

  /** A fresh unique value name with the given prefix. */
  fresh(prefix = "v"): Value {
    let name: string;
    do name = `${prefix}_${this.counter++}`;
    while (this.usedNames.has(name));
    this.usedNames.add(name);
    return name;
  }

  private claim(name: string): Value {
    if (this.usedNames.has(name)) throw new HartError("graph", `graph ${this.name}: value name "${name}" is used twice`);
    this.usedNames.add(name);
    return name;
  }

  /** Declares a graph input. */
  input(name: string, dtype: DType, shape: readonly Dim[]): Value {
    this.inputs.push(valueInfo(this.claim(name), dtype, shape));
    return name;
  }

  /** Declares `value` a graph output named `name` (an Identity is inserted when the names differ). */
  output(value: Value, name: string = value, dtype: DType = "float32", shape?: readonly Dim[]): Value {
    if (name !== value) this.op("Identity", [value], {}, { outputs: [name] });
    this.outputs.push(valueInfo(name, dtype, shape));
    return name;
  }

  /** Adds a weight tensor as an initializer (once per tensor object) and returns its value. */
  weight(t: Tensor, name?: string): Value {
    const known = this.weightNames.get(t);
    if (known) return known;
    const valueName = name ? this.claim(name) : this.fresh("w");
    const bytes = tensorBytes(t);
    const proto = create(TensorProtoSchema, {
      name: valueName,
      dataType: ONNX_DTYPE[t.dtype],
      dims: t.shape.map((d) => BigInt(d)),
    });
    if (bytes.byteLength >= this.externalThreshold) {
      const path = `${valueName}.bin`;
      this.external.push({ path, data: bytes });
      proto.dataLocation = TensorProto_DataLocation.EXTERNAL;
      proto.externalData = [
        create(StringStringEntryProtoSchema, { key: "location", value: path }),
        create(StringStringEntryProtoSchema, { key: "offset", value: "0" }),
        create(StringStringEntryProtoSchema, { key: "length", value: String(bytes.byteLength) }),
      ];
    } else {
      proto.rawData = bytes.slice();
    }
    this.initializers.push(proto);
    this.weightNames.set(t, valueName);
    return valueName;
  }

  /** A constant tensor (stored like a weight). */
  constant(t: Tensor, name?: string): Value {
    return this.weight(t, name);
  }

  /** A float32 scalar constant. */
  scalar(x: number, dtype: "float32" | "float16" | "int64" = "float32"): Value {
    if (dtype === "int64") return this.weight(tensor("int64", [], BigInt64Array.of(BigInt(x))));
    if (dtype === "float16") throw new HartError("graph", "scalar: build float16 scalars with a Cast");
    return this.weight(tensor("float32", [], Float32Array.of(x)));
  }

  /** A 1-D int64 constant (shapes, axes, slice bounds). */
  ints(values: readonly number[]): Value {
    return this.weight(tensor("int64", [values.length], BigInt64Array.from(values, (v) => BigInt(v))));
  }

  /**
   * Appends a node and returns its first output. Empty strings in `inputs`
   * mark omitted optional inputs.
   */
  op(
    opType: string,
    inputs: readonly Value[],
    attrs: Record<string, AttrValue | undefined> = {},
    options: { domain?: string; outputs?: number | readonly string[]; name?: string } = {},
  ): Value {
    return this.opMulti(opType, inputs, attrs, options)[0];
  }

  /** Like {@link op} but returns every output (`options.outputs` sets how many or their names). */
  opMulti(
    opType: string,
    inputs: readonly Value[],
    attrs: Record<string, AttrValue | undefined> = {},
    options: { domain?: string; outputs?: number | readonly string[]; name?: string } = {},
  ): Value[] {
    const outs =
      typeof options.outputs === "object"
        ? options.outputs.map((o) => this.claim(o))
        : Array.from({ length: options.outputs ?? 1 }, () => this.fresh(opType.toLowerCase()));
    const attribute = Object.entries(attrs)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => makeAttr(k, v as AttrValue));
    this.nodes.push(
      create(NodeProtoSchema, {
        opType,
        domain: options.domain ?? "",
        input: [...inputs],
        output: outs,
        name: options.name ?? this.fresh(`n_${opType}`),
        attribute,
      }),
    );
    return outs;
  }

  /** Serializes the model. */
  build(): BuiltModel {
    if (this.outputs.length === 0) throw new HartError("graph", `graph ${this.name}: no outputs declared`);
    const graph = create(GraphProtoSchema, {
      name: this.name,
      node: this.nodes,
      input: this.inputs,
      output: this.outputs,
      initializer: this.initializers,
    });
    const model = create(ModelProtoSchema, {
      irVersion: 10n,
      producerName: "hart",
      opsetImport: [
        create(OperatorSetIdProtoSchema, { domain: "", version: BigInt(this.opset) }),
        create(OperatorSetIdProtoSchema, { domain: "com.microsoft", version: 1n }),
      ],
      graph,
    });
    return {
      bytes: toBinary(ModelProtoSchema, model),
      externalData: [...this.external],
      inputNames: this.inputs.map((i) => i.name),
      outputNames: this.outputs.map((o) => o.name),
    };
  }
}

function valueInfo(name: string, dtype: DType, shape?: readonly Dim[]): ValueInfoProto {
  const tensorType = create(TypeProto_TensorSchema, { elemType: ONNX_DTYPE[dtype] });
  if (shape) {
    tensorType.shape = create(TensorShapeProtoSchema, {
      dim: shape.map((d) =>
        create(TensorShapeProto_DimensionSchema, {
          value: typeof d === "number" ? { case: "dimValue", value: BigInt(d) } : { case: "dimParam", value: d },
        }),
      ),
    });
  }
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, { value: { case: "tensorType", value: tensorType } }),
  });
}

function makeAttr(name: string, v: AttrValue): AttributeProto {
  const A = AttributeProto_AttributeType;
  if (typeof v === "number") {
    if (!Number.isInteger(v)) throw new HartError("graph", `attribute ${name}=${v}: wrap float attributes with f()`);
    return create(AttributeProtoSchema, { name, type: A.INT, i: BigInt(v) });
  }
  if (typeof v === "string") {
    return create(AttributeProtoSchema, { name, type: A.STRING, s: new TextEncoder().encode(v) });
  }
  if (Array.isArray(v)) {
    return create(AttributeProtoSchema, { name, type: A.INTS, ints: (v as number[]).map((x) => BigInt(x)) });
  }
  if ("float" in v) return create(AttributeProtoSchema, { name, type: A.FLOAT, f: v.float });
  if ("floats" in v) return create(AttributeProtoSchema, { name, type: A.FLOATS, floats: [...v.floats] });
  const t = v as Tensor;
  return create(AttributeProtoSchema, {
    name,
    type: A.TENSOR,
    t: create(TensorProtoSchema, {
      dataType: ONNX_DTYPE[t.dtype],
      dims: t.shape.map((d) => BigInt(d)),
      rawData: tensorBytes(t).slice(),
    }),
  });
}
