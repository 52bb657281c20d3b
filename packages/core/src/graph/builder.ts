import { statSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";
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
  type TensorProto,
  TensorProto_DataLocation,
  TensorProto_DataType,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  type ValueInfoProto,
  ValueInfoProtoSchema,
} from "onnx-buf";
import { HartError } from "../errors";
import { DTYPE_BYTES, type DType, float32ToFloat16Bits, numel, type Tensor, tensor, tensorBytes } from "../tensor";

/** A named value in a graph under construction (an input, initializer or node output). */
export type Value = string;

/** One dimension of a graph input/output: a fixed size or a symbolic name. */
export type Dim = number | string;

/** A float attribute (plain JS numbers that are integers become int attributes). */
export interface FloatAttr {
  /** The attribute's value, stored as an ONNX `FLOAT` attribute even when it is an integer. */
  readonly float: number;
}
/** A list-of-floats attribute. */
export interface FloatsAttr {
  /** The attribute's values, stored as an ONNX `FLOATS` attribute. */
  readonly floats: readonly number[];
}
/**
 * Attribute values: integers, `{float}`/`{floats}` (see {@link f}/{@link fs}), int lists, strings and tensors.
 * A plain number must be an integer: float attributes are always marked, so `epsilon: 1e-6` (an int
 * attribute by mistake) is an error instead of a silently truncated value.
 */
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
 * A tensor stored as raw little-endian bytes in a file, e.g. one entry of a `.safetensors` file
 * (offset = 8 + header length + `data_offsets[0]`). See {@link GraphBuilder.fileWeight}.
 */
export interface FileTensor {
  /** The file (absolute, or relative to the working directory). */
  readonly file: string;
  /** Byte offset of the first element. */
  readonly offset: number;
  /** Element type of the stored values (little-endian). */
  readonly dtype: DType;
  /** Dimensions, outermost first; the bytes are the row-major elements of this shape. */
  readonly shape: readonly number[];
}

/** Name, element type and shape of a graph input or output, as declared in the builder. */
export interface ValueSpec {
  /** The input's or output's name in the graph (the feed / fetch key). */
  readonly name: string;
  /** Declared element type. */
  readonly dtype: DType;
  /** Declared dimensions (numbers are fixed, strings symbolic); `undefined` when no shape was declared. */
  readonly shape?: readonly Dim[];
}

/**
 * A built model: the serialized ModelProto plus the weight bytes it refers to
 * as in-memory external data. The weights are views of the caller's tensors
 * (never copied here), so graphs of any total size can be built (no 2 GB
 * protobuf limit): onnxruntime reads them through `sessionOptions.externalData`
 * — and copies them into each session (see `SessionOptions` for the measured
 * costs, and {@link GraphBuilder.fileWeight} for weights that are not copied).
 */
export interface BuiltModel {
  /** The graph's name (used in error messages). */
  readonly name: string;
  /** Serialized `ModelProto` (small: large initializers live in {@link externalData}). */
  readonly bytes: Uint8Array;
  /**
   * In-memory external data "files" the model refers to, one per initializer of at least
   * `externalThreshold` bytes; each `data` is a view of the weight tensor's own buffer.
   */
  readonly externalData: readonly {
    /** File name the initializer's `location` entry refers to (`<initializer name>.bin`). */
    path: string;
    /** The initializer's raw little-endian bytes. */
    data: Uint8Array;
  }[];
  /**
   * The folder that file-backed weights ({@link GraphBuilder.fileWeight}) are relative to; `createSession`
   * passes it to onnxruntime (`session.model_external_initializers_file_folder_path`). Absent when the
   * graph has no file-backed weights.
   */
  readonly externalFolder?: string;
  /** Graph input names, in order. */
  readonly inputNames: readonly string[];
  /** Graph output names, in order. */
  readonly outputNames: readonly string[];
  /** Graph inputs with their declared dtype and shape (used to check feeds before running). */
  readonly inputs: readonly ValueSpec[];
  /** Graph outputs with their declared dtype and shape. */
  readonly outputs: readonly ValueSpec[];
}

/** Options of {@link GraphBuilder}. */
export interface GraphBuilderOptions {
  /** ai.onnx opset (default 21). */
  opset?: number;
  /** Initializers at least this large (bytes) are passed as in-memory external data instead of inline (default 1 KiB). */
  externalThreshold?: number;
}

