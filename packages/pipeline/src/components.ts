/**
 * The component contracts the pipeline is written against (INTERFACES.md), re-exported from the
 * packages that own them. They are structural: any object with these members can be passed to
 * {@link HartPipeline}'s constructor.
 */
export type { ARProgressEvent, ARResult, GenerateOptions, TextContext, Transformer } from "@hart/ar";
export type { NoiseSource, ResidualSampler } from "@hart/residual-diffusion";
export type { EncodedPrompts, TextEncoder } from "@hart/text-encoder";
export type { ImageTokenizer, ScaleQuantizer } from "@hart/tokenizer";
