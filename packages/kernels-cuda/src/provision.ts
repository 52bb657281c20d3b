import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { Device } from "@hart/core";

/** What hart found out about one GPU execution provider on this machine. */
export interface ProviderReport {
  /** `cuda` or `webgpu`. */
  readonly device: Exclude<Device, "cpu">;
  /** Whether sessions on this device are expected to work. */
  readonly usable: boolean;
  /** Why not, and what to do about it (set when `usable` is false). */
  readonly reason?: string;
  /**
   * Whether `device: "auto"` may pick it (default: when usable). False for WebGPU without a GPU device node: its
   * adapter would be a software one (Mesa's llvmpipe), which works, but more slowly than the CPU provider.
   */
  readonly autoSelect?: boolean;
  /** Facts gathered on the way (library paths, versions). */
  readonly details: Readonly<Record<string, string>>;
}

/** GPU, driver and provider facts for `hart info --device`. */
export interface DeviceReport {
  /** onnxruntime-node version. */
  readonly onnxruntime: string;
  /** NVIDIA driver version from `/proc/driver/nvidia/version`, if any. */
  readonly nvidiaDriver?: string;
  /** GPU names reported by `nvidia-smi`, if it runs. */
  readonly gpus: readonly string[];
  /** What the probe found for onnxruntime's CUDA execution provider. */
  readonly cuda: ProviderReport;
  /** What the probe found for onnxruntime's WebGPU execution provider. */
  readonly webgpu: ProviderReport;
}

const CUDA_INSTALL_HINT =
  "install onnxruntime-node's CUDA provider libraries on a machine with internet access: " +
  "`npm install onnxruntime-node --onnxruntime-node-install=cuda12` (needs an NVIDIA driver, CUDA 12 and cuDNN 9)";

/** The folder holding onnxruntime-node's native binding (where provider libraries must sit). */
export function onnxruntimeBinaryDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const pkgDir = dirname(require.resolve("onnxruntime-node/package.json"));
    const dir = join(pkgDir, "bin", "napi-v6", process.platform, process.arch);
    return existsSync(dir) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** The onnxruntime-node version installed. */
export function onnxruntimeVersion(): string {
  try {
    const require = createRequire(import.meta.url);
    return (require("onnxruntime-node/package.json") as { version: string }).version;
  } catch {
    return "not installed";
  }
}

function nvidiaDriver(): string | undefined {
  try {
    const text = readFileSync("/proc/driver/nvidia/version", "utf8");
    return /Kernel Module\s+([\d.]+)/.exec(text)?.[1] ?? text.split("\n")[0];
  } catch {
    return undefined;
  }
}

function nvidiaGpus(): string[] {
  try {
    const out = execFileSync("nvidia-smi", ["--query-gpu=name,memory.total", "--format=csv,noheader"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 10_000,
    });
    return out
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
  } catch {
    return [];
  }
}

function sharedLibraryVisible(name: string): boolean {
  try {
    const out = execFileSync("ldconfig", ["-p"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 10_000,
    });
    if (out.includes(name)) return true;
  } catch {
    // ldconfig missing: fall back to LD_LIBRARY_PATH below.
  }
  return (process.env.LD_LIBRARY_PATH ?? "")
    .split(":")
    .filter(Boolean)
    .some((dir) => existsSync(join(dir, name)));
}

/** Checks the CUDA execution provider: provider libraries beside the binding and an NVIDIA driver. */
export function probeCuda(): ProviderReport {
  const details: Record<string, string> = { onnxruntime: onnxruntimeVersion() };
  const dir = onnxruntimeBinaryDir();
  if (!dir) return { device: "cuda", usable: false, reason: "onnxruntime-node is not installed", details };
  details.binaryDir = dir;
  const libs = ["libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"];
  const missing = libs.filter((l) => !existsSync(join(dir, l)));
  const driver = nvidiaDriver();
  if (driver) details.nvidiaDriver = driver;
  if (process.platform !== "linux" && process.platform !== "win32") {
    return { device: "cuda", usable: false, reason: `CUDA is not available on ${process.platform}`, details };
  }
  if (missing.length > 0) {
    return {
      device: "cuda",
      usable: false,
      reason: `the CUDA provider libraries (${missing.join(", ")}) are not in ${dir}; ${CUDA_INSTALL_HINT}`,
      details,
    };
  }
  if (!driver) {
    return {
      device: "cuda",
      usable: false,
      reason: "no NVIDIA driver was found (/proc/driver/nvidia/version)",
      details,
    };
  }
  return { device: "cuda", usable: true, details };
}

/**
 * Checks the WebGPU execution provider bundled with onnxruntime-node. On Linux
 * it runs on Vulkan, so it needs `libvulkan.so.1` and a GPU driver with a
 * Vulkan ICD; whether an adapter really exists is only known when a session
 * is created (see {@link verifyDevice}).
 */
export function probeWebGpu(): ProviderReport {
  const details: Record<string, string> = { onnxruntime: onnxruntimeVersion() };
  if (process.platform === "linux" && !sharedLibraryVisible("libvulkan.so.1")) {
    return {
      device: "webgpu",
      usable: false,
      reason:
        "WebGPU needs Vulkan on Linux and libvulkan.so.1 was not found (install the Vulkan loader and a GPU driver)",
      details,
    };
  }
  if (process.platform !== "linux") return { device: "webgpu", usable: true, details };
  const nodes = gpuDeviceNodes();
  details.gpuDeviceNodes = nodes.length > 0 ? nodes.join(", ") : "none (a software adapter, e.g. llvmpipe, at most)";
  return { device: "webgpu", usable: true, autoSelect: nodes.length > 0, details };
}

/** GPU device nodes (`/dev/dri/renderD*`, `/dev/nvidia<N>`): a hardware Vulkan adapter needs one. */
function gpuDeviceNodes(): string[] {
  const list = (dir: string, pattern: RegExp) => {
    try {
      return readdirSync(dir)
        .filter((n) => pattern.test(n))
        .map((n) => join(dir, n));
    } catch {
      return [];
    }
  };
  return [...list("/dev/dri", /^renderD\d+$/), ...list("/dev", /^nvidia\d+$/)];
}

/** Everything `hart info --device` prints. */
export function describeDevices(): DeviceReport {
  return {
    onnxruntime: onnxruntimeVersion(),
    nvidiaDriver: nvidiaDriver(),
    gpus: nvidiaGpus(),
    cuda: probeCuda(),
    webgpu: probeWebGpu(),
  };
}
