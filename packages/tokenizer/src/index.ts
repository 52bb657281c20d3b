export { parseTokenizerConfig, readTokenizerConfig, type TokenizerConfig } from "./config";
export { imageToUnit } from "./image";
export { linspace, nearestTick, phiTicks } from "./phi";
export { HartQuantizer, type QuantizedLatent, type QuantizerOptions } from "./quantizer";
export { type RandomWeightsOptions, randomTokenizerStateDict } from "./random-weights";
export { RELEASE_TOKENIZER_CONFIG } from "./release";
export { areaMatrix, bicubicMatrix, type ResizeFactors, resizeFactors } from "./resample";
export { type EncodedImagesWithDebug, HartTokenizer, type TokenizerOptions } from "./tokenizer";
export type { EncodedImages, ImageTokenizer, ScaleQuantizer, TokenizerLoadOptions } from "./types";
