import { packageConfig } from "../../tsup.shared";

export default packageConfig({ entry: { hart: "src/hart.ts" }, dts: false, banner: { js: "#!/usr/bin/env node" } });
