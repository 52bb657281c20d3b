/**
 * `@hart/kernels-cuda`: the GPU path of hart. It detects whether
 * onnxruntime-node's CUDA (or bundled WebGPU) execution provider is usable,
 * reports GPU/driver/provider versions, registers the check with
 * `@hart/core` so `device: "cuda"` fails with one clear message when not usable,
 * and runs fused (CUDA-form) graphs on CPU for checking ({@link emulateCudaOnlyOps}).
 * The fused graph forms themselves are built with `@hart/core`'s `graphForm`
 * helpers, which every model package uses.
 *
 * @packageDocumentation
 */
export * from "./emulate";
export * from "./provision";
export * from "./register";
