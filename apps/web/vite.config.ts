import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The page: plain TypeScript + CSS, built to dist/client, which the server serves (and nothing else).
export default defineConfig({
  root: fileURLToPath(new URL("src/client", import.meta.url)),
  base: "/",
  build: {
    outDir: fileURLToPath(new URL("dist/client", import.meta.url)),
    emptyOutDir: true,
    // No inline <script>/<style>: the server's Content-Security-Policy allows only same-origin files.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
