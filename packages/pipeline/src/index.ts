export type {
  ARProgressEvent,
  ARResult,
  EncodedPrompts,
  GenerateOptions,
  ImageTokenizer,
  NoiseSource,
  ResidualSampler,
  ScaleQuantizer,
  TextContext,
  TextEncoder,
  Transformer,
} from "./components";
export * from "./hub";
export * from "./layout";
export * from "./noise";
export * from "./pipeline";
export * from "./pretrained";
export * from "./prompts";
export * from "./random";
