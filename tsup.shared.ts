import { defineConfig, type Options } from "tsup";

/** One tsup setup for every package: ESM + .d.ts, dependencies stay external. */
export function packageConfig(overrides: Options = {}) {
  return defineConfig({
    entry: ["src/index.ts"],
    format: ["esm"],
    dts: true,
    sourcemap: true,
    clean: true,
    target: "node20",
    platform: "node",
    ...overrides,
  });
}
