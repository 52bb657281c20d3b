import { defineConfig } from "vitest/config";
import { hartAliases } from "../vitest.shared";

export default defineConfig({
  resolve: { alias: hartAliases },
  test: {
    root: new URL(".", import.meta.url).pathname,
    include: ["conformance/**/*.test.ts"],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    pool: "forks",
    // The summary lines are the point of this suite: show console output.
    silent: false,
  },
});
