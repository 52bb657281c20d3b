import { createRng, HartError } from "@hart/core";

/**
 * The release's default prompts (`hart/utils/constants.py`), in order. The release's list has a missing
 * comma after its second entry, so Python joins the second and third strings into one prompt; the list
 * is kept exactly as the release sees it (9 prompts), so that picking "prompt k" means the same thing.
 */
export const DEFAULT_PROMPTS: readonly string[] = [
  "beautiful lady, freckles, big smile, blue eyes, short ginger hair, dark makeup, wearing a floral blue vest top, soft light, dark grey background",
  "anthropomorphic profile of the white snow owl Crystal priestess , art deco painting, pretty and expressive eyes, ornate costume, mythical, ethereal, intricate, elaborate, hyperrealism, hyper detailed, 3D, 8K, Ultra Realistic, high octane, ultra resolution, amazing detail, perfection, In frame, photorealistic, cinematic lighting, visual clarity, shading , Lumen Reflections, Super-Resolution, gigapixel, color grading, retouch, enhanced, PBR, Blender, V-ray, Procreate, zBrush, Unreal Engine 5, cinematic, volumetric, dramatic, neon lighting, wide angle lens ,no digital painting blur." +
    "Bright scene, aerial view, ancient city, fantasy, gorgeous light, mirror reflection, high detail, wide angle lens.",
  "A 4k dslr image of a lemur wearing a red magician hat and a blue coat performing magic tricks with cards in a garden.",
  "A silhouette of a grand piano overlooking a dusky cityscape viewed from a top-floor penthouse, rendered in the bold and vivid sytle of a vintage travel poster.",
  "Crocodile in a sweater.",
  "Luffy from ONEPIECE, handsome face, fantasy.",
  "3d digital art of an adorable ghost, glowing within, holding a heart shaped pumpkin, Halloween, super cute, spooky haunted house background.",
  "an astronaut sitting in a diner, eating fries, cinematic, analog film",
  "Chinese architecture, ancient style,mountain, bird, lotus, pond, big tree, 4K Unity, octane rendering.",
];

/** What the release's web demo shows instead of an unsafe prompt. */
export const DEMO_SAFE_PROMPT = "A red heart.";

/**
 * A prompt-safety check run on every prompt before generation. The release used ShieldGemma-2B
 * (`hart/utils/safety_check.py`: P("Yes") > 0.5 for "does this prompt violate the policy") — any
 * classifier can be plugged in here. hart ships no filter by default.
 */
export interface PromptFilter {
  /** True when `prompt` must not be generated; it is then replaced (see {@link UnsafePromptReplacement}). */
  isUnsafe(prompt: string, options?: { signal?: AbortSignal }): boolean | Promise<boolean>;
}

/**
 * What replaces an unsafe prompt: `"default-prompt"` (the release's `sample.py`: one of
 * {@link DEFAULT_PROMPTS}, picked from the generation seed), a fixed string (the release's web demo
 * used {@link DEMO_SAFE_PROMPT}), or a function of the prompt, its index and the seed.
 */
export type UnsafePromptReplacement =
  | "default-prompt"
  | string
  | ((prompt: string, index: number, seed: number) => string | Promise<string>);

/** A simple {@link PromptFilter}: unsafe when the prompt contains one of `terms` as a whole word (case-insensitive). */
export function blocklistFilter(terms: readonly string[]): PromptFilter {
  const patterns = terms
    .map((t) => t.trim())
    .filter(Boolean)
    .map((t) => new RegExp(`(^|[^\\p{L}\\p{N}])${t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}($|[^\\p{L}\\p{N}])`, "iu"));
  return { isUnsafe: (prompt) => patterns.some((p) => p.test(prompt)) };
}

/** The prompts after the safety hook, and which were replaced. */
export interface FilteredPrompts {
  /** The prompts to generate. */
  prompts: string[];
  /** Indices of the prompts that the filter flagged and that were replaced. */
  replaced: number[];
}

/** Runs `filter` on each prompt and replaces the flagged ones. */
export async function applyPromptFilter(
  prompts: readonly string[],
  filter: PromptFilter | undefined,
  replacement: UnsafePromptReplacement,
  seed: number,
  signal?: AbortSignal,
): Promise<FilteredPrompts> {
  const out = [...prompts];
  const replaced: number[] = [];
  if (!filter) return { prompts: out, replaced };
  for (let i = 0; i < out.length; i++) {
    if (!(await filter.isUnsafe(out[i], { signal }))) continue;
    replaced.push(i);
    if (typeof replacement === "function") out[i] = await replacement(out[i], i, seed);
    else if (replacement === "default-prompt") out[i] = DEFAULT_PROMPTS[pickIndex(seed, i, DEFAULT_PROMPTS.length)];
    else out[i] = replacement;
    if (!out[i]?.trim()) throw new HartError("argument", `the replacement of unsafe prompt ${i} is empty`);
  }
  return { prompts: out, replaced };
}

/** A deterministic pick in [0, n) from (seed, index) (core's seeded RNG), so a seeded run replaces prompts reproducibly. */
function pickIndex(seed: number, index: number, n: number): number {
  return createRng(seed).split(`prompt-replacement:${index}`).randint(0, n);
}

/**
 * Picks `count` distinct default prompts (the release's `random.sample(default_prompts, 4)` when no
 * prompt is given), deterministically from `seed`.
 */
export function sampleDefaultPrompts(count: number, seed: number): string[] {
  const rng = createRng(seed).split("default-prompts");
  const pool = DEFAULT_PROMPTS.map((_, i) => i);
  const out: string[] = [];
  for (let k = 0; k < Math.min(count, pool.length); k++) {
    const j = k + rng.randint(0, pool.length - k);
    [pool[k], pool[j]] = [pool[j], pool[k]];
    out.push(DEFAULT_PROMPTS[pool[k]]);
  }
  return out;
}
