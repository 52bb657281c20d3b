export * from "./config";
export * from "./plan";
export * from "./sampling";
export * from "./transformer";
export * from "./types";
export { type LoadWeightsOptions, loadTransformerStateDict } from "./weights";
