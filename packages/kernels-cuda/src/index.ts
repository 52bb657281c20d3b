/**
 * `@hart/kernels-cuda`: the GPU path of hart. It detects whether
 * onnxruntime-node's CUDA (or bundled WebGPU) execution provider is usable,
 * reports GPU/driver/provider versions, and registers the check with
 * `@hart/core` so `device: "cuda"` fails with one clear message when not usable.
 *
 * @packageDocumentation
 */
export * from "./provision";
export * from "./register";
