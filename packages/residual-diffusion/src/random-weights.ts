/**
 * Random weights with the key names and shapes of the release's
 * `diffloss.net.*` tensors, for benchmarks and tests that need a diffusion
 * head without its checkpoint.
 */
import { type StateDict, tensor, xorshiftUniform } from "@hart/core";
import type { DiffusionHeadConfig } from "./config";

/**
 * A state dict of random `diffloss.net.*` tensors for `config` and `latentChannels`
 * (Cvae): linear weights uniform with variance 1/fan_in, biases ±0.05, LayerNorm
 * weights 1 (seeded; default seed 1).
 */
export function randomDiffusionStateDict(
  config: Pick<DiffusionHeadConfig, "width" | "depth" | "condWidth">,
  latentChannels: number,
  seed = 1,
): StateDict {
  const next = xorshiftUniform(seed);
  const { width, depth, condWidth } = config;
  const sd: StateDict = new Map();
  const fill = (key: string, shape: number[], scale: number) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = scale * next();
    sd.set(`diffloss.net.${key}`, tensor("float32", shape, data));
  };
  const lin = (key: string, out: number, inF: number) => {
    fill(`${key}.weight`, [out, inF], Math.sqrt(3 / inF));
    fill(`${key}.bias`, [out], 0.05);
  };
  lin("input_proj", width, latentChannels);
  lin("cond_embed", width, condWidth);
  lin("time_embed.mlp.0", width, 256);
  lin("time_embed.mlp.2", width, width);
  for (let i = 0; i < depth; i++) {
    sd.set(`diffloss.net.res_blocks.${i}.in_ln.weight`, tensor("float32", [width], new Float32Array(width).fill(1)));
    fill(`res_blocks.${i}.in_ln.bias`, [width], 0.05);
    lin(`res_blocks.${i}.adaLN_modulation.1`, 3 * width, width);
    lin(`res_blocks.${i}.mlp.0`, width, width);
    lin(`res_blocks.${i}.mlp.2`, width, width);
  }
  lin("final_layer.adaLN_modulation.1", 2 * width, width);
  lin("final_layer.linear", 2 * latentChannels, width);
  return sd;
}
