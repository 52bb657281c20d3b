import { describe, expect, it, vi } from "vitest";
import { emitProgress, type ProgressEvent } from "../src/progress";

describe("emitProgress", () => {
  it("delivers events in order and does nothing without a callback", () => {
    const seen: ProgressEvent[] = [];
    emitProgress((e) => seen.push(e), { stage: "ar", step: 1, total: 10 });
    emitProgress((e) => seen.push(e), {
      stage: "download",
      file: "llm/model.safetensors",
      loadedBytes: 5,
      totalBytes: 9,
    });
    expect(seen).toEqual([
      { stage: "ar", step: 1, total: 10 },
      { stage: "download", file: "llm/model.safetensors", loadedBytes: 5, totalBytes: 9 },
    ]);
    expect(() => emitProgress(undefined, { stage: "x" })).not.toThrow();
  });

  it("a throwing callback never breaks the caller and is reported once", () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      let calls = 0;
      const bad = () => {
        calls++;
        throw new Error("boom");
      };
      emitProgress(bad, { stage: "a" });
      emitProgress(bad, { stage: "b" });
      expect(calls).toBe(2);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0][0])).toMatch(/onProgress callback threw.*boom/);
    } finally {
      warn.mockRestore();
    }
  });
});
