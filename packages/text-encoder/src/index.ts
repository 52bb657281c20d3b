export { parseQwen2Config, type Qwen2Config, readQwen2Config } from "./config";
export { PromptTokenizer, type PromptTokenizerSettings, type SequenceSide } from "./prompt-tokenizer";
export {
  DEFAULT_MAX_TOKEN_LENGTH,
  type Qwen2FromPretrainedOptions,
  type Qwen2FromWeightsOptions,
  Qwen2TextEncoder,
} from "./qwen2-encoder";
export { buildQwen2Part, PART_IO, type Qwen2LayerWeights, type Qwen2PartWeights, ropeInvFreq } from "./qwen2-graph";
export { HART_SYSTEM_PROMPT } from "./system-prompt";
export type { EncodedPrompts, EncodeOptions, TextEncoder, TextEncoderLoadOptions } from "./types";
export {
  checkpointSource,
  layerKeys,
  type PartPlan,
  partKeys,
  planParts,
  stateDictSource,
  takePart,
  type WeightDType,
  type WeightSource,
  weightBytes,
} from "./weights";
