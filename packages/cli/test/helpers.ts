/**
 * Running the built `cairn` binary the way a user would: against a real cairnd, with pipes (so
 * stdout and stderr are not terminals) or under `script` (a pseudo-terminal).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { request } from "node:http";
import { fileURLToPath } from "node:url";
import { Cairn } from "@cairn/sdk";
import type { CairndProcess } from "@cairn/server/testing";

export const CLI = fileURLToPath(new URL("../src/main.js", import.meta.url));

export interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
  /** stdout as text. */
  out: string;
}

export interface RunOptions {
  input?: string | Buffer;
  env?: Record<string, string>;
  cwd?: string;
  /** Called with each stdout chunk as it arrives (to see streaming). */
  onStdout?: (chunk: Buffer) => void;
}

/** A CLI bound to one cairnd: `cairn([...args])` resolves with exit code and output. */
export function cli(server: () => CairndProcess) {
  /** The environment a user would have: the two variables, nothing else of Cairn's. */
  const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
    const base: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("CAIRN_")) base[k] = v;
    return { ...base, CAIRN_URL: server().url, CAIRN_API_KEY: server().adminKey, ...extra };
  };

  function cairn(args: string[], options: RunOptions = {}): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...args], {
        env: env(options.env),
        cwd: options.cwd,
        stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      });
      const out: Buffer[] = [];
      let stderr = "";
      child.stdout!.on("data", (d: Buffer) => {
        out.push(d);
        options.onStdout?.(d);
      });
      child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
      // A hang is a failure with the output so far, not a test-runner timeout with nothing to read.
      const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
      child.on("error", reject);
      child.on("close", (code) => {
        clearTimeout(timer);
        const stdout = Buffer.concat(out);
        resolve({ code, stdout, stderr, out: stdout.toString() });
      });
      if (options.input !== undefined) {
        child.stdin!.on("error", () => undefined);
        child.stdin!.end(options.input);
      }
    });
  }

  /** Under a pseudo-terminal: stdout and stderr both arrive in `out`, with \r\n turned into \n. */
  function tty(args: string[], extra: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
    const command = [process.execPath, CLI, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
    return new Promise((resolve, reject) => {
      const child = spawn("script", ["-qec", command, "/dev/null"], { env: env({ NO_COLOR: "1", ...extra }), stdio: ["pipe", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
      child.on("error", reject);
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code, out: out.replaceAll("\r\n", "\n") });
      });
      child.stdin.end();
    });
  }

  return { cairn, tty, env };
}

/** util-linux `script` gives the CLI a terminal, as a person at a shell would have. */
export const haveScript = spawnSync("script", ["--version"]).status === 0;

export const json = <T = unknown>(r: Run): T => {
  try {
    return JSON.parse(r.out) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${r.code}):\n${r.out}\nstderr:\n${r.stderr}`);
  }
};

export interface Problem {
  code: string;
  detail: string;
  status?: number;
  requestId?: string;
  hint?: string;
}

/** The last stderr line is the error as JSON, since stderr is not a terminal here. */
export const problem = (r: Run): Problem => {
  const line = r.stderr.trim().split("\n").at(-1) ?? "";
  try {
    return (JSON.parse(line) as { error: Problem }).error;
  } catch {
    throw new Error(`stderr is not a JSON error (exit ${r.code}):\n${r.stderr}`);
  }
};

export const ok = (r: Run) => assert.equal(r.code, 0, `exit ${r.code}\nstdout:\n${r.out}\nstderr:\n${r.stderr}`);

/** Exit `code` with this error code. */
export function fails(r: Run, code: number, errorCode: string): Problem {
  assert.equal(r.code, code, `expected exit ${code} (${errorCode}), got ${r.code}\nstdout:\n${r.out}\nstderr:\n${r.stderr}`);
  const p = problem(r);
  assert.equal(p.code, errorCode, r.stderr);
  return p;
}

/**
 * Kill every sandbox still alive on this cairnd, through the SDK rather than the CLI under test:
 * run in `after`, so a failed test leaves no container behind.
 */
export async function killAllSandboxes(server: CairndProcess): Promise<void> {
  const cairn = new Cairn({ url: server.url, apiKey: server.adminKey });
  for (const info of await cairn.sandboxes.list()) {
    if (info.state === "stopped") continue;
    await (await cairn.sandboxes.get(info.id)).kill().catch(() => undefined);
  }
}

/** GET / through cairnd's router with a Host header, as a browser on *.localhost would. */
export function getVia(url: string, host: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const r = request({ host: u.hostname, port: u.port, path: "/", headers: { host } }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    r.on("error", reject);
    r.end();
  });
}
