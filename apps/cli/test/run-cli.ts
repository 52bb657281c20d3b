import { runCli } from "../src/cli";

/** Runs `hart` in-process, capturing its output. */
export async function hart(
  argv: string[],
  options: { tty?: boolean; signal?: AbortSignal; onErr?: (s: string) => void } = {},
) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(argv, {
    stdout: {
      write: (s: string) => {
        stdout += s;
      },
    },
    stderr: {
      write: (s: string) => {
        stderr += s;
        options.onErr?.(s);
      },
      isTTY: options.tty,
      columns: 100,
    },
    signal: options.signal ?? new AbortController().signal,
  });
  return { code, stdout, stderr };
}
