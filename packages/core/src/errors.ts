/**
 * The one error type hart throws for bad input: it always names the thing
 * that was wrong (a file, a tensor key, an argument or a config field) and
 * what was expected, so a user can fix the call without reading the code.
 */
export class HartError extends Error {
  /** A stable machine-readable category, e.g. `"shape"`, `"missing-weight"`, `"unsupported"`. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "HartError";
    this.code = code;
  }
}

/** Throws a {@link HartError} with `code` unless `condition` holds. */
export function check(condition: unknown, code: string, message: string | (() => string)): asserts condition {
  if (!condition) throw new HartError(code, typeof message === "function" ? message() : message);
}
