/**
 * `text_encode`: the Qwen2 text model on given token ids, without and with a
 * system prompt (section 4.5 of the golden README). The case's pad id is an
 * arbitrary id chosen for the case, so the runner enters below the tokenizer:
 * `encodeTokenIds` (mask, position ids, system prompt handling) and
 * `encodeIds` (the raw model over the whole sequence).
 */
import { join } from "node:path";
import type { Tensor } from "@hart/core";
import { Qwen2TextEncoder } from "@hart/text-encoder";
import { type CaseRunner, TARGET, targetOptions } from "../harness";

export const textEncode: CaseRunner = async (ctx) => {
  const encoder = await Qwen2TextEncoder.fromPretrained(join(ctx.set.dir, "text_model"), {
    ...targetOptions,
    dtype: TARGET.dtype,
  });
  try {
    const padId = Number(ctx.json.pad_id);
    const ids = ctx.ref("input_ids") as Tensor<"int64">;

    const plain = await encoder.encodeTokenIds(ids, { padId });
    ctx.compare("context_mask", plain.mask, "context_mask");
    ctx.compare("context_position_ids", plain.positionIds, "context_position_ids");
    ctx.compare("tokens", plain.tokens, "input_ids");
    ctx.compare("last_hidden_state", plain.contextBLD, "last_hidden_state", { atol: 1e-4, rtolElem: 1e-4 });

    const systemIds = Array.from(ctx.ref("sys.system_ids").data as BigInt64Array, Number);
    if (systemIds.length !== ctx.json.system_prompt_length) throw new Error("sys.system_ids disagrees with the JSON");
    const withSystem = await encoder.encodeTokenIds(ids, { padId, systemIds });
    ctx.compare("sys.context_tensor", withSystem.contextBLD, "sys.context_tensor", { atol: 1e-4, rtolElem: 1e-4 });
    ctx.compare("sys.context_mask", withSystem.mask, "context_mask");

    const full = await encoder.encodeIds(ctx.ref("sys.input_ids"), ctx.ref("sys.attention_mask"));
    ctx.compare("sys.last_hidden_state_full", full, "sys.last_hidden_state_full", { atol: 1e-4, rtolElem: 1e-4 });
  } finally {
    await encoder.release();
  }
};
