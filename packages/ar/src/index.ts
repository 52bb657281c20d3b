export type { ARLoadProgressEvent, HartTransformerLoadOptions, HartTransformerOptions } from "./compile";
export * from "./config";
export * from "./plan";
export { type RandomTransformerWeightsOptions, randomTransformerStateDict } from "./random-weights";
export { RELEASE_TRANSFORMER_CONFIG } from "./release";
export * from "./sampling";
export * from "./transformer";
export * from "./types";
export { type LoadWeightsOptions, loadTransformerStateDict } from "./weights";
