/**
 * Random weights of the right shapes for any tokenizer config, for benchmarks
 * and tests that need a full-size model without its checkpoint. The keys are
 * discovered by building the graphs against a recording weight store, so they
 * always match what the loader asks for.
 */
import { type StateDict, type Tensor, tensor, xorshiftUniform } from "@hart/core";
import type { TokenizerConfig } from "./config";
import { buildDecoderGraph, buildEncoderGraph } from "./graph/autoencoder";
import type { Weights } from "./graph/layers";
import { phiLayout } from "./phi";

/** Options of {@link randomTokenizerStateDict}. */
export interface RandomWeightsOptions {
  /** Seed of the generator (default 0). */
  seed?: number;
  /** Which parts to create (default both); quantizer weights are always created. */
  parts?: readonly ("encoder" | "decoder")[];
}

/**
 * A prefix-free state dict (keys like `decoder.conv_in.weight`) with random values:
 * conv weights uniform with variance 1/fan_in, biases ±0.05, norm weights 1 ± 0.1,
 * the codebook uniform in [−1, 1).
 */
export function randomTokenizerStateDict(config: TokenizerConfig, options: RandomWeightsOptions = {}): StateDict {
  const next = xorshiftUniform(options.seed ?? 0);
  const sd: StateDict = new Map();
  const fill = (shape: readonly number[], scale: number, offset = 0): Tensor<"float32"> => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = offset + scale * next();
    return tensor("float32", shape, data);
  };
  const recorder: Weights = {
    has: (key) => sd.has(key),
    get(key, shape = []) {
      let t = sd.get(key) as Tensor<"float32"> | undefined;
      if (!t) {
        const isNorm = /norm[^.]*\.weight$/.test(key);
        if (shape.length === 4) t = fill(shape, Math.sqrt(3 / (shape[1] * shape[2] * shape[3])));
        else if (isNorm) t = fill(shape, 0.1, 1);
        else t = fill(shape, 0.05);
        sd.set(key, t);
      }
      return t;
    },
  };
  const parts = options.parts ?? ["encoder", "decoder"];
  if (parts.includes("encoder")) buildEncoderGraph(config, recorder);
  if (parts.includes("decoder")) buildDecoderGraph(config, recorder);
  const C = config.zChannels;
  sd.set("quantize.embedding.weight", fill([config.vocabSize, C], 1));
  const phi = phiLayout(config);
  if (phi.enabled) {
    for (const k of phi.keys) {
      sd.set(`quantize.${k}.weight`, fill([C, C, 3, 3], 0.5 * Math.sqrt(3 / (C * 9))));
      sd.set(`quantize.${k}.bias`, fill([C], 0.05));
    }
  }
  return sd;
}
