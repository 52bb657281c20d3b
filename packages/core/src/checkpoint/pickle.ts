import { HartError } from "../errors";

/**
 * A Python callable the unpickler may call (REDUCE / NEWOBJ). Only the ones a
 * caller hands out through `findGlobal` exist, so a pickle can never reach
 * arbitrary code: it can only build plain data and call these functions.
 */
export class PickleCallable {
  constructor(
    readonly qualifiedName: string,
    readonly call: (args: unknown[]) => unknown,
  ) {}
}

/** A Python tuple (kept apart from lists so callers can tell them apart). */
export type PickleTuple = readonly unknown[] & { readonly __tuple?: true };

/** What the unpickler needs from its caller. */
export interface UnpickleOptions {
  /** Names the pickle in error messages (e.g. `model.bin:archive/data.pkl`). */
  source: string;
  /** Resolves `module.name`; must throw for anything not explicitly allowed. */
  findGlobal: (module: string, name: string) => unknown;
  /** Resolves a persistent id (BINPERSID); must throw if unsupported. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Handles BUILD (`obj.__setstate__(state)`); the default accepts plain dicts and ignores their state. */
  build?: (obj: unknown, state: unknown) => unknown;
}

/**
 * A small, safe pickle interpreter (protocols 0–5, the opcodes PyTorch and
 * plain-data pickles use). Unlike Python's `pickle.load` it never imports a
 * module or calls anything except the {@link PickleCallable}s `findGlobal`
 * returns. Dicts become `Map`s, lists and tuples arrays, ints `number` (or
 * `bigint` beyond 2^53), bytes `Uint8Array`.
 */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): unknown {
  const { source } = options;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (msg: string, at: number): never => {
    throw new HartError("checkpoint", `${source}: ${msg} (pickle byte ${at})`);
  };
  let p = 0;
  const need = (n: number, at: number) => {
    if (p + n > bytes.length) fail("pickle is truncated", at);
  };
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const latin1 = new TextDecoder("latin1");
  const utf8 = new TextDecoder("utf-8", { fatal: true });

  const pop = (at: number): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) fail("stack underflow", at);
    return stack.pop();
  };
  const top = (at: number): unknown => {
    if (stack.length === 0) fail("stack underflow", at);
    return stack[stack.length - 1];
  };
  const popMark = (at: number): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail("MARK missing", at);
    return stack.splice(m as number);
  };
  const readLine = (at: number): string => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) fail("pickle is truncated", at);
    const s = latin1.decode(bytes.subarray(p, end));
    p = end + 1;
    return s;
  };
  const readBytes = (n: number, at: number): Uint8Array => {
    need(n, at);
    const b = bytes.subarray(p, p + n);
    p += n;
    return b;
  };
  const readUint = (n: 1 | 2 | 4, at: number): number => {
    need(n, at);
    const v = n === 1 ? bytes[p] : n === 2 ? dv.getUint16(p, true) : dv.getUint32(p, true);
    p += n;
    return v;
  };
  const readU64 = (at: number): number => {
    need(8, at);
    const v = dv.getBigUint64(p, true);
    p += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail("length too large", at);
    return Number(v);
  };
  const decodeLong = (b: Uint8Array): number | bigint => {
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b.length && b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const asTuple = (items: unknown[]): PickleTuple => Object.freeze(items) as PickleTuple;
  const setItems = (dict: unknown, items: unknown[], at: number) => {
    if (!(dict instanceof Map)) fail("SETITEM(S) on something that is not a dict", at);
    if (items.length % 2) fail("odd number of items for SETITEMS", at);
    for (let i = 0; i < items.length; i += 2) (dict as Map<unknown, unknown>).set(items[i], items[i + 1]);
  };
  const appendItems = (list: unknown, items: unknown[], at: number) => {
    if (!Array.isArray(list) || Object.isFrozen(list)) fail("APPEND(S) on something that is not a list", at);
    for (const item of items) (list as unknown[]).push(item);
  };
  const callIt = (fn: unknown, args: unknown, at: number): unknown => {
    if (!(fn instanceof PickleCallable)) fail(`refusing to call a non-callable value (${describe(fn)})`, at);
    if (!Array.isArray(args)) fail("call arguments are not a tuple", at);
    return (fn as PickleCallable).call(args as unknown[]);
  };
  const build =
    options.build ??
    ((obj: unknown, state: unknown) => {
      if (obj instanceof Map && (state instanceof Map || state === null)) return obj;
      throw new HartError("checkpoint", `${source}: BUILD (__setstate__) is not supported on ${describe(obj)}`);
    });

  while (true) {
    const at = p;
    if (p >= bytes.length) fail("pickle is truncated (no STOP)", at);
    const op = bytes[p++];
    switch (op) {
      case 0x80: // PROTO
        need(1, at);
        if (bytes[p] > 5) fail(`unsupported pickle protocol ${bytes[p]}`, at);
        p += 1;
        break;
      case 0x95: // FRAME: framing is only a read-ahead hint
        readU64(at);
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || marks.length) fail("malformed pickle (stack not empty at STOP)", at);
        return stack[0];
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (marks.length && marks[marks.length - 1] === stack.length) marks.pop();
        else pop(at);
        break;
      case 0x31: // POP_MARK
        popMark(at);
        break;
      case 0x32: // DUP
        stack.push(top(at));
        break;
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = readLine(at);
        const name = readLine(at);
        stack.push(options.findGlobal(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop(at);
        const module = pop(at);
        if (typeof module !== "string" || typeof name !== "string") fail("STACK_GLOBAL needs two strings", at);
        stack.push(options.findGlobal(module as string, name as string));
        break;
      }
      case 0x8c: // SHORT_BINUNICODE
      case 0x58: // BINUNICODE
      case 0x8d: {
        // BINUNICODE8
        const n = op === 0x8c ? readUint(1, at) : op === 0x58 ? readUint(4, at) : readU64(at);
        try {
          stack.push(utf8.decode(readBytes(n, at)));
        } catch (err) {
          if (err instanceof HartError) throw err;
          fail("invalid UTF-8 string", at);
        }
        break;
      }
      case 0x55: // SHORT_BINSTRING (Python 2 str)
        stack.push(latin1.decode(readBytes(readUint(1, at), at)));
        break;
      case 0x54: // BINSTRING
        stack.push(latin1.decode(readBytes(readUint(4, at), at)));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(readBytes(readUint(1, at), at).slice());
        break;
      case 0x42: // BINBYTES
        stack.push(readBytes(readUint(4, at), at).slice());
        break;
      case 0x8e: // BINBYTES8
        stack.push(readBytes(readU64(at), at).slice());
        break;
      case 0x4b: // BININT1
        stack.push(readUint(1, at));
        break;
      case 0x4d: // BININT2
        stack.push(readUint(2, at));
        break;
      case 0x4a: // BININT
        need(4, at);
        stack.push(dv.getInt32(p, true));
        p += 4;
        break;
      case 0x8a: // LONG1
        stack.push(decodeLong(readBytes(readUint(1, at), at)));
        break;
      case 0x8b: {
        // LONG4
        need(4, at);
        const n = dv.getInt32(p, true);
        p += 4;
        if (n < 0 || n > 64) fail("integer too large", at);
        stack.push(decodeLong(readBytes(n, at)));
        break;
      }
      case 0x49: {
        // INT (protocol 0 text; "00"/"01" are False/True)
        const s = readLine(at);
        if (s === "00" || s === "01") stack.push(s === "01");
        else if (/^-?\d+$/.test(s)) stack.push(Number(s));
        else fail(`bad INT "${s}"`, at);
        break;
      }
      case 0x4c: {
        // LONG (protocol 0 text)
        const s = readLine(at).replace(/L$/, "");
        if (!/^-?\d+$/.test(s)) fail(`bad LONG "${s}"`, at);
        const v = BigInt(s);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8, at);
        stack.push(dv.getFloat64(p, false));
        p += 8;
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(asTuple([]));
        break;
      case 0x74: // TUPLE
        stack.push(asTuple(popMark(at)));
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: {
        // TUPLE3
        const n = op - 0x84;
        const items: unknown[] = [];
        for (let i = 0; i < n; i++) items.unshift(pop(at));
        stack.push(asTuple(items));
        break;
      }
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
        stack.push(popMark(at));
        break;
      case 0x61: {
        // APPEND
        const v = pop(at);
        appendItems(top(at), [v], at);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark(at);
        appendItems(top(at), items, at);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: {
        // DICT
        const d = new Map();
        setItems(d, popMark(at), at);
        stack.push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop(at);
        const k = pop(at);
        setItems(top(at), [k, v], at);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark(at);
        setItems(top(at), items, at);
        break;
      }
      case 0x71: // BINPUT
        memo.set(readUint(1, at), top(at));
        break;
      case 0x72: // LONG_BINPUT
        memo.set(readUint(4, at), top(at));
        break;
      case 0x70: // PUT (text)
        memo.set(Number(readLine(at)), top(at));
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top(at));
        break;
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: {
        // GET (text)
        const idx = op === 0x68 ? readUint(1, at) : op === 0x6a ? readUint(4, at) : Number(readLine(at));
        if (!memo.has(idx)) fail(`memo entry ${idx} is missing`, at);
        stack.push(memo.get(idx));
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop(at);
        if (!options.persistentLoad) fail("persistent ids are not supported here", at);
        stack.push(options.persistentLoad!(pid));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop(at);
        const fn = pop(at);
        stack.push(callIt(fn, args, at));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args); only allowed callables can be classes here
        const args = pop(at);
        const cls = pop(at);
        stack.push(callIt(cls, args, at));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop(at);
        const obj = pop(at);
        stack.push(build(obj, state));
        break;
      }
      default:
        fail(`unsupported or unsafe pickle opcode 0x${op.toString(16).padStart(2, "0")}`, at);
    }
  }
}

/** A short description of a pickled value for error messages. */
export function describe(v: unknown): string {
  if (v instanceof PickleCallable) return v.qualifiedName;
  if (v === null) return "None";
  if (v instanceof Map) return "a dict";
  if (Array.isArray(v)) return Object.isFrozen(v) ? `a tuple of ${v.length}` : `a list of ${v.length}`;
  if (v instanceof Uint8Array) return "bytes";
  if (typeof v === "object") return (v as object).constructor?.name ?? "an object";
  return `${typeof v} ${String(v)}`;
}