/** Options of {@link GraphBuilder.op} / {@link GraphBuilder.opMulti}. */
export interface OpOptions {
  /** Operator domain, e.g. `"com.microsoft"` for contrib ops (default: the ONNX domain). */
  domain?: string;
  /**
   * How many outputs the node has (fresh names), or their names (default 1): in a list, `""` omits an optional
   * output and `undefined` gets a fresh name.
   */
  outputs?: number | readonly (string | undefined)[];
  /** Node name (default: a fresh `n_<OpType>_<k>`). */
  name?: string;
}

/**
 * Builds an ONNX model from TypeScript. Every op goes through {@link op};
 * weights become initializers via {@link weight} (deduplicated per tensor
 * object, so a weight used twice is stored once).
 *
 * Mistakes are caught while building, with a {@link HartError} (code `"graph"`)
 * naming the graph: a value name used twice, an op input that was never
 * defined, an int attribute that is not an integer, a graph without outputs.
 *
 * @example
 * ```ts
 * const g = new GraphBuilder("proj");
 * const x = g.input("x", "float32", ["N", 64]);
 * const y = g.op("MatMul", [x, g.weight(w)]);
 * g.output(y, "y");
 * const session = await createSession(g.build());
 * ```
 */
export class GraphBuilder {
  /** The graph's name; every error message of this builder and of its sessions names it. */
  readonly name: string;
  private readonly opset: number;
  private readonly externalThreshold: number;
  private readonly nodes: NodeProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly inputSpecs: ValueSpec[] = [];
  private readonly outputSpecs: ValueSpec[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly external: { path: string; data: Uint8Array }[] = [];
  private readonly weightNames = new Map<Tensor, string>();
  private readonly fileWeightNames = new Map<string, string>();
  private externalFolder: string | undefined;
  private readonly usedNames = new Set<string>();
  /** Values that exist so far (inputs, initializers, node outputs): op inputs must be among them. */
  private readonly defined = new Set<string>();
  private counter = 0;

  constructor(name = "graph", options: GraphBuilderOptions = {}) {
    this.name = name;
    this.opset = options.opset ?? 21;
    this.externalThreshold = options.externalThreshold ?? 1024;
  }

  /** A fresh unique value name with the given prefix (reserved, so it is never handed out twice). */
  fresh(prefix = "v"): Value {
    let name: string;
    do name = `${prefix}_${this.counter++}`;
    while (this.usedNames.has(name));
    this.usedNames.add(name);
    return name;
  }

  private fail(message: string): never {
    throw new HartError("graph", `graph "${this.name}": ${message}`);
  }

  private claim(name: string, what: string): Value {
    if (typeof name !== "string" || name === "")
      this.fail(`${what} needs a non-empty name, got ${JSON.stringify(name)}`);
    if (this.usedNames.has(name)) this.fail(`${what} "${name}": the name is already used in this graph`);
    this.usedNames.add(name);
    return name;
  }

  /** Declares a graph input. */
  input(name: string, dtype: DType, shape: readonly Dim[]): Value {
    this.claim(name, "input");
    this.inputs.push(valueInfo(name, dtype, shape));
    this.inputSpecs.push({ name, dtype, shape: [...shape] });
    this.defined.add(name);
    return name;
  }

  /**
   * Declares `value` a graph output named `name` (an Identity is inserted when the names differ).
   * `dtype` is the output's element type (default float32; ONNX checks it when the session is created).
   */
  output(value: Value, name: string = value, dtype: DType = "float32", shape?: readonly Dim[]): Value {
    if (!this.defined.has(value)) this.fail(`output "${name}": value "${value}" is not defined in this graph`);
    if (this.outputSpecs.some((o) => o.name === name)) this.fail(`output "${name}" is declared twice`);
    if (name !== value) this.op("Identity", [value], {}, { outputs: [name] });
    this.outputs.push(valueInfo(name, dtype, shape));
    this.outputSpecs.push({ name, dtype, shape: shape ? [...shape] : undefined });
    return name;
  }

  /**
   * Adds a weight tensor as an initializer (once per tensor object: a second call with the same
   * object returns the first value, whatever `name` says) and returns its value. Tensors of at
   * least `externalThreshold` bytes are not copied here: the model refers to them as in-memory
   * external data, a view of `t.data` (do not modify it until the sessions are created; onnxruntime
   * then holds its own copy per session — see `SessionOptions`).
   */
  weight(t: Tensor, name?: string): Value {
    const known = this.weightNames.get(t);
    if (known) return known;
    const valueName = name !== undefined ? this.claim(name, "weight") : this.fresh("w");
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
    this.defined.add(valueName);
    return valueName;
  }

  /**
   * Adds a weight that onnxruntime reads straight from a file (memory-mapped), e.g. a tensor inside a
   * `.safetensors` checkpoint whose layout the graph can use as is. No JS copy is needed at all, and
   * with `disablePrepacking` the session holds no private copy either: every session (and process)
   * shares the file's page cache. All file weights of one graph must live in one folder (or its
   * subfolders). Deduplicated per (file, offset, dtype, shape).
   */
  fileWeight(ref: FileTensor, name?: string): Value {
    const file = resolve(ref.file);
    const what = `fileWeight(${ref.file} @ ${ref.offset})`;
    if (!(ref.dtype in DTYPE_BYTES)) this.fail(`${what}: unknown dtype ${ref.dtype}`);
    if (!ref.shape.every((d) => Number.isInteger(d) && d >= 0)) this.fail(`${what}: bad shape [${ref.shape}]`);
    if (!Number.isSafeInteger(ref.offset) || ref.offset < 0)
      this.fail(`${what}: offset must be a non-negative integer`);
    const length = numel(ref.shape) * DTYPE_BYTES[ref.dtype];
    const key = `${file}\0${ref.offset}\0${ref.dtype}\0${ref.shape.join(",")}`;
    const known = this.fileWeightNames.get(key);
    if (known) return known;
    let size: number;
    try {
      size = statSync(file).size;
    } catch (err) {
      return this.fail(`${what}: cannot read the file (${(err as Error).message})`);
    }
    if (ref.offset + length > size) {
      this.fail(
        `${what}: ${ref.dtype} [${ref.shape}] needs bytes ${ref.offset}..${ref.offset + length}, the file has ${size}`,
      );
    }
    this.externalFolder ??= dirname(file);
    const location = relative(this.externalFolder, file);
    if (location.startsWith("..") || isAbsolute(location)) {
      this.fail(`${what}: file-backed weights of one graph must live in one folder (${this.externalFolder}${sep})`);
    }
    const valueName = name !== undefined ? this.claim(name, "weight") : this.fresh("fw");
    this.initializers.push(
      create(TensorProtoSchema, {
        name: valueName,
        dataType: ONNX_DTYPE[ref.dtype],
        dims: ref.shape.map((d) => BigInt(d)),
        dataLocation: TensorProto_DataLocation.EXTERNAL,
        externalData: [
          create(StringStringEntryProtoSchema, { key: "location", value: location.split(sep).join("/") }),
          create(StringStringEntryProtoSchema, { key: "offset", value: String(ref.offset) }),
          create(StringStringEntryProtoSchema, { key: "length", value: String(length) }),
        ],
      }),
    );
    this.fileWeightNames.set(key, valueName);
    this.defined.add(valueName);
    return valueName;
  }

  /** A constant tensor (stored like a weight). */
  constant(t: Tensor, name?: string): Value {
    return this.weight(t, name);
  }

  /** A scalar constant (shape `[]`) of the given dtype (default float32). */
  scalar(x: number, dtype: "float32" | "float16" | "int64" = "float32"): Value {
    if (dtype === "int64") {
      if (!Number.isSafeInteger(x)) this.fail(`scalar(${x}, "int64"): expected a safe integer`);
      return this.weight(tensor("int64", [], BigInt64Array.of(BigInt(x))));
    }
    if (dtype === "float16") return this.weight(tensor("float16", [], Uint16Array.of(float32ToFloat16Bits(x))));
    return this.weight(tensor("float32", [], Float32Array.of(x)));
  }

  /** A 1-D int64 constant (shapes, axes, slice bounds). */
  ints(values: readonly number[]): Value {
    const bad = values.find((v) => !Number.isSafeInteger(v));
    if (bad !== undefined) this.fail(`ints([${values}]): ${bad} is not an integer`);
    return this.weight(
      tensor(
        "int64",
        [values.length],
        BigInt64Array.from(values, (v) => BigInt(v)),
      ),
    );
  }

  /**
   * Appends a node and returns its first output. Empty strings in `inputs`
   * mark omitted optional inputs; every other input must already be defined
   * (graphs are built in topological order).
   */
  op(
    opType: string,
    inputs: readonly Value[],
    attrs: Record<string, AttrValue | undefined> = {},
    options: OpOptions = {},
  ): Value {
    return this.opMulti(opType, inputs, attrs, options)[0];
  }

  /** Like {@link op} but returns every output (`options.outputs` sets how many or their names). */
  opMulti(
    opType: string,
    inputs: readonly Value[],
    attrs: Record<string, AttrValue | undefined> = {},
    options: OpOptions = {},
  ): Value[] {
    const where = `${options.domain ? `${options.domain}.` : ""}${opType}`;
    for (const [i, v] of inputs.entries()) {
      if (v !== "" && !this.defined.has(v)) this.fail(`${where} input ${i} "${v}" is not defined (yet) in this graph`);
    }
    const attribute = Object.entries(attrs)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => this.attr(where, k, v as AttrValue));
    // An empty name omits that optional output (ONNX convention), e.g. the statistics of a norm.
    const outs =
      typeof options.outputs === "object"
        ? options.outputs.map((o) =>
            o === undefined ? this.fresh(opType.toLowerCase()) : o === "" ? "" : this.claim(o, `${where} output`),
          )
        : Array.from({ length: options.outputs ?? 1 }, () => this.fresh(opType.toLowerCase()));
    for (const o of outs) if (o !== "") this.defined.add(o);
    this.nodes.push(
      create(NodeProtoSchema, {
        opType,
        domain: options.domain ?? "",
        input: [...inputs],
        output: outs,
        name: options.name !== undefined ? this.claim(options.name, "node") : this.fresh(`n_${opType}`),
        attribute,
      }),
    );
    return outs;
  }

