export * from "./errors";
export * from "./graph/builder";
export * from "./session";
export * from "./tensor";
export * from "./checkpoint/safetensors";
export * from "./checkpoint/state-dict";
export * from "./graph/nn";
