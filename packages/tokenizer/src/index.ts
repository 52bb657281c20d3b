export type { EncodedImages, ImageTokenizer, ScaleQuantizer, TokenizerLoadOptions } from "./types";
