import {
  CFG_RANGE,
  type GenerateBody,
  type GenerateSettings,
  MAX_IMAGES,
  MAX_SEED,
  RELEASE_DEFAULTS,
} from "../shared/protocol";

/** Limits a request is checked against. */
export interface RequestLimits {
  maxPromptChars: number;
  maxImages?: number;
  cfgMin?: number;
  cfgMax?: number;
  maxSeed?: number;
}

/** Outcome of {@link validateGenerateBody}: the resolved settings or a message for a 400 answer. */
export type Validation = { ok: true; settings: GenerateSettings } | { ok: false; message: string };

const KNOWN_KEYS = new Set<keyof GenerateBody>(["prompt", "seed", "randomizeSeed", "cfg", "moreSmooth", "numImages"]);

/** A uniformly drawn seed in [0, maxSeed]. */
export function randomSeed(maxSeed = MAX_SEED): number {
  return Math.floor(Math.random() * (maxSeed + 1));
}

/**
 * Checks a parsed `POST /api/jobs` body and fills in the release defaults. Never throws: anything that is not a
 * plain object with well-typed, in-range fields gives `{ ok: false, message }` naming the field. Unknown fields
 * are rejected so that a misspelled setting is not silently ignored. The seed is drawn with `drawSeed` when
 * `randomizeSeed` is true or no seed is given.
 */
export function validateGenerateBody(
  body: unknown,
  limits: RequestLimits,
  drawSeed: () => number = () => randomSeed(limits.maxSeed),
): Validation {
  const maxImages = limits.maxImages ?? MAX_IMAGES;
  const cfgMin = limits.cfgMin ?? CFG_RANGE.min;
  const cfgMax = limits.cfgMax ?? CFG_RANGE.max;
  const maxSeed = limits.maxSeed ?? MAX_SEED;
  const fail = (message: string): Validation => ({ ok: false, message });

  if (typeof body !== "object" || body === null || Array.isArray(body)) return fail("body must be a JSON object");
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) {
    if (!KNOWN_KEYS.has(key as keyof GenerateBody)) {
      return fail(`unknown field "${key.slice(0, 40)}" (expected ${[...KNOWN_KEYS].join(", ")})`);
    }
  }

  if (typeof b.prompt !== "string") return fail('"prompt" must be a string');
  const prompt = b.prompt.trim();
  if (prompt.length === 0) return fail('"prompt" must not be empty');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(prompt))
    return fail('"prompt" must not contain control characters');
  // Count code points, not UTF-16 units, so the limit means the same for any script.
  const chars = [...prompt].length;
  if (chars > limits.maxPromptChars) {
    return fail(`"prompt" is ${chars} characters long; at most ${limits.maxPromptChars} are allowed`);
  }

  const randomize = b.randomizeSeed ?? false;
  if (typeof randomize !== "boolean") return fail('"randomizeSeed" must be true or false');
  if (b.seed !== undefined) {
    if (typeof b.seed !== "number" || !Number.isInteger(b.seed)) return fail('"seed" must be an integer');
    if (b.seed < 0 || b.seed > maxSeed) return fail(`"seed" must be between 0 and ${maxSeed}`);
  }
  const seed = randomize || b.seed === undefined ? drawSeed() : (b.seed as number);

  const cfg = b.cfg ?? RELEASE_DEFAULTS.cfg;
  if (typeof cfg !== "number" || !Number.isFinite(cfg)) return fail('"cfg" must be a number');
  if (cfg < cfgMin || cfg > cfgMax) return fail(`"cfg" must be between ${cfgMin} and ${cfgMax}`);

  const moreSmooth = b.moreSmooth ?? RELEASE_DEFAULTS.moreSmooth;
  if (typeof moreSmooth !== "boolean") return fail('"moreSmooth" must be true or false');

  const numImages = b.numImages ?? RELEASE_DEFAULTS.numImages;
  if (typeof numImages !== "number" || !Number.isInteger(numImages)) return fail('"numImages" must be an integer');
  if (numImages < 1 || numImages > maxImages) return fail(`"numImages" must be between 1 and ${maxImages}`);

  return { ok: true, settings: { prompt, seed, cfg, moreSmooth, numImages } };
}
