import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { readConfig } from "@hart/core";
import { type DeviceReport, describeDevices, type ProviderReport, verifyDevice } from "@hart/kernels-cuda";
import { DEFAULT_MODEL, DEFAULT_TEXT_MODEL, locateModelFolders, resolveSource } from "@hart/pipeline";
import { Command, Option } from "commander";
import { type CliContext, intArg } from "../cli";
import { countParameters, qwen2Schema, tokenizerSchema, transformerSchema } from "../model/checkpoint-schema";
import { formatBytes, formatCount } from "../progress";

interface InfoOptions {
  textModel?: string;
  revision: string;
  cacheDir?: string;
  localFilesOnly?: boolean;
  batchSize: number;
  dtype: "float32" | "float16";
  json?: boolean;
  device?: boolean;
}

type Config = Record<string, unknown>;

/** `hart info MODEL`: configuration, parameter counts, checkpoint files and a memory estimate. */
export function infoCommand(ctx: CliContext): Command {
  return new Command("info")
    .description("show a model's configuration, parameter counts and a memory estimate (downloads configs only)")
    .argument("[model]", "model folder or hub repo id", DEFAULT_MODEL)
    .option("--text-model <dir|repo>", "text encoder (default: <model>/text_model if present, else the release's)")
    .option("--revision <rev>", "hub branch, tag or commit", "main")
    .option("--cache-dir <dir>", "Hugging Face cache")
    .option("--local-files-only", "never download")
    .option("--batch-size <n>", "batch size of the memory estimate", intArg("--batch-size", 1), 1)
    .addOption(
      new Option("--dtype <dtype>", "weight precision of the estimate")
        .choices(["float32", "float16"])
        .default("float32"),
    )
    .option("--json", "print JSON")
    .option("--device", "instead: the GPU providers onnxruntime-node can use here (CUDA, WebGPU), driver and GPUs")
    .action(async (model: string, opts: InfoOptions) => {
      if (opts.device) {
        const report = await deviceReport();
        ctx.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : renderDevices(report));
        return;
      }
      const hub = {
        revision: opts.revision,
        cacheDir: opts.cacheDir,
        localFilesOnly: opts.localFilesOnly,
        signal: ctx.signal,
      };
      const folders = await locateModelFolders(
        await resolveSource(model, "model", { ...hub, allowPatterns: ["**/config.json", "config.json"] }),
      );
      const textDir =
        opts.textModel !== undefined || !folders.textModelDir
          ? await resolveSource(opts.textModel ?? DEFAULT_TEXT_MODEL, "text model", {
              ...hub,
              revision: "main",
              allowPatterns: ["config.json"],
            })
          : folders.textModelDir;
      const summary = summarize(folders.llmConfig, folders.tokenizerConfig, readConfig(textDir), opts);
      const files = checkpointFiles(folders.root, [folders.llmDir, folders.tokenizerDir, textDir]);
      const result = { model: folders.root, textModel: textDir, ...summary, files };
      if (opts.json) ctx.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else ctx.stdout.write(render(result, opts));
    });
}

function summarize(llm: Config, tok: Config, text: Config, opts: InfoOptions) {
  const llmSchema = transformerSchema(llm, tok);
  const tokSchema = tokenizerSchema(tok);
  const textSchema = qwen2Schema(text);
  const patchNums = llm.patch_nums as number[];
  const chMult = tok.ch_mult as number[];
  const down = 2 ** (chMult.length - 1);
  const C = llm.embed_dim as number;
  const heads = llm.num_heads as number;
  const ctxTokens = llm.context_token as number;
  const last = patchNums[patchNums.length - 1];
  const params = {
    transformer: countParameters(llmSchema, (k) => !k.startsWith("diffloss.")),
    diffusion: countParameters(llmSchema, (k) => k.startsWith("diffloss.")),
    tokenizer: countParameters(tokSchema),
    tokenizerDecoder: countParameters(
      tokSchema,
      (k) => !k.startsWith("vae.encoder.") && !k.startsWith("vae.quant_conv."),
    ),
    textEncoder: countParameters(textSchema),
  };
  const B = opts.batchSize;
  const wBytes = opts.dtype === "float16" ? 2 : 4;
  const vocab = tok.vocab_size as number;
  const mlpHidden =
    llmSchema.get("blocks.0.ffn.gate_proj.weight")?.shape[0] ??
    llmSchema.get("blocks.0.ffn.fc1.weight")?.shape[0] ??
    4 * C;
  // K/V of every scale but the last stay cached (2 tensors per block, CFG doubles the batch).
  const cachedTokens = ctxTokens + patchNums.slice(1, -1).reduce((s, p) => s + p * p, 0);
  const kvCache = (llm.depth as number) * 2 * 2 * B * cachedTokens * C * 4;
  // The last scale's largest live tensors: logits, the block's activations, the diffusion condition.
  const lastActivations = 2 * B * last * last * (vocab + 4 * C + 3 * mlpHidden) * 4;
  const weights = (params.transformer + params.textEncoder) * wBytes + (params.diffusion + params.tokenizer) * 4;
  return {
    transformer: {
      depth: llm.depth,
      embedDim: C,
      heads,
      headDim: C / heads,
      mlpType: llm.mlp_type,
      attnType: llm.attn_type,
      adaLN: !llm.disable_aln,
      contextTokens: ctxTokens,
      contextDim: llm.context_dim,
      patchNums,
      tokensPerImage: ctxTokens + patchNums.slice(1).reduce((s, p) => s + p * p, 0),
    },
    tokenizer: {
      vocabSize: vocab,
      latentChannels: tok.z_channels,
      ch: tok.ch,
      chMult,
      downsampling: down,
      imageSize: last * down,
    },
    diffusion: { width: llm.diff_width, depth: llm.diff_depth, steps: llm.num_sampling_steps, sampler: llm.sampler },
    textEncoder: {
      modelType: text.model_type,
      layers: text.num_hidden_layers,
      hiddenSize: text.hidden_size,
      heads: text.num_attention_heads,
      kvHeads: text.num_key_value_heads,
      vocabSize: text.vocab_size,
    },
    parameters: params,
    memoryEstimate: {
      batchSize: B,
      dtype: opts.dtype,
      weightsBytes: weights,
      kvCacheBytes: kvCache,
      lastScaleActivationsBytes: lastActivations,
      totalBytes: weights + kvCache + lastActivations,
    },
  };
}