  private attr(where: string, name: string, v: AttrValue): AttributeProto {
    const A = AttributeProto_AttributeType;
    const bad = (expected: string): never => this.fail(`${where} attribute ${name}=${JSON.stringify(v)}: ${expected}`);
    if (typeof v === "number") {
      if (!Number.isSafeInteger(v)) bad("an int attribute must be an integer (wrap float attributes with f())");
      return create(AttributeProtoSchema, { name, type: A.INT, i: BigInt(v) });
    }
    if (typeof v === "string") {
      return create(AttributeProtoSchema, { name, type: A.STRING, s: new TextEncoder().encode(v) });
    }
    if (Array.isArray(v)) {
      if (!v.every((x) => Number.isSafeInteger(x))) bad("an ints attribute must hold integers (use fs() for floats)");
      return create(AttributeProtoSchema, { name, type: A.INTS, ints: (v as number[]).map((x) => BigInt(x)) });
    }
    if (typeof v !== "object" || v === null) return bad("expected an integer, int list, string, f(), fs() or tensor");
    if ("float" in v) {
      if (typeof v.float !== "number") bad("f() needs a number");
      return create(AttributeProtoSchema, { name, type: A.FLOAT, f: v.float });
    }
    if ("floats" in v) return create(AttributeProtoSchema, { name, type: A.FLOATS, floats: [...v.floats] });
    const t = v as Tensor;
    if (!("dtype" in t) || !(t.dtype in ONNX_DTYPE)) bad("expected an integer, int list, string, f(), fs() or tensor");
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

  /**
   * Serializes the model. The builder may keep growing afterwards (each build is a snapshot).
   *
   * onnxruntime cannot combine in-memory external data with external files in one model, so in a
   * graph that has {@link fileWeight}s the (JS) {@link weight}s are stored inline in the model
   * bytes instead — a copy; keep them small there (norms, biases) or make them file weights too.
   */
  build(): BuiltModel {
    if (this.outputs.length === 0) this.fail("no outputs declared");
    const inline = this.externalFolder !== undefined && this.external.length > 0;
    let initializers = this.initializers;
    if (inline) {
      const bytesOf = new Map(this.external.map((e) => [e.path, e.data]));
      initializers = this.initializers.map((t) => {
        const location = t.externalData.find((e) => e.key === "location")?.value;
        const data = location === undefined ? undefined : bytesOf.get(location);
        if (!data) return t;
        const { name, dataType, dims } = t;
        return create(TensorProtoSchema, { name, dataType, dims, rawData: data.slice() });
      });
    }
    const graph = create(GraphProtoSchema, {
      name: this.name,
      node: [...this.nodes],
      input: [...this.inputs],
      output: [...this.outputs],
      initializer: [...initializers],
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
      name: this.name,
      bytes: toBinary(ModelProtoSchema, model),
      externalData: inline ? [] : [...this.external],
      externalFolder: this.externalFolder,
      inputNames: this.inputSpecs.map((i) => i.name),
      outputNames: this.outputSpecs.map((o) => o.name),
      inputs: [...this.inputSpecs],
      outputs: [...this.outputSpecs],
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
