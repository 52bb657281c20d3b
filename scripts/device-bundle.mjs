// Builds the device bundle: one self-contained folder, packed as `<out>/hart-device.tar.xz`, that runs hart's
// golden conformance and the CLI on a machine with no network, no node_modules and maybe no node.
//
//   npm run build && npm run device-bundle [-- --sets release,main] [-- --out .device] [-- --keep]
//
// There:  tar -xJf hart-device.tar.xz -C /tmp && bash /tmp/hart-device/run.sh conformance|hart …|info
//
// The folder holds `node` (this node binary), `node_modules/onnxruntime-{node,common}` (the native binding for
// linux-x64 only), `conformance.mjs` (test/conformance/run.ts) and `cli/dist/hart.mjs` (apps/cli/src/hart.ts), both
// bundled by esbuild from the packages' sources with every npm dependency but onnxruntime, `cli/{package.json,
// assets}` (the CLI reads its version and the tiny tokenizer relative to its own file), `golden/<set>/` for
// the chosen sets (default: release), `vulkan/libvulkan.so.1` (the Vulkan loader, for WebGPU where the system has
// none) and `run.sh`. The packed bundle must stay under 60 MiB: the device machine gets the repo's working tree
// and the carried bundle within 64 MiB.
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { build, transform } from "esbuild";

const MiB = 1024 * 1024;
const LIMIT = 60 * MiB;
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

const { values: opts } = parseArgs({
  options: {
    sets: { type: "string", default: "release" },
    out: { type: "string", default: ".device" },
    golden: { type: "string", default: process.env.HART_GOLDEN_DIR ?? join(root, "../shared/golden") },
    keep: { type: "boolean", default: false },
  },
});
const out = resolve(root, opts.out);
const stage = join(out, "hart-device");
const tarball = join(out, "hart-device.tar.xz");
const goldenDir = resolve(opts.golden);
const sets = opts.sets
  .split(",")
  .map((s) => s.trim())
  .filter(Boolean);

function fail(message) {
  console.error(`device-bundle: ${message}`);
  process.exit(1);
}

const size = (bytes) => `${(bytes / MiB).toFixed(1)} MiB`;

// ---- checks before any work
for (const set of sets) {
  if (!existsSync(join(goldenDir, set, "cases"))) fail(`no golden set "${set}" (no ${join(goldenDir, set, "cases")})`);
}
/** The folder of package `name` as node finds it from folder `from` (even where `exports` hides package.json). */
function packageDir(name, from) {
  const paths = createRequire(join(from, "package.json")).resolve.paths(name) ?? [];
  const dir = paths.map((p) => join(p, name)).find((d) => existsSync(join(d, "package.json")));
  if (!dir) fail(`cannot find ${name} from ${from} (npm install?)`);
  return realpathSync(dir);
}
const ortNodeDir = packageDir("onnxruntime-node", root);
const ortCommonDir = packageDir("onnxruntime-common", ortNodeDir);
const ortBinDir = join(ortNodeDir, "bin/napi-v6/linux/x64");
if (!existsSync(ortBinDir)) fail(`onnxruntime-node has no linux-x64 binding (${ortBinDir})`);

rmSync(stage, { recursive: true, force: true });
rmSync(tarball, { force: true });
mkdirSync(stage, { recursive: true });

