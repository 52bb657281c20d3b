import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const root = fileURLToPath(new URL(".", import.meta.url));
const packages = ["core", "tokenizer", "ar", "residual-diffusion", "text-encoder", "kernels-cuda", "pipeline"];

/** Tests run against the sources of sibling packages, so a change is tested before it is built. */
export const hartAliases = Object.fromEntries(packages.map((p) => [`@hart/${p}`, `${root}packages/${p}/src/index.ts`]));

/** The vitest setup every package shares. */
export function packageTestConfig() {
  return defineConfig({
    resolve: { alias: hartAliases },
    test: {
      include: ["test/**/*.test.ts"],
      testTimeout: 120_000,
      hookTimeout: 120_000,
      pool: "forks",
      reporters: ["default"],
    },
  });
}
