import { packageConfig } from "../../tsup.shared";

// The server and its generation worker (run first: it empties dist/); then Vite builds the page into dist/client.
export default packageConfig({
  entry: { "server/main": "src/server/main.ts", "server/worker": "src/server/worker.ts" },
  dts: false,
  clean: true,
});