// ---- the two bundles: @hart/* from their sources (as vitest sees them), onnxruntime left to node_modules/
const hartSources = Object.fromEntries(
  readdirSync(join(root, "packages"))
    .filter((dir) => existsSync(join(root, "packages", dir, "package.json")))
    .map((dir) => [
      JSON.parse(readFileSync(join(root, "packages", dir, "package.json"), "utf8")).name,
      join(root, "packages", dir, "src/index.ts"),
    ]),
);
const hartFromSource = {
  name: "hart-from-source",
  setup(b) {
    b.onResolve({ filter: /^@hart\// }, (args) => {
      const path = hartSources[args.path];
      return path ? { path } : { errors: [{ text: `no package ${args.path} under packages/` }] };
    });
  },
};
const entries = [
  { from: "test/conformance/run.ts", to: "conformance.mjs" },
  { from: "apps/cli/src/hart.ts", to: "cli/dist/hart.mjs" },
];
for (const { from, to } of entries) {
  const result = await build({
    absWorkingDir: root,
    entryPoints: [join(root, from)],
    outfile: join(stage, to),
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: ["onnxruntime-node", "onnxruntime-common"],
    plugins: [hartFromSource],
    // CommonJS dependencies bundled into ESM still call require() for node's modules
    banner: {
      js: 'import { createRequire as __hartCreateRequire } from "node:module";\nconst require = __hartCreateRequire(import.meta.url);',
    },
    legalComments: "eof",
    logLevel: "warning",
    metafile: true,
  });
  const text = readFileSync(join(stage, to), "utf8");
  // the bundle must not depend on this machine: no absolute path of the repo, and no CommonJS globals left
  // (esbuild keeps `__dirname` of a CommonJS dependency as is, which throws in an ES module)
  const leaks = [root, dirname(root), process.env.HOME]
    .filter((p) => p && p !== "/" && text.includes(p))
    .map((p) => `the path ${p}`);
  // (checked without comments: some dependencies mention them in docs)
  const code = (await transform(text, { format: "esm", minifyWhitespace: true, legalComments: "none" })).code;
  for (const name of ["__dirname", "__filename"]) {
    if (new RegExp(`(?<![\\w$.])${name}(?![\\w$])`).test(code)) leaks.push(`a use of ${name}`);
  }
  if (leaks.length > 0) fail(`${to} contains ${leaks.join(", ")}`);
  const inputs = Object.keys(result.metafile.inputs).length;
  console.log(`bundled ${from} → ${to} (${size(statSync(join(stage, to)).size)}, ${inputs} modules)`);
}
// what the CLI reads next to its file: ../package.json (its version) and ../assets (the tiny tokenizer)
cpSync(join(root, "apps/cli/package.json"), join(stage, "cli/package.json"));
cpSync(join(root, "apps/cli/assets"), join(stage, "cli/assets"), { recursive: true });

// ---- node and onnxruntime
cpSync(process.execPath, join(stage, "node"));
chmodSync(join(stage, "node"), 0o755);
const ortNodeOut = join(stage, "node_modules/onnxruntime-node");
for (const part of ["package.json", "dist", "lib"]) {
  if (existsSync(join(ortNodeDir, part))) cpSync(join(ortNodeDir, part), join(ortNodeOut, part), { recursive: true });
}
cpSync(ortBinDir, join(ortNodeOut, "bin/napi-v6/linux/x64"), { recursive: true, dereference: true });
for (const part of ["package.json", "dist"]) {
  cpSync(join(ortCommonDir, part), join(stage, "node_modules/onnxruntime-common", part), { recursive: true });
}

// ---- golden sets
for (const set of sets)
  cpSync(join(goldenDir, set), join(stage, "golden", set), { recursive: true, dereference: true });

// ---- the Vulkan loader (WebGPU needs it; used only where the system has none)
const vulkan = "/usr/lib/x86_64-linux-gnu/libvulkan.so.1";
if (existsSync(vulkan)) {
  mkdirSync(join(stage, "vulkan"));
  cpSync(realpathSync(vulkan), join(stage, "vulkan/libvulkan.so.1"));
} else {
  console.warn(`device-bundle: no ${vulkan} here: the bundle has no Vulkan loader (WebGPU needs the device's own)`);
}

