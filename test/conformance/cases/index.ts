import type { CaseRunner } from "../harness";
import { arGenerate } from "./ar_generate";
import { arGenerateSmooth } from "./ar_generate_smooth";
import { diffusionSample } from "./diffusion_sample";
import { textEncode } from "./text_encode";
import { tokenizerDecode } from "./tokenizer_decode";
import { tokenizerEncode } from "./tokenizer_encode";

/**
 * Case runners by case name (the stem of `cases/<name>.json`). Each package
 * adds its runner here; a case without a runner is reported as `skip`.
 */
export const runners: Record<string, CaseRunner> = {};
runners["diffusion_sample"] = diffusionSample;
runners["tokenizer_encode"] = tokenizerEncode;
runners["tokenizer_decode"] = tokenizerDecode;
runners["ar_generate"] = arGenerate;
runners["ar_generate_smooth"] = arGenerateSmooth;
runners["text_encode"] = textEncode;
