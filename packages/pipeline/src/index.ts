export type {
  ARResult,
  EncodedPrompts,
  GenerateOptions,
  ImageTokenizer,
  NoiseSource,
  ResidualSampler,
  ScaleQuantizer,
  TextEncoder,
  Transformer,
} from "./components";
export * from "./hub";
export * from "./layout";
export * from "./pipeline";
export * from "./prompts";