// ---- run.sh and a manifest
const RUN_SH = `#!/usr/bin/env bash
# The hart device bundle (scripts/device-bundle.mjs): runs with nothing but this folder.
#   run.sh conformance [filter…]   golden conformance (HART_DEVICE=cpu|webgpu|cuda, HART_DTYPE, HART_GRAPH_FLAVOUR;
#                                  filters: substrings of <set>/<case>; HART_GOLDEN_DIR: default ./golden)
#   run.sh hart <args…>            the hart CLI
#   run.sh info                    hart info --device: the GPU providers onnxruntime-node can use here
set -e
HERE="$(cd "$(dirname "\${BASH_SOURCE[0]}")" && pwd)"

# ldconfig on PATH (hart looks libraries up with \`ldconfig -p\`, which a PATH without sbin misses)
for dir in /usr/local/sbin /usr/sbin /sbin; do
  case ":$PATH:" in *":$dir:"*) ;; *) [ -d "$dir" ] && PATH="$PATH:$dir" ;; esac
done
export PATH
# the Vulkan loader, only where the system has none
if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
  if [ -d "$HERE/vulkan" ]; then export LD_LIBRARY_PATH="$HERE/vulkan\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
fi
# the NVIDIA Vulkan driver where the container runtime mounts it
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && [ -z "\${VK_DRIVER_FILES:-}" ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
export XDG_RUNTIME_DIR="\${XDG_RUNTIME_DIR:-/tmp}"

# the system's node if it is v20 or newer, else ours
NODE="$HERE/node"
if command -v node >/dev/null 2>&1; then
  version="$(node --version 2>/dev/null || true)"
  major="\${version#v}"
  major="\${major%%.*}"
  if [[ "$major" =~ ^[0-9]+$ ]] && [ "$major" -ge 20 ]; then NODE="$(command -v node)"; fi
fi

if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -L >&2 || true; fi
echo "node $("$NODE" --version) ($NODE)" >&2

command="\${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
  conformance) HART_GOLDEN_DIR="\${HART_GOLDEN_DIR:-$HERE/golden}" exec "$NODE" "$HERE/conformance.mjs" "$@" ;;
  hart) exec "$NODE" "$HERE/cli/dist/hart.mjs" "$@" ;;
  info) exec "$NODE" "$HERE/cli/dist/hart.mjs" info --device "$@" ;;
  *)
    echo "usage: run.sh conformance [filter…] | run.sh hart <args…> | run.sh info" >&2
    exit 2
    ;;
esac
`;
writeFileSync(join(stage, "run.sh"), RUN_SH);
chmodSync(join(stage, "run.sh"), 0o755);

const git = (...args) => spawnSync("git", args, { cwd: root, encoding: "utf8" }).stdout?.trim() || undefined;
const manifest = {
  built: new Date().toISOString(),
  commit: git("rev-parse", "HEAD"),
  uncommittedChanges: (git("status", "--porcelain") ?? "").split("\n").filter(Boolean).length,
  node: process.version,
  onnxruntimeNode: JSON.parse(readFileSync(join(ortNodeDir, "package.json"), "utf8")).version,
  goldenSets: sets,
  vulkanLoader: existsSync(join(stage, "vulkan")),
};
writeFileSync(join(stage, "MANIFEST.json"), `${JSON.stringify(manifest, null, 2)}\n`);

// ---- pack
const tar = spawnSync("tar", ["-cJf", tarball, "-C", out, "hart-device"], {
  stdio: "inherit",
  env: { ...process.env, XZ_OPT: "-T0 -6" },
});
if (tar.status !== 0) fail(`tar failed (${tar.error?.message ?? `exit ${tar.status}`})`);
const packed = statSync(tarball).size;
if (!opts.keep) rmSync(stage, { recursive: true, force: true });
console.log(
  `${relative(process.cwd(), tarball).startsWith("..") ? tarball : relative(process.cwd(), tarball)}: ${size(packed)} (${packed} bytes; sets ${sets.join(", ")})`,
);
if (packed > LIMIT) {
  fail(`the bundle is ${size(packed)}, over the ${size(LIMIT)} limit (the repo and the bundle must fit 64 MiB)`);
}
