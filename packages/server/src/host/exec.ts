import { execFile } from "node:child_process";

export class ExecError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly stdout: string,
  ) {
    super(`${command} failed (exit ${exitCode}): ${stderr.trim() || stdout.trim()}`);
    this.name = "ExecError";
  }
}

/**
 * Whether a tool's error output says the filesystem is full: ENOSPC in words, or a short write
 * with no errno (tar: "Wrote only 512 of 10240 bytes" when the last blocks ran out mid-record).
 */
export function saysNoSpace(stderr: string): boolean {
  return /No space left|disk full|Wrote only \d+ of \d+ bytes/i.test(stderr);
}

/** Run a system tool without a shell; resolves with its output, rejects with ExecError. */
export function run(
  file: string,
  args: readonly string[],
  options: { timeoutMs?: number; input?: string; cwd?: string } = {},
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { ...(options.cwd !== undefined ? { cwd: options.cwd } : {}), timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, LC_ALL: "C" } },
      (err, stdout, stderr) => {
        if (err) {
          const code = typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : null;
          reject(new ExecError([file, ...args].join(" "), code, String(stderr), String(stdout)));
        } else resolve({ stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}
