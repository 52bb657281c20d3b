export type { ARLoadProgressEvent, HartTransformerLoadOptions, HartTransformerOptions } from "./compile";
export * from "./config";
export * from "./plan";
export { type RandomTransformerWeightsOptions, randomTransformerStateDict } from "./random-weights";
export * from "./sampling";
export * from "./transformer";
export * from "./types";
export { type LoadWeightsOptions, loadTransformerStateDict } from "./weights";