function checkpointFiles(root: string, dirs: string[]): { path: string; bytes: number }[] {
  const out: { path: string; bytes: number }[] = [];
  for (const dir of dirs) {
    for (const name of readdirSync(dir).sort()) {
      if (!/\.(safetensors|bin)$/.test(name)) continue;
      const path = join(dir, name);
      out.push({
        path: relative(root, path).startsWith("..") ? path : relative(root, path),
        bytes: statSync(path).size,
      });
    }
  }
  return out;
}

function render(
  r: ReturnType<typeof summarize> & { model: string; textModel: string; files: { path: string; bytes: number }[] },
  opts: InfoOptions,
): string {
  const t = r.transformer;
  const k = r.tokenizer;
  const m = r.memoryEstimate;
  const p = r.parameters;
  const lines = [
    `Model         ${r.model}`,
    `Image         ${k.imageSize}×${k.imageSize} pixels, ${t.patchNums.length} scales (${t.patchNums.join(" ")}), ${t.tokensPerImage} tokens per image with the context`,
    `Transformer   ${t.depth} blocks, width ${t.embedDim}, ${t.heads} heads × ${t.headDim}, ${t.attnType} attention, ${t.mlpType} MLP, ${t.adaLN ? "adaLN per block" : "plain pre-norm blocks"}; context ${t.contextTokens} × ${t.contextDim}`,
    `              ${formatCount(p.transformer)} parameters`,
    `Diffusion     width ${r.diffusion.width}, ${r.diffusion.depth} blocks, "${r.diffusion.steps}" steps (${r.diffusion.sampler}); ${formatCount(p.diffusion)} parameters`,
    `Tokenizer     vocab ${k.vocabSize}, ${k.latentChannels} latent channels, ch ${k.ch} × [${k.chMult}] (${k.downsampling}× down); ${formatCount(p.tokenizer)} parameters (decoder side ${formatCount(p.tokenizerDecoder)})`,
    `Text encoder  ${r.textEncoder.modelType}: ${r.textEncoder.layers} layers, hidden ${r.textEncoder.hiddenSize}, ${r.textEncoder.heads} heads (${r.textEncoder.kvHeads} KV), vocab ${r.textEncoder.vocabSize}; ${formatCount(p.textEncoder)} parameters (language model)`,
    `              ${r.textModel}`,
    "Checkpoints",
    ...(r.files.length
      ? r.files.map((f) => `  ${f.path.padEnd(40)} ${formatBytes(f.bytes)}`)
      : ["  (weights not downloaded yet)"]),
    `Memory (estimate, batch ${m.batchSize}, ${opts.dtype} weights): weights ${formatBytes(m.weightsBytes)} + KV cache ${formatBytes(m.kvCacheBytes)} + last-scale activations ${formatBytes(m.lastScaleActivationsBytes)} ≈ ${formatBytes(m.totalBytes)}`,
  ];
  return `${lines.join("\n")}\n`;
}

/** {@link describeDevices}, with each provider the probe calls usable proven by running a one-op graph on it. */
async function deviceReport(): Promise<DeviceReport> {
  const report = describeDevices();
  const check = async (p: ProviderReport) => (p.usable ? verifyDevice(p.device) : p);
  return { ...report, cuda: await check(report.cuda), webgpu: await check(report.webgpu) };
}

function renderDevices(r: DeviceReport): string {
  const provider = (p: ProviderReport) =>
    p.usable
      ? `usable (a test graph ran)${p.autoSelect === false ? `; no GPU device node, so a software adapter that device "auto" does not pick` : ""}`
      : `not usable: ${p.reason}`;
  const lines = [
    `onnxruntime-node  ${r.onnxruntime}`,
    `NVIDIA driver     ${r.nvidiaDriver ?? "none found"}`,
    `GPUs              ${r.gpus.length ? r.gpus.join("; ") : "none reported by nvidia-smi"}`,
    `cuda              ${provider(r.cuda)}`,
    `webgpu            ${provider(r.webgpu)}`,
  ];
  return `${lines.join("\n")}\n`;
}
